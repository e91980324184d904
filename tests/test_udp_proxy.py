"""The UDP fault proxy (harness/faults.py): its faults happen as seeded,
and its log is exactly what the server and the clients were given.

A plain socket plays the server. Every wait has a deadline (a socket
timeout); `drain()` makes the proxy forward what is queued, so what it
delivered is in the receiving socket's queue when it returns.
"""

import socket
from contextlib import ExitStack

import pytest

from harness.faults import TO_CLIENT, TO_SERVER, UdpLossProxy

LOOPBACK = "127.0.0.1"


def _udp(stack: ExitStack, host: str = LOOPBACK) -> socket.socket:
    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((host, 0))
    return s


def _queued(sock: socket.socket) -> list[tuple[bytes, tuple]]:
    """Every datagram waiting in sock's queue now."""
    out, timeout = [], sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recvfrom(65536))
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(timeout)


@pytest.fixture
def net():
    """A server socket, a proxy in front of it, and a maker of clients."""
    with ExitStack() as stack:
        server = _udp(stack)

        def proxy(**faults) -> UdpLossProxy:
            return stack.enter_context(UdpLossProxy(server.getsockname()[1], **faults))

        def client(p: UdpLossProxy, host: str = LOOPBACK) -> socket.socket:
            c = _udp(stack, host)
            c.connect((LOOPBACK, p.port))
            c.settimeout(5)
            return c
        yield server, proxy, client


def _by_source(datagrams):
    out = {}
    for data, source in datagrams:
        out.setdefault(source, []).append(data)
    return out


def test_a_reliable_proxy_forwards_everything_in_order_from_one_address_per_client(net):
    server, proxy, client = net
    p = proxy(seed=1)
    a, b = client(p), client(p)
    for i in range(20):
        a.send(b"a%d" % i)
        b.send(b"b%d" % i)
    p.settle()
    seen = _by_source(_queued(server))
    route_a, route_b = (p.routes[c.getsockname()].sock.getsockname() for c in (a, b))
    assert route_a != route_b and {route_a[0], route_b[0]} == {LOOPBACK}
    assert seen == {route_a: [b"a%d" % i for i in range(20)], route_b: [b"b%d" % i for i in range(20)]}
    assert p.to_server(a.getsockname()) == seen[route_a]
    # The server's replies reach the right client, through the proxy's own port.
    server.sendto(b"to a", route_a)
    server.sendto(b"to b", route_b)
    assert a.recvfrom(100) == (b"to a", (LOOPBACK, p.port))
    assert b.recvfrom(100) == (b"to b", (LOOPBACK, p.port))
    assert p.from_server(a.getsockname()) == p.to_client(a.getsockname()) == [b"to a"]


def test_each_fault_alone_does_what_it_says(net):
    server, proxy, client = net
    for faults, expected in [({"drop": 1.0}, []),
                             ({"duplicate": 1.0}, [b"0", b"0", b"1", b"1", b"2", b"2", b"3", b"3"]),
                             # held, then released right after the next one: pairs swap
                             ({"reorder": 1.0}, [b"1", b"0", b"3", b"2"])]:
        p = proxy(seed=1, **faults)
        c = client(p)
        for i in range(4):
            c.send(b"%d" % i)
        p.drain()
        assert [d for d, _ in _queued(server)] == expected == p.to_server(c.getsockname()), faults


def test_a_held_datagram_goes_at_flush(net):
    server, proxy, client = net
    p = proxy(seed=1, reorder=1.0)
    c = client(p)
    c.send(b"alone")
    p.drain()
    assert _queued(server) == []
    p.set_faults(0, 0, 0)
    p.flush()
    assert [d for d, _ in _queued(server)] == [b"alone"]
    assert [(h.action, h.note) for h in p.log] == [("hold", ""), ("deliver", "late")]


def test_seeded_faults_happen_and_the_log_is_what_the_server_got(net):
    server, proxy, client = net
    p = proxy(seed=42, drop=0.2, duplicate=0.2, reorder=0.2)
    clients = [client(p) for _ in range(3)]
    sent = {c.getsockname(): [b"%d:%03d" % (k, i) for i in range(100)] for k, c in enumerate(clients)}
    for i in range(100):
        for c in clients:
            c.send(sent[c.getsockname()][i])
    p.settle()
    seen = _by_source(_queued(server))
    for c in clients:
        me = c.getsockname()
        got = seen[p.routes[me].sock.getsockname()]
        assert got == p.to_server(me)
        assert len(set(got)) < len(sent[me]), "some datagrams are lost"
        assert len(got) > len(set(got)), "some are duplicated"
        assert got != sorted(got), "some are reordered"
        assert set(got) <= set(sent[me])
        # Every datagram sent is in the log once as it arrived, in order.
        arrivals = [h.data for h in p.log if h.client == me and h.direction == TO_SERVER and not h.note]
        assert arrivals == sent[me]
    counts = p.faults(TO_SERVER)
    assert all(counts[k] > 10 for k in ("dropped", "duplicated", "reordered")), counts


def test_the_servers_datagrams_meet_faults_too_and_the_log_says_which(net):
    server, proxy, client = net
    p = proxy(seed=3, drop=0.2, duplicate=0.2, reorder=0.2)
    c = client(p)
    c.send(b"hello")
    p.drain()
    (_, route), = _queued(server)
    replies = [b"reply %d" % i for i in range(100)]
    for r in replies:
        server.sendto(r, route)
    p.settle()
    me = c.getsockname()
    assert [d for d, _ in _queued(c)] == p.to_client(me) != replies
    assert p.from_server(me) == replies
    assert all(p.faults(TO_CLIENT).values())


def test_the_same_seed_gives_the_same_fates(net):
    server, proxy, client = net

    def fates(seed):
        p = proxy(seed=seed, drop=0.3, duplicate=0.3, reorder=0.3)
        a, b = client(p), client(p)
        for i in range(50):
            a.send(b"%d" % i)
            b.send(b"%d" % i)
        p.settle()
        _queued(server)
        return [[(h.action, h.note, h.data) for h in p.log if h.client == c.getsockname()]
                for c in (a, b)]
    first = fates(5)
    assert fates(5) == first
    assert fates(6) != first


def test_only_loopback_127_0_0_1(net):
    server, proxy, client = net
    p = proxy(seed=1)
    assert p.server[0] == LOOPBACK and p._front.sock.getsockname()[0] == LOOPBACK
    stranger = client(p, host="127.0.0.2")   # loopback too, but not the address the proxy serves
    stranger.send(b"from elsewhere")
    p.drain()
    assert _queued(server) == [] and p.log == [] and p.routes == {}


def test_a_probability_is_between_0_and_1(net):
    _, proxy, _ = net
    with pytest.raises(ValueError):
        proxy(seed=1, drop=1.5)
