"""A chat server with one selectable defect: the mutant the checks must catch.

    MUTANT=<defect>[,<defect>...] python3 chat_server.py tcp|select|udp PORT

`tcp` serves a thread per client, `select` one thread with selectors, `udp`
one UDP socket. MUTANT=none (or unset) is a correct server for the
contracts of /work/shared/ASSIGNMENTS.md: the control that proves a check
fails because of the defect, not because this server is otherwise wrong.
Each defect breaks exactly one rule (see DEFECTS); stdlib only.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import struct
import sys
import threading

DEFECTS = {
    "none": "a correct server",
    "echo-to-sender": "relays a message to its sender too",
    "relay-quit": "relays quit to the others before removing the member",
    "no-close-on-quit": "removes a member that quits but keeps its connection open",
    "case-insensitive-quit": "QUIT leaves like quit",
    "stripped-quit": "' quit' leaves like quit (the message is stripped first)",
    "relay-rest-after-quit": "relays the lines that follow quit in the same read",
    "relay-chunks": "relays each recv() chunk as a message (breaks fragmented lines)",
    "first-line-per-read": "relays only the first line of each recv(), drops the rest",
    "no-strip-cr": "relays the \\r of a \\r\\n line",
    "relay-empty": "relays empty messages",
    "interleave": "broadcasts without the lock, each line in two writes (lines interleave)",
    "no-send-timeout": "blocks for ever sending to a member that stops reading",
    "shutdown-not-close-on-quit": "on quit, shuts the connection down but never closes the fd",
    "capacity-50": "closes every client beyond the 50th",
    "emfile-busy-loop": "at the open-file limit, retries accept() in a busy loop",
    "swap-pairs": "relays each sender's messages two by two, swapped (order)",
    "truncate-at-100": "truncates messages to 100 bytes",
    "crash-on-binary": "exits when a message holds a NUL byte",
    "crash-on-binary-at-departure": "a NUL byte corrupts the member's state: the server "
                                    "crashes when that member leaves",
    "crash-on-long": "exits when a line grows beyond 64 KiB",
    "announce-departure": "tells the others when a member leaves",
    "exit-on-eof": "exits when a client closes its connection",
    "crash-on-reset": "dies when a client resets its connection (on recv or send)",
    "relay-partial-on-disconnect": "relays the partial line a disconnecting client leaves",
    "blocking-readline": "select mode: reads a ready client byte by byte up to the newline",
    "exit-1-on-sigterm": "exits with status 1 on SIGTERM/SIGINT",
    "udp-duplicates": "udp: adds the sender again on every message",
    "udp-no-remove-on-quit": "udp: quit is not relayed but the member stays",
    "udp-unknown-quit-relayed": "udp: quit from an unknown address joins it and is relayed",
    "udp-no-rejoin": "udp: an address that quit is ignored for ever",
    "udp-empty-no-join": "udp: an empty datagram does not make its sender a member",
    "udp-join-appends": "udp: an empty datagram (the join) adds its sender even when it is a member",
}

MUTANTS = set(filter(None, os.environ.get("MUTANT", "none").split(",")))
unknown = MUTANTS - set(DEFECTS)
if unknown:
    sys.exit(f"chat_server.py: unknown MUTANT {sorted(unknown)}; known: {sorted(DEFECTS)}")

SEND_TIMEOUT = 2   # seconds
SPARE = os.open(os.devnull, os.O_RDONLY)   # freed to refuse a client at EMFILE
LONG_LIMIT = 64 * 1024
LEAKED: list = []
ACCEPTED = 0
MAX_LINE = 8192   # a longer line is relayed in pieces (the contract allows splitting)


def is_quit(msg: bytes) -> bool:
    if "case-insensitive-quit" in MUTANTS:
        return msg.lower() == b"quit"
    if "stripped-quit" in MUTANTS:
        return msg.strip() == b"quit"
    return msg == b"quit"


def crash() -> None:
    """What an unchecked error does to a C server."""
    os.kill(os.getpid(), signal.SIGSEGV)


def log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Room:
    """The members of a TCP chat and the lock around them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.members.add(sock)

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            self.members.discard(sock)

    def relay(self, sender: socket.socket, msg: bytes) -> None:
        if "interleave" in MUTANTS:
            return self.relay_unlocked(sender, msg)
        # One lock around the whole broadcast: lines never interleave.
        with self.lock:
            for s in list(self.members):
                if s is sender and "echo-to-sender" not in MUTANTS:
                    continue
                try:
                    s.sendall(msg + b"\n")
                except (BrokenPipeError, ConnectionResetError):
                    if "crash-on-reset" in MUTANTS:
                        crash()   # as a C server without MSG_NOSIGNAL dies of SIGPIPE
                    drop(s)
                except OSError:
                    drop(s)   # a member that stops reading (SO_SNDTIMEO) or is gone

    def relay_unlocked(self, sender: socket.socket, msg: bytes) -> None:
        import time
        line = msg + b"\n"
        for s in list(self.members):
            if s is not sender:
                try:
                    s.sendall(line[:len(line) // 2])
                    time.sleep(0.002)
                    s.sendall(line[len(line) // 2:])
                except OSError:
                    drop(s)

    def close_all(self) -> None:
        """From the signal handler, so without the lock: the handler runs in
        the main thread, which may hold the lock already (the select server
        removing a member as SIGTERM arrives) and would wait on itself for
        ever. The process exits right after; a snapshot of the set is enough."""
        for s in list(self.members):
            s.close()


class Member:
    """One TCP member's input: bytes in, messages relayed; False when it leaves."""

    def __init__(self, room: Room, sock: socket.socket) -> None:
        self.room, self.sock = room, sock
        self.buf = b""
        self.held: bytes | None = None   # swap-pairs
        self.corrupted = False           # crash-on-binary-at-departure

    def relay(self, msg: bytes) -> None:
        if "swap-pairs" in MUTANTS:
            if self.held is None:
                self.held = msg
                return
            self.room.relay(self.sock, msg)
            msg, self.held = self.held, None
        self.room.relay(self.sock, msg)

    def feed(self, data: bytes) -> bool:
        if "crash-on-binary" in MUTANTS and b"\0" in data:
            crash()
        if b"\0" in data:
            self.corrupted = True
        if "relay-chunks" in MUTANTS:
            self.relay(data[:-1] if data.endswith(b"\n") else data)
            return True
        self.buf += data
        if "crash-on-long" in MUTANTS and len(self.buf) > LONG_LIMIT:
            crash()
        *lines, self.buf = self.buf.split(b"\n")
        if "first-line-per-read" in MUTANTS:
            lines = lines[:1]
        while len(self.buf) > MAX_LINE and "crash-on-long" not in MUTANTS:
            lines.append(self.buf[:MAX_LINE])
            self.buf = self.buf[MAX_LINE:]
        leaving = False
        for line in lines:
            if line.endswith(b"\r") and "no-strip-cr" not in MUTANTS:
                line = line[:-1]
            if leaving:
                self.relay(line)   # only relay-rest-after-quit gets here
                continue
            if is_quit(line):
                if "relay-quit" in MUTANTS:
                    self.relay(line)
                if "relay-rest-after-quit" in MUTANTS:
                    leaving = True
                    continue
                return False
            if line or "relay-empty" in MUTANTS:
                self.relay(line[:100] if "truncate-at-100" in MUTANTS else line)
        return not leaving

    def leave(self, how: str) -> None:
        """The member is gone (quit, EOF or reset): remove it silently."""
        if how == "eof" and self.buf and "relay-partial-on-disconnect" in MUTANTS:
            self.relay(self.buf)
        if self.corrupted and "crash-on-binary-at-departure" in MUTANTS:
            crash()
        self.room.remove(self.sock)
        if "announce-departure" in MUTANTS and how != "quit":
            self.room.relay(self.sock, b"a member left")
        if how == "quit" and "no-close-on-quit" in MUTANTS:
            LEAKED.append(self.sock)   # referenced, so never closed by the GC
            return
        if how == "quit" and "shutdown-not-close-on-quit" in MUTANTS:
            drop(self.sock)
            LEAKED.append(self.sock)
            return
        try:
            self.sock.close()
        except OSError:
            pass
        if how == "eof" and "exit-on-eof" in MUTANTS:
            os._exit(1)

    def receive(self) -> str | None:
        """Read once: None while the member stays, else how it left."""
        try:
            data = self.sock.recv(4096)
        except ConnectionResetError:
            if "crash-on-reset" in MUTANTS:
                crash()
            return "reset"
        except OSError:
            return "reset"
        if not data:
            return "eof"
        return None if self.feed(data) else "quit"


def drop(sock: socket.socket) -> None:
    """End a member's connection; its reader sees EOF and removes it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def accepted(srv: socket.socket) -> socket.socket | None:
    """Accept one client, with a send timeout so a slow reader cannot stall
    the others for more than SEND_TIMEOUT; None if the server is out of fds
    (then the client is accepted with the spare fd and closed: refused)."""
    global SPARE, ACCEPTED
    try:
        sock, _ = srv.accept()
    except OSError as e:
        if e.errno not in (errno.EMFILE, errno.ENFILE) or SPARE is None:
            raise
        if "emfile-busy-loop" in MUTANTS:
            return None
        os.close(SPARE)
        try:
            srv.accept()[0].close()
        finally:
            SPARE = os.open(os.devnull, os.O_RDONLY)
        return None
    ACCEPTED += 1
    if "capacity-50" in MUTANTS and ACCEPTED > 50:
        sock.close()
        return None
    if "no-send-timeout" not in MUTANTS:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT, 0))
    return sock


def listen_tcp(port: int) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    return srv


def on_signals(cleanup) -> None:
    def handler(signum, frame):
        cleanup()
        os._exit(1 if "exit-1-on-sigterm" in MUTANTS else 0)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve_threads(port: int) -> None:
    room, srv = Room(), listen_tcp(port)
    on_signals(lambda: (srv.close(), room.close_all()))
    print(f"listening on port {srv.getsockname()[1]}", flush=True)

    def client(sock: socket.socket) -> None:
        member = Member(room, sock)
        while True:
            how = member.receive()
            if how:
                member.leave(how)
                return

    while True:
        sock = accepted(srv)
        if sock is None:
            continue
        room.add(sock)
        threading.Thread(target=client, args=(sock,), daemon=True).start()


def serve_select(port: int) -> None:
    room, srv = Room(), listen_tcp(port)
    on_signals(lambda: (srv.close(), room.close_all()))
    print(f"listening on port {srv.getsockname()[1]}", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                sock = accepted(srv)
                if sock is None:
                    continue
                room.add(sock)
                sel.register(sock, selectors.EVENT_READ, Member(room, sock))
                continue
            member = key.data
            if "blocking-readline" in MUTANTS:
                how = blocking_readline(member)
            else:
                how = member.receive()
            if how:
                sel.unregister(member.sock)
                member.leave(how)


def blocking_readline(member: Member) -> str | None:
    """The one-thread bug: read a whole line before serving anyone else."""
    line = b""
    while not line.endswith(b"\n"):
        try:
            byte = member.sock.recv(1)
        except OSError:
            return "reset"
        if not byte:
            return "eof"
        line += byte
    return None if member.feed(line) else "quit"


def serve_udp(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    on_signals(sock.close)
    print(f"listening on port {sock.getsockname()[1]}", flush=True)
    members: list = []
    banned: set = set()
    while True:
        data, addr = sock.recvfrom(65536)
        if "crash-on-binary" in MUTANTS and b"\0" in data:
            crash()
        msg = data
        if msg.endswith(b"\n"):
            msg = msg[:-1]
            if msg.endswith(b"\r") and "no-strip-cr" not in MUTANTS:
                msg = msg[:-1]
        if addr in banned:
            continue
        known = addr in members
        if is_quit(msg):
            if not known:
                if "udp-unknown-quit-relayed" in MUTANTS:
                    members.append(addr)
                    relay_udp(sock, members, addr, msg)
                continue
            if "relay-quit" in MUTANTS:
                relay_udp(sock, members, addr, msg)
            if "udp-no-remove-on-quit" not in MUTANTS:
                members.remove(addr)
            if "udp-no-rejoin" in MUTANTS:
                banned.add(addr)
            continue
        if not msg and not known and "udp-empty-no-join" in MUTANTS:
            continue
        if not known or "udp-duplicates" in MUTANTS or (not msg and "udp-join-appends" in MUTANTS):
            members.append(addr)
        if msg or "relay-empty" in MUTANTS:
            relay_udp(sock, members, addr, msg[:100] if "truncate-at-100" in MUTANTS else msg)


def relay_udp(sock, members, sender, msg: bytes) -> None:
    for m in members:
        if m != sender or "echo-to-sender" in MUTANTS:
            try:
                sock.sendto(msg, m)
            except OSError:
                pass


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("tcp", "select", "udp"):
        sys.exit("usage: chat_server.py tcp|select|udp PORT")
    serve = {"tcp": serve_threads, "select": serve_select, "udp": serve_udp}[sys.argv[1]]
    serve(int(sys.argv[2]))


if __name__ == "__main__":
    main()
