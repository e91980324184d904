"""RawClient.settle(): a script's sends reach the server in the order
written, because each waits until the server has read it (read off the
namespace's socket table). Without it a half line and the next client's
line may arrive in one read or in two, and a bug that shows in one order
only is caught on some runs only."""

import socket
import struct
import threading
import time

import pytest

from harness import netns
from harness.clients import Hub, RawClient
from harness.contract import Protocol
from harness.procs import Supervisor
from harness.transcript import Transcript


@pytest.fixture
def server():
    """A TCP or UDP socket on 127.0.0.1 that reads only when told to."""
    made = []

    def make(transport):
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        if transport == "tcp":
            s.listen()
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _client(transport, port):
    hub = Hub()
    c = RawClient("a", Protocol(), Transcript(), hub, transport)
    c.connect("127.0.0.1", port)
    return c, hub


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_settle_waits_until_the_server_has_read(server, transport):
    listener = server(transport)
    c, hub = _client(transport, listener.getsockname()[1])
    try:
        conn = listener.accept()[0] if transport == "tcp" else listener
        c.send_raw(b"half a line")
        # Nothing read yet: settle gives up after its deadline and says so.
        assert c.settle(within=0.05) is False
        read = threading.Event()

        def reader():
            assert conn.recv(100) == b"half a line"
            read.set()

        t = threading.Thread(target=reader)
        t.start()
        assert c.settle(within=10) is True
        t.join()
        assert read.is_set()
        if transport == "tcp":
            conn.close()
    finally:
        c.close()
        hub.close()


def test_settle_looks_at_this_connection_only(server):
    """Another client's unread bytes do not hold this one up."""
    listener = server("tcp")
    port = listener.getsockname()[1]
    a, hub_a = _client("tcp", port)
    b, hub_b = _client("tcp", port)
    try:
        conn_a, conn_b = listener.accept()[0], listener.accept()[0]
        b.send_raw(b"b's bytes, never read")
        a.send_raw(b"a's bytes")
        assert conn_a.recv(100) == b"a's bytes"
        assert a.settle(within=10) is True
        assert b.settle(within=0.05) is False
        conn_a.close()
        conn_b.close()
    finally:
        for c, h in ((a, hub_a), (b, hub_b)):
            c.close()
            h.close()


def test_proc_sockets_reads_the_callers_namespace(server):
    listener = server("tcp")
    rows = list(netns.proc_sockets("thread-self", "tcp"))
    assert any(r.local == listener.getsockname()[1] and r.state == "0A" for r in rows)


def test_settle_after_the_server_reset_the_connection(server):
    """A server that crashed or dropped the client: nothing is left to read,
    and settle() says so rather than failing the step itself."""
    listener = server("tcp")
    c, hub = _client("tcp", listener.getsockname()[1])
    try:
        conn = listener.accept()[0]
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()                     # RST, delivered before close() returns on loopback
        with pytest.raises(OSError):
            c.sock.getpeername()         # what settle() must not depend on
        assert c.settle(within=10) is True
    finally:
        c.close()
        hub.close()


def test_close_waits_until_the_server_has_closed_its_end(server):
    """A script's `close` returns once the server closed its end of the
    connection (it is gone from the socket table); a server that never
    does (a leak) is waited for up to the deadline."""
    listener = server("tcp")
    leaked, hub1 = _client("tcp", listener.getsockname()[1])
    kept = listener.accept()[0]
    closing, hub2 = _client("tcp", listener.getsockname()[1])
    conn = listener.accept()[0]
    try:
        assert leaked.close(settle=0.05) is False       # kept open by the "server"
        threading.Timer(0.05, conn.close).start()       # handles the EOF a little later
        assert closing.close(settle=10) is True
    finally:
        kept.close()
        hub1.close()
        hub2.close()


def test_program_waiting_means_stdin_taken_and_no_thread_running(tmp_path):
    """Process.waiting(), what a program client's settle() waits for."""

    sup = Supervisor()
    try:
        reader = sup.spawn("reader", ["/bin/sh", "-c", "read a; read b; read c"], cwd=tmp_path)
        reader.write(b"one\n")
        deadline = time.monotonic() + 10
        while not reader.waiting():      # back in `read b`, the pipe empty
            assert time.monotonic() < deadline, "never seen waiting"
        busy = sup.spawn("busy", ["/bin/sh", "-c", "while :; do :; done"], cwd=tmp_path)
        assert not any(busy.waiting() for _ in range(50))
        # Written but not yet read: stdin is not empty, so not waiting.
        stuck = sup.spawn("stuck", ["/bin/sh", "-c", "exec sleep 60"], cwd=tmp_path)
        stuck.write(b"never read\n")
        assert not stuck.waiting()
    finally:
        sup.stop_all()
