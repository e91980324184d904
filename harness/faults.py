"""Fault injection for UDP: a seeded loopback proxy that loses, duplicates
and reorders datagrams.

    with UdpLossProxy.for_session(chat, seed=7, drop=0.2, duplicate=0.2, reorder=0.2) as proxy:
        a, b = chat.connect("a", "b", confirm=False, port=proxy.port)
        ...
        proxy.settle()                        # everything sent so far has gone through
        proxy.set_faults(0, 0, 0)             # from now on, a reliable network
        proxy.to_server(a.address)            # exactly what the server got from a

The proxy sits between the harness's clients and the server, on 127.0.0.1
only. Clients send to the proxy's own port; the proxy forwards each
client's datagrams to the server from a socket of that client's own (so the
server sees one source address per client, as without the proxy), and the
server's datagrams to that socket back to the client. Both directions go
through the faults.

Its log says what happened to every datagram, in order: which ones the
server was given, from which client, and which ones it sent back. What the
server received is therefore known exactly, whatever was lost on the way,
and a check can judge the server's state by what it was actually told.

Decisions are seeded per stream: the n-th datagram of client `a` towards
the server meets the same fate in every run with the same seed, however
the server's replies interleave with it. A reordered datagram is held back
and goes out right after the next datagram of its stream is delivered (the
two swap), or at `flush()`: never on a timer.

The proxy's sockets are read by the session's Hub thread (harness/clients.py);
`drain()` forwards, from the calling thread, whatever is queued at them.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter
from dataclasses import dataclass

from .clients import Hub
from .netns import proc_sockets
from .session import HOST
from .transcript import Transcript

TO_SERVER, TO_CLIENT = "to server", "to client"
RCVBUF = 4 << 20   # room for bursts: the proxy's own overflow would be loss nobody chose
BURST = 64         # datagrams read from one socket per wake-up of the Hub


@dataclass(frozen=True)
class Hop:
    """What the proxy did with one datagram (or one copy of it)."""
    seq: int               # position in the log
    client: tuple          # the client's address (host, port)
    name: str              # the client's name in the scenario, or its address
    direction: str         # TO_SERVER or TO_CLIENT
    data: bytes
    action: str            # "deliver", "drop", "hold" (reordered: delivered later) or "lost"
    note: str = ""         # "" when the datagram arrives; "duplicate", "late" for later copies


class _Stream:
    """One client's datagrams in one direction: its decisions and its held one."""

    def __init__(self, seed, label: str, direction: str):
        # A string seed is hashed (random.Random version 2): stable across runs.
        self.rng = random.Random(f"{seed}/{label}/{direction}")
        self.held: tuple[bytes, int, int] | None = None   # (datagram, copies, its seq in the log)


class _Route:
    """A client of the proxy: its address and the socket that speaks for it."""

    def __init__(self, proxy: "UdpLossProxy", client: tuple, name: str, sock: socket.socket,
                 seed, label: str):
        self.proxy, self.client, self.name, self.sock = proxy, client, name, sock
        self.up = _Stream(seed, label, TO_SERVER)
        self.down = _Stream(seed, label, TO_CLIENT)

    def _readable(self) -> None:   # called by the Hub: the server sent to this client
        self.proxy._pump(self.sock, self)


class _Front:
    """The proxy's own port, where every client sends."""

    def __init__(self, proxy: "UdpLossProxy", sock: socket.socket):
        self.proxy, self.sock = proxy, sock

    def _readable(self) -> None:
        self.proxy._pump(self.sock, None)


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.bind((HOST, 0))
    s.setblocking(False)
    return s


class UdpLossProxy:
    """Forwards datagrams between clients and a UDP server on 127.0.0.1,
    dropping, duplicating and reordering them with seeded probabilities."""

    def __init__(self, server_port: int, *, seed, drop: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, hub: Hub | None = None,
                 transcript: Transcript | None = None, names=None):
        self.server = (HOST, server_port)   # 127.0.0.1 only: nothing leaves the loopback
        self.seed = seed
        self.set_faults(drop, duplicate, reorder)
        self.transcript = transcript
        self._names = names or (lambda address: None)   # address -> the scenario's name
        self._own_hub = hub is None
        self.hub = hub or Hub()
        self._cond = threading.Condition(threading.RLock())
        self.log: list[Hop] = []
        self.routes: dict[tuple, _Route] = {}
        self.closed = False
        self._front = _Front(self, _socket())
        self.port = self._front.sock.getsockname()[1]
        self.hub.add(self._front)

    @classmethod
    def for_session(cls, chat, *, seed, **faults) -> "UdpLossProxy":
        """A proxy in front of `chat`'s server, read by its Hub, noting its
        faults in its transcript under the clients' names."""
        def name_of(address):
            for c in list(chat.clients.values()):
                if getattr(c, "address", None) == address:
                    return c.name
            return None
        return cls(chat.port, seed=seed, hub=chat.hub, transcript=chat.transcript,
                   names=name_of, **faults)

    def set_faults(self, drop: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0) -> None:
        """The probabilities for every datagram from now on (0, 0, 0: a
        reliable network; call flush() to release what is held)."""
        for p in (drop, duplicate, reorder):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"a probability is between 0 and 1, not {p}")
        self.drop, self.duplicate, self.reorder = drop, duplicate, reorder

    # -- forwarding (Hub thread, or drain() in the caller's) -----------------
    def _pump(self, sock: socket.socket, route: _Route | None, limit: int = BURST) -> int:
        """Forward up to `limit` datagrams queued at `sock`; how many."""
        n = 0
        with self._cond:
            while n < limit and not self.closed:
                try:
                    data, source = sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue   # an ICMP error for an earlier send: the server is gone
                except OSError:
                    break      # closed meanwhile
                n += 1
                if route is not None:
                    if source == self.server:
                        self._forward(route, route.down, data)
                elif source[0] == HOST:
                    client = self._route(source)
                    self._forward(client, client.up, data)
        return n

    def _route(self, client: tuple) -> _Route:
        route = self.routes.get(client)
        if route is None:
            name = self._names(client)
            label = name or f"#{len(self.routes)}"
            sock = _socket()
            # Connected: only the server's datagrams reach this socket.
            sock.connect(self.server)
            route = _Route(self, client, name or f"{client[0]}:{client[1]}", sock, self.seed, label)
            self.routes[client] = route
            self.hub.add(route)
        return route

    def _forward(self, route: _Route, stream: _Stream, data: bytes) -> None:
        # Three draws for every datagram, whatever its fate: the n-th
        # datagram of a stream meets the same fate in every run.
        lose, double, late = stream.rng.random(), stream.rng.random(), stream.rng.random()
        if lose < self.drop:
            self._record(route, stream, data, "drop")
            return
        copies = 2 if double < self.duplicate else 1
        if stream.held is None and late < self.reorder:
            stream.held = (data, copies, len(self.log))
            self._record(route, stream, data, "hold")
            return
        self._send(route, stream, data, copies, "")
        if stream.held is not None:
            (held, copies, _), stream.held = stream.held, None
            self._send(route, stream, held, copies, "late")

    def _send(self, route: _Route, stream: _Stream, data: bytes, copies: int, note: str) -> None:
        for i in range(copies):
            try:
                if stream is route.up:
                    route.sock.send(data)
                else:
                    self._front.sock.sendto(data, route.client)
                action = "deliver"
            except OSError:
                action = "lost"   # e.g. ICMP port unreachable: the server is gone
            self._record(route, stream, data, action,
                         " ".join(filter(None, [note, "duplicate" if i else ""])))

    def _record(self, route: _Route, stream: _Stream, data: bytes, action: str, note: str = "") -> None:
        direction = TO_SERVER if stream is route.up else TO_CLIENT
        hop = Hop(len(self.log), route.client, route.name, direction, data, action, note)
        self.log.append(hop)
        self._cond.notify_all()
        if self.transcript is not None and (action != "deliver" or note):
            what = {"drop": "drops", "hold": "holds back (reorders)", "lost": "could not deliver",
                    "deliver": "delivers again" if "duplicate" in note else "delivers late"}[action]
            where = f"{route.name} -> server" if direction == TO_SERVER else f"server -> {route.name}"
            self.transcript.add("proxy", "note", data, detail=f"{what} {where}")

    # -- control (the scenario's thread) ------------------------------------------
    def drain(self) -> None:
        """Forward, now, everything queued at the proxy's sockets (the Hub
        may be slower): what a client sent before this call has gone to the
        server, or been dropped or held, when it returns."""
        with self._cond:
            while self._pump(self._front.sock, None) + \
                    sum(self._pump(r.sock, r) for r in list(self.routes.values())):
                pass

    def flush(self) -> None:
        """Release every held datagram (both directions), in the order they
        were held."""
        with self._cond:
            held = sorted((s.held[2], r, s) for r in self.routes.values() for s in (r.up, r.down)
                          if s.held is not None)
            for _, route, stream in held:
                data, copies, _ = stream.held
                stream.held = None
                self._send(route, stream, data, copies, "late")

    def settle(self) -> None:
        """drain() then flush(): every datagram sent so far has met its fate."""
        with self._cond:
            self.drain()
            self.flush()

    def wait_until(self, predicate, within: float) -> bool:
        """Wait until predicate() (called under the proxy's lock, after each
        datagram) holds, or `within` seconds pass; whether it holds."""
        with self._cond:
            return bool(self._cond.wait_for(predicate, within))

    # -- the log ---------------------------------------------------------------------
    def _hops(self, client: tuple, direction: str) -> list[Hop]:
        with self._cond:
            return [h for h in self.log if h.client == client and h.direction == direction]

    def to_server(self, client: tuple) -> list[bytes]:
        """Every datagram the server was given from `client`, in order (the
        ground truth of what it saw from that client)."""
        return [h.data for h in self._hops(client, TO_SERVER) if h.action == "deliver"]

    def from_server(self, client: tuple) -> list[bytes]:
        """Every datagram the server sent to `client`, in order, whatever
        the proxy then did with it."""
        return [h.data for h in self._hops(client, TO_CLIENT) if not h.note]

    def to_client(self, client: tuple) -> list[bytes]:
        """Every datagram the proxy delivered to `client`, in order."""
        return [h.data for h in self._hops(client, TO_CLIENT) if h.action == "deliver"]

    def faults(self, direction: str = TO_SERVER) -> Counter:
        """How many datagrams were dropped, duplicated and reordered."""
        with self._cond:
            hops = [h for h in self.log if h.direction == direction]
        return Counter({"dropped": sum(h.action == "drop" for h in hops),
                        "duplicated": sum("duplicate" in h.note for h in hops),
                        "reordered": sum(h.action == "hold" for h in hops)})

    # -- teardown ------------------------------------------------------------------------
    def close(self) -> None:
        with self._cond:
            if self.closed:
                return
            self.closed = True
            for end in [self._front, *self.routes.values()]:
                self.hub.remove(end)
                end.sock.close()
        if self._own_hub:
            self.hub.close()

    def __enter__(self) -> "UdpLossProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def udp_queue(pid: int, port: int) -> tuple[int, int]:
    """The UDP socket bound to `port` in `pid`'s namespace: bytes waiting in
    its receive queue (not yet read by its program), and datagrams the
    kernel dropped because that queue was full. (0, 0) if there is none."""
    for row in proc_sockets(pid, "udp"):
        if row.local == port:
            return row.rx_queue, row.drops
    return 0, 0
