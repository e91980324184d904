"""Fault injection: clients that vanish abruptly, many times over."""

import socket
import struct

import pytest

from harness.clients import CheckFailed


@pytest.mark.rule("departure-reset")
@pytest.mark.requires("tcp")
def test_500_clients_that_connect_and_reset(chat):
    """500 connections that vanish with a RST (SO_LINGER 0), some after
    sending half a line; the server keeps serving its members."""
    chat.start_server()
    a, b = chat.connect("a", "b")
    linger = struct.pack("ii", 1, 0)
    for i in range(500):
        s = socket.create_connection(("127.0.0.1", chat.port), timeout=chat.within(5))
        if i % 3 == 1:
            s.sendall(b"half a line from a client about to vanish")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()
    chat.expect_server_alive()
    a.send(b"still here after 500 resets")
    b.expect_eventually(b"still here after 500 resets", within=chat.within(5))


@pytest.mark.rule("departure-reset")
@pytest.mark.requires("tcp")
def test_members_that_reset_while_others_talk(chat):
    """Members vanish with a RST while others keep talking, so relays race
    the departures and the server writes to sockets already reset. It must
    not die of SIGPIPE, nor stop serving."""
    import threading
    chat.start_server()
    talker, listener, burst = chat.connect("talker", "listener", "burst")
    for round_ in range(3):
        goners = chat.connect(*[f"g{round_}_{i}" for i in range(40)])
        stop = threading.Event()

        def talk():
            i = 0
            while not stop.is_set() and i < 3000:
                try:
                    talker.send(f"chatter {i}".encode())
                except CheckFailed:
                    return  # the server is gone: the main thread reports it
                i += 1

        t = threading.Thread(target=talk)
        t.start()
        try:
            for g in goners:
                g.reset()
                # Right behind the RST: relays to the reset socket before
                # the server has noticed the departure.
                for k in range(3):
                    burst.send(f"burst {k}".encode())
        finally:
            stop.set()
            t.join()
        chat.expect_server_alive()
    talker.send(b"after the resets")
    listener.expect_eventually(b"after the resets", within=chat.within(10))
    chat.expect_server_alive()
