"""Clients that talk to a server under test, and record every byte.

RawClient is the harness's own socket (TCP or UDP): it sends exact bytes,
in chosen fragments if asked, and frames what it receives by the contract.
ProgramClient drives a client program through stdin and reads its stdout.
Both are Receivers: `expect` the next message, `expect_nothing`, `closed`.

One Hub thread per scenario reads every raw socket (epoll via selectors),
so every byte is observed with its arrival time, and nothing a server sends
waits in a kernel buffer because the harness was busy elsewhere.
"""

from __future__ import annotations

import os
import re
import select
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from . import netns
from .contract import ClientSpec, Protocol
from .transcript import Transcript, show_bytes

READ_CHUNK = 65536
# The harness's membership probes (see ChatSession.probe), maybe behind a
# course's relay prefix. They go to Receiver.probes, never to messages: a
# probe is not part of any scenario, even when a server echoes it.
PROBE = re.compile(rb".*chatgrade-probe-\d+-[0-9a-f]{6}", re.DOTALL)


class CheckFailed(AssertionError):
    """A contract rule was broken. Carries what was expected and what happened."""

    def __init__(self, step: str, expected: str, actual: str, hint: str = ""):
        self.step, self.expected, self.actual, self.hint = step, expected, actual, hint
        text = f"{step}\n  expected: {expected}\n  actual:   {actual}"
        if hint:
            text += f"\n  hint:     {hint}"
        super().__init__(text)


@dataclass
class Message:
    t: float
    data: bytes          # the message (relay prefix removed)
    line: bytes          # the line as received
    own_echo: bool = False


@dataclass
class Receiver:
    """What one participant has received, framed into messages."""
    name: str
    protocol: Protocol
    transcript: Transcript
    messages: list[Message] = field(default_factory=list)
    broken: list[bytes] = field(default_factory=list)    # lines matching no relay format
    notices: list[bytes] = field(default_factory=list)
    probes: list[bytes] = field(default_factory=list)    # the harness's own, set apart
    echoes: list[Message] = field(default_factory=list)  # own messages that came back
    echoes_unseen: int = 0            # forbidden echoes no expect_nothing has reported yet
    cursor: int = 0
    eof: str | None = None            # None while open; "eof", "reset", "exit 0"...
    sent: Counter = field(default_factory=Counter)
    departed: bool = False            # sent the quit word (and not spoken since)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _partial: bytes = b""
    _before_probe: int = 0            # messages that came before the latest probe
    _probe_lines: list[bytes] = field(default_factory=list)   # probes as they arrived
    bytes_received: int = 0

    # -- feeding (called by the reader) -----------------------------------
    def _add_line(self, line: bytes) -> None:
        now = time.monotonic() - self.transcript.t0
        try:
            msg = self.protocol.parse_relayed(line)
        except ValueError:
            self.broken.append(line)
            self.messages.append(Message(now, line, line))
            return
        if msg is None:
            self.notices.append(line)
            return
        if PROBE.fullmatch(msg):
            self.probes.append(msg)
            self._probe_lines.append(line)
            self._before_probe = len(self.messages)
            return
        own = self.sent[msg] > 0
        m = Message(now, msg, line, own_echo=own)
        if own:
            # Set apart whatever the contract says about echoes: a server
            # that echoes then fails the no-echo rule (expect_no_echo), not
            # every later step that reads this stream.
            self.sent[msg] -= 1
            self.echoes.append(m)
            if self.protocol.echo == "forbidden":
                self.echoes_unseen += 1
            return
        self.messages.append(m)

    def feed(self, data: bytes) -> None:
        with self._cond:
            self.bytes_received += len(data)
            if self.protocol.framing == "datagram":
                self._add_line(data)
            else:
                buf = self._partial + data
                term = self.protocol.terminator
                *lines, self._partial = buf.split(term)
                for line in lines:
                    self._add_line(line)
            self._cond.notify_all()

    def end(self, how: str) -> None:
        with self._cond:
            if self.eof is None:
                self.eof = how
            self._cond.notify_all()

    # -- waiting (called by scenarios) -------------------------------------
    def _wait(self, predicate, within: float) -> bool:
        deadline = time.monotonic() + within
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def unread(self) -> list[Message]:
        with self._cond:
            return self.messages[self.cursor:]

    def expect(self, message: bytes, within: float = 2.0, alternatives=()) -> Message:
        """The next message must be `message` (or one of alternatives)."""
        wanted = {message, *alternatives}
        step = f"{self.name} expects {show_bytes(message)}"
        if not self._wait(lambda: len(self.messages) > self.cursor or self.eof, within):
            raise CheckFailed(step, f"{show_bytes(message)} within {within:g}s",
                              f"nothing arrived in {within:g}s" + self._partial_note())
        with self._cond:
            if len(self.messages) <= self.cursor:
                raise CheckFailed(step, show_bytes(message),
                                  f"the connection ended ({self.eof}) before it arrived"
                                  + self._partial_note())
            got = self.messages[self.cursor]
            self.cursor += 1
        if got.data not in wanted:
            hint = ""
            if got.own_echo:
                hint = f"{self.name} got back its own message; the sender must never receive it"
            elif got.line in self.broken:
                hint = "the line does not have the relay format " + repr(self.protocol.relay)
            elif not got.data:
                hint = "an empty message was relayed (empty messages are not relayed)"
            elif message in got.data or any(got.data in m for m in self.sent):
                hint = "two messages merged, or one split: lines must arrive whole"
            raise CheckFailed(step, show_bytes(message), show_bytes(got.line), hint)
        return got

    def expect_eventually(self, message: bytes, within: float = 2.0) -> Message:
        """`message` arrives, possibly after others (which are passed over)."""
        hit = []

        def found() -> bool:
            for i in range(self.cursor, len(self.messages)):
                if self.messages[i].data == message:
                    self.cursor = i + 1
                    hit.append(self.messages[i])
                    return True
            return self.eof is not None
        self._wait(found, within)
        if not hit:
            raise CheckFailed(f"{self.name} eventually receives {show_bytes(message)}",
                              f"it arrives within {within:g}s",
                              f"the connection ended ({self.eof})" if self.eof else "it never arrived")
        return hit[0]

    def wait_count(self, n: int, within: float) -> bool:
        """Wait until at least n messages have arrived (read or not)."""
        return self._wait(lambda: len(self.messages) >= n or self.eof is not None, within) \
            and len(self.messages) >= n

    def expect_nothing(self, duration: float = 0.3) -> None:
        """No message arrives for `duration` seconds (what is queued counts)."""
        self._wait(lambda: len(self.messages) > self.cursor, duration)
        extra = self.unread()
        if extra:
            hint = ""
            if extra[0].own_echo:
                hint = "that is its own message: the sender must never receive it"
            elif any(m.data == extra[0].data for m in self.messages[:self.cursor]):
                hint = (f"{self.name} already got this message: it arrived twice "
                        "(is this member on the list twice?)")
            raise CheckFailed(f"{self.name} expects nothing for {duration:g}s", "no message",
                              f"{len(extra)} message(s), first {show_bytes(extra[0].line)}", hint)

    def expect_no_echo(self, duration: float = 0.3) -> None:
        """None of this participant's own messages comes back (within
        `duration`, or earlier and not yet reported)."""
        self._wait(lambda: self.echoes_unseen > 0, duration)
        if self.echoes_unseen:
            echo = self.echoes[-self.echoes_unseen]
            self.echoes_unseen = 0
            raise CheckFailed(f"{self.name} expects none of its own messages back", "no echo",
                              f"its own message came back: {show_bytes(echo.line)}",
                              "the server must relay to every member except the sender")

    def expect_closed(self, within: float = 2.0) -> str:
        if not self._wait(lambda: self.eof is not None, within):
            raise CheckFailed(f"{self.name} expects the connection closed",
                              f"closed within {within:g}s", "still open")
        return self.eof

    def wait_for_probe(self, probe: bytes, within: float) -> bool:
        """Whether the harness's probe `probe` has (or within `within` s)
        arrived; False at once if the connection has ended."""
        self._wait(lambda: probe in self.probes or self.eof is not None, max(within, 0))
        return probe in self.probes

    def pass_over_joining(self) -> list[Message]:
        """Remove the pieces of probes a new member received before the
        probe that confirmed it (ChatSession.probe), and return them. A
        member that joins while a probe is being relayed may get part of
        it, and whether it does is a race the harness cannot order: a
        server that sends a line in two pieces gives it a lone "\\n" on some
        runs only. That defect is the whole-lines checks' to judge, every
        run; here it would decide whatever check was connecting. Anything
        else it received (a greeting the contract does not allow) stays."""
        def piece_of_a_probe(m: Message) -> bool:
            return not m.line.strip() or PROBE.search(m.line) is not None or \
                any(m.line in p for p in self._probe_lines)

        with self._cond:
            early = [m for m in self.messages[:self._before_probe] if piece_of_a_probe(m)]
            if early:
                dropped = {id(m) for m in early}
                read = sum(id(m) in dropped for m in self.messages[:self.cursor])
                self.messages[:] = [m for m in self.messages if id(m) not in dropped]
                self.cursor -= read
            self._before_probe = 0
            return early

    def wire_message(self, message: bytes) -> bytes:
        """What goes on the wire when this participant sends `message`."""
        return message

    def skip_unread(self) -> None:
        with self._cond:
            self.cursor = len(self.messages)

    def _partial_note(self) -> str:
        return f" (an unterminated fragment {show_bytes(self._partial)} is pending)" if self._partial else ""

    def partial(self) -> bytes:
        return self._partial


class Hub:
    """One thread that reads every raw client socket of a scenario."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="client-hub", daemon=True)
        self._thread.start()

    def add(self, client: "RawClient") -> None:
        self._sel.register(client.sock, selectors.EVENT_READ, client)
        os.write(self._wake_w, b"x")

    def remove(self, client: "RawClient") -> None:
        try:
            self._sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select(0.5):
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                key.data._readable()

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


# How long settle() waits for a server to read what a client sent.
SETTLE_WITHIN = 0.5


def _poll_until(condition, within: float) -> bool:
    """Check `condition` every 0.5 ms until it holds or `within` s pass.
    For what /proc shows and nothing signals (a socket read, a thread
    blocked): settle() of both kinds of client."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


class RawClient(Receiver):
    """The harness's own TCP or UDP client socket."""

    def __init__(self, name: str, protocol: Protocol, transcript: Transcript, hub: Hub,
                 transport: str):
        super().__init__(name, protocol, transcript)
        self.hub = hub
        self.transport = transport
        self.sock: socket.socket | None = None
        self.address = None
        self.peer = None

    def connect(self, host: str, port: int, timeout: float = 5.0) -> None:
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # Room for bursts: a datagram the harness had no room for would
            # look like the server's loss.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.peer = (host, port)        # getpeername() fails once the server resets us
        self.transcript.add(self.name, "connect", detail=f"from port {self.address[1]} to {port}")
        self.hub.add(self)

    # -- reading (hub thread) -------------------------------------------
    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return  # closed by the scenario while the hub was selecting
        try:
            data = sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except ConnectionRefusedError:
            # UDP: an ICMP port unreachable from an earlier send. Not an end.
            self.transcript.add(self.name, "note", detail="ICMP port unreachable")
            return
        except ConnectionResetError:
            self.transcript.add(self.name, "close", detail="reset by the server")
            self.hub.remove(self)
            self.end("reset")
            return
        except OSError:
            return  # EBADF: closed by the scenario between select and recv
        if not data and self.transport != "udp":
            self.transcript.add(self.name, "close", detail="closed by the server")
            self.hub.remove(self)
            self.end("eof")
            return
        self.transcript.add(self.name, "recv", data)
        self.feed(data)

    # -- sending ----------------------------------------------------------
    def _send_all(self, data: bytes, within: float = 5.0) -> None:
        if self.sock is None:
            raise CheckFailed(f"{self.name} sends", "an open connection", "not connected")
        if self.transport == "udp":
            self.sock.send(data)
            return
        view = memoryview(data)
        deadline = time.monotonic() + within
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CheckFailed(f"{self.name} sends {len(data)} bytes",
                                      "the server reads what it is sent",
                                      f"{len(view)} bytes still unsent after {within:g}s") from None
                select.select([], [self.sock], [], 0.05)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise CheckFailed(f"{self.name} sends", "an open connection",
                                  f"the server closed it ({e.strerror})") from None

    def send(self, message: bytes, settle: bool = False) -> None:
        """Send one message, framed by the contract. With `settle`, return
        once the server has read it (see settle())."""
        self.sent[message] += 1
        # A member that says the quit word is gone; one that speaks again
        # is back (UDP: a new member).
        self.departed = bool(self.protocol.quit) and message == self.protocol.quit.encode()
        data = self.protocol.frame(message)
        self.transcript.add(self.name, "send", data)
        self._send_all(data)
        if settle:
            self.settle()

    def send_raw(self, *chunks: bytes, gap: float = 0.0, settle: bool = False) -> None:
        """Send chunks as separate writes (TCP segments), `gap` s apart;
        with `settle`, each one read by the server before the next."""
        for i, chunk in enumerate(chunks):
            if i and gap:
                time.sleep(gap)  # pacing is the point here: a slow typist
            self.transcript.add(self.name, "send", chunk, detail="(raw)")
            self._send_all(chunk)
            if settle:
                self.settle()

    def settle(self, within: float = SETTLE_WITHIN) -> bool:
        """Wait until the server has read all this client sent: its end of
        the connection (its UDP socket) has nothing left in the receive
        queue. This fixes the order in which the server reads what several
        clients send: without it, a half line and another client's line that
        follows it may reach the server in one read or in two, and a bug
        that shows in one order only is caught on some runs only. Read from
        the namespace's socket table, so it costs the server nothing. A
        server that does not read in `within` s is not waited for further
        (False): what it does then is for the step after to judge."""
        if self.sock is None:
            return True
        return _poll_until(lambda: not any(row.rx_queue for row in self._server_end()), within)

    def _server_end(self) -> list:
        """The server's end of this connection in the namespace's socket
        table (TCP, its connection from our port; UDP, its one unconnected
        socket): empty once the server has closed it."""
        server, remote = self.peer[1], 0 if self.transport == "udp" else self.address[1]
        return [row for row in netns.proc_sockets("thread-self", self.transport)
                if row.local == server and row.remote == remote]

    def close(self, settle: float = 0.0) -> bool:
        """Leave by end of stream (FIN). With `settle` > 0, then wait up to
        that long until the server has closed its end of the connection
        (it is gone from the socket table): a script's next step, often
        `server stop`, then finds the departure handled on every run. A
        server that never closes it (a leak) is waited for in full, and
        False returned: on a busy machine, under valgrind, a SIGTERM right
        behind the FIN otherwise reached the server before the EOF did,
        and the leak went unseen 1 run in 8."""
        if self.sock is None:
            return True
        self.hub.remove(self)
        self.transcript.add(self.name, "close", detail="client closed (EOF)")
        self.sock.close()
        self.sock = None
        self.end("closed by client")
        if not settle or self.transport != "tcp":
            return True
        return _poll_until(lambda: not self._server_end(), settle)

    def reset(self) -> None:
        """Leave abruptly: SO_LINGER 0 makes close() send a RST."""
        if self.sock is None:
            return
        self.hub.remove(self)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transcript.add(self.name, "close", detail="client reset (RST)")
        self.sock.close()
        self.sock = None
        self.end("reset by client")

    def stop_reading(self) -> None:
        """Stop reading: the server's output to us piles up (a slow reader)."""
        self.hub.remove(self)
        self.transcript.add(self.name, "note", detail="stops reading")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


class ProgramClient(Receiver):
    """A client program driven through stdin, read on stdout."""

    def __init__(self, name: str, protocol: Protocol, transcript: Transcript, process,
                 spec: ClientSpec):
        super().__init__(name, protocol, transcript)
        self.process = process
        self.spec = spec
        # The program's stdout is the received messages, one per line. Its
        # framing is always a line, whatever the wire uses.
        self.protocol = Protocol(**{**protocol.__dict__, "framing": "line"})
        threading.Thread(target=self._follow, daemon=True, name=f"follow-{name}").start()

    def _follow(self) -> None:
        seen = 0
        stream = self.process.stdout
        while True:
            data = stream.wait_for(lambda d: len(d) > seen and d, time.monotonic() + 3600)
            if data is None or len(data) <= seen:
                break
            self.feed(data[seen:])
            seen = len(data)
        self.process.wait(60)
        self.end(self.process.status())

    def wire_message(self, message: bytes) -> bytes:
        """What this client puts on the wire when its user types `message`."""
        return self.spec.send_format.encode().replace(b"{name}", self.name.encode()).replace(b"{msg}", message)

    def send(self, message: bytes, settle: bool = False) -> None:
        """The user types a line. With `settle`, return once the program
        has taken it and waits again (see settle())."""
        self.sent[self.wire_message(message)] += 1
        self.process.write(message + b"\n")
        if settle:
            self.settle()

    def settle(self, within: float = SETTLE_WITHIN) -> bool:
        """Wait until the program has read what was typed and every thread
        of it waits (for input, the network, a timer). A client that checks
        the socket only after its user types is then back in its read of
        stdin, on every run, before the next step: whether a message that
        arrives next is printed no longer depends on how fast it got there.
        False if it is still busy after `within` s."""
        return _poll_until(lambda: self.process.waiting() or not self.process.alive(), within) \
            and self.process.alive()

    def end_input(self) -> None:
        self.process.close_stdin()

    def expect_exit(self, status: int = 0, within: float = 3.0) -> None:
        code = self.process.wait(within)
        if code is None:
            raise CheckFailed(f"{self.name} exits", f"exit {status} within {within:g}s",
                              "still running")
        if code != status:
            raise CheckFailed(f"{self.name} exits", f"exit {status}",
                              self.process.status(),
                              "stderr: " + self.process.stderr.text()[-500:])
