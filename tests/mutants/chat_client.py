"""A chat client with one selectable defect: the mutant the client checks must catch.

    MUTANT=<defect> python3 chat_client.py tcp|udp HOST PORT

MUTANT=none (or unset) is a correct client for /work/shared/ASSIGNMENTS.md:
the main thread sends each stdin line, a receive thread prints each message.
stdlib only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

DEFECTS = {
    "none": "a correct client",
    "alternating": "one thread: reads a stdin line, sends it, only then reads the socket",
    "no-flush": "the receive thread prints without flushing (nothing shows on a pipe)",
    "prompts-to-stdout": "prints a '> ' prompt to stdout before reading each line",
    "exit-1-on-quit": "exits with status 1 after sending quit",
    "ignores-eof": "keeps running at end of stdin",
    "no-exit-on-server-close": "the receive thread ends when the server closes; the program runs on",
}

MUTANT = os.environ.get("MUTANT", "none") or "none"
if MUTANT not in DEFECTS:
    sys.exit(f"chat_client.py: unknown MUTANT {MUTANT!r}; known: {sorted(DEFECTS)}")

QUIT = b"quit"
# Buffered like C stdio on a pipe, whatever PYTHONUNBUFFERED says: the
# client flushes each message itself (no-flush does not).
out = open(1, "wb", buffering=65536, closefd=False)


def show(msg: bytes) -> None:
    out.write(msg + b"\n")
    if MUTANT != "no-flush":
        out.flush()


def receive_tcp(sock: socket.socket) -> None:
    buf = b""
    while True:
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            if MUTANT == "no-exit-on-server-close":
                return
            sys.stderr.write("server closed the connection\n")
            os._exit(EXIT_STATUS)
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            show(line)


def receive_udp(sock: socket.socket) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionRefusedError:
            continue   # an ICMP port unreachable: the server is not up yet
        except OSError:
            return
        show(data)


# The status the client exits with once it has left. The receive thread
# may see the server close first, so both paths use it.
EXIT_STATUS = 0


def leave(sock: socket.socket, send) -> None:
    global EXIT_STATUS
    if MUTANT == "exit-1-on-quit":
        EXIT_STATUS = 1
    send(QUIT)
    os._exit(EXIT_STATUS)


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("tcp", "udp"):
        sys.exit("usage: chat_client.py tcp|udp HOST PORT")
    transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if transport == "tcp":
        sock = socket.create_connection((host, port))
        send = lambda msg: sock.sendall(msg + b"\n")  # noqa: E731
        receive = receive_tcp
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, port))
        send = sock.send
        receive = receive_udp
    if MUTANT != "alternating":
        threading.Thread(target=receive, args=(sock,), daemon=True).start()
    stdin = sys.stdin.buffer
    while True:
        if MUTANT == "prompts-to-stdout":
            out.write(b"> ")
            out.flush()
        else:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = stdin.readline()
        if not line:
            if MUTANT == "ignores-eof":
                while True:
                    time.sleep(3600)
            leave(sock, send)
        line = line.rstrip(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == QUIT:
            leave(sock, send)
        send(line)
        if MUTANT == "alternating":
            data = sock.recv(65536)
            if not data and transport == "tcp":
                os._exit(0)
            for msg in (data.split(b"\n")[:-1] if transport == "tcp" else [data]):
                show(msg)


if __name__ == "__main__":
    main()
