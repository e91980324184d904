"""UDP membership survives loss, duplication and reordering.

A lossy phase runs through a seeded proxy (harness/faults.py) that drops,
duplicates and reorders datagrams: clients join, chat, quit, come back, and
say their join or quit again, as a client that heard nothing back would.
The proxy's log tells exactly what the server was given from each client,
in order, and by the contract that fixes who is a member now: a client is a
member after its first datagram, quit removes it, a removed client that
speaks again is a new member, an unknown sender's quit is ignored, and no
one is listed twice.

A reliable phase (the same proxy, its faults off) then checks that the
server holds exactly that membership: every line it relays goes once to
each member but the sender, and to no one else. What the server sent each
client is read in the proxy's log after a fence, so nothing waits for
silence. Delivery under loss is never judged: a relay lost in the lossy
phase is the network's, not the server's.

The run is judged once per rule, each on the clients whose fate that rule
decides, so a server that breaks one rule loses that rule's points, not
every membership rule's. The seed is fixed, and each client's fates are
its own: every server, in every run, is given the same datagrams from each
client, in the same order.
"""

import pytest

from harness.clients import CheckFailed
from harness.faults import TO_SERVER, UdpLossProxy, udp_queue
from harness.observe import settle_to, tagged
from harness.transcript import show_bytes

SEED = 7
FAULTS = {"drop": 0.15, "duplicate": 0.3, "reorder": 0.25}
JOIN, QUIT = "join", "quit"   # a client says its join again; a client says quit

# Who does what, round by round. c* stay; d* leave; r* leave and come back;
# x* never join: they only say quit.
STAYERS = ["c0", "c1", "c2", "c3", "c4"]
LEAVERS = ["d0", "d1", "d2"]
RETURNERS = ["r0", "r1"]
STRANGERS = ["x0", "x1"]
ROUNDS = [
    [("c1", JOIN), ("c3", JOIN), ("r0", JOIN), ("d2", JOIN)],
    [(n, i) for i in range(2) for n in STAYERS + LEAVERS + RETURNERS],
    [(n, QUIT) for n in LEAVERS + RETURNERS] + [("d0", QUIT), ("x0", QUIT)]
    + [(n, 2) for n in STAYERS],
    [(n, i) for i in (3, 4) for n in RETURNERS + STAYERS] + [("x0", QUIT), ("c2", JOIN)],
    [(n, 5) for n in STAYERS + RETURNERS] + [("d1", QUIT), ("c4", JOIN), ("x1", QUIT)],
]

# The rule each run judges: which clients (by their standing), what is
# expected of them, and the hint when it fails.
RULES = {
    "udp-join": (
        "joined", "a member since it joined (it never left) is sent every line the server relays",
        "a datagram from an unknown address makes it a member until it says quit: a repeated "
        "join or a datagram out of order must not make the server forget it"),
    "udp-rejoin": (
        "rejoined", "a member that left and spoke again is sent every line the server relays",
        "a removed address that speaks again is a new member"),
    "quit": (
        "departed",
        "a client whose last datagram the server got was the quit that removed it is sent nothing",
        "quit removes its sender from the list"),
    "udp-unknown-quit": (
        "stranger", "a client from which the server got only quit, or quit again after it left, "
        "is sent nothing", "an unknown sender's quit (also a member's repeated quit, once it has "
        "left) is ignored: it does not make its sender a member"),
    "udp-no-duplicates": (
        "member", "no member is sent a line twice",
        "the server got datagrams twice (the network duplicated them, or a client said its join "
        "again): an address already on the list is not added again"),
}


class Standing:
    """A client as the server should see it, from what it was given."""

    def __init__(self, name: str, given: list[bytes], quit_word: bytes):
        self.name, self.given = name, given
        self.member, self.removed = False, 0
        self.quit_again = 0   # quits after its last removal (an unknown sender's)
        for data in given:
            if data != quit_word:
                self.member, self.quit_again = True, 0
            elif self.member:
                self.member, self.removed = False, self.removed + 1
            elif self.removed:
                self.quit_again += 1
        if self.member:
            self.kind = "rejoined" if self.removed else "joined"
        elif self.removed:
            self.kind = "left, quit again" if self.quit_again else "departed"
        else:
            self.kind = "stranger" if given else "unheard"

    def describe(self) -> str:
        shown = ", ".join(show_bytes(d, 40) for d in self.given)
        return f"{self.name} (the server was given, in order: {shown or 'nothing'})"


def _pace(chat, proxy):
    """Everything sent so far has reached the server and it has read it:
    its socket never overflows, so what the proxy delivered is what the
    server saw."""
    proxy.drain()
    left = settle_to(lambda: udp_queue(chat.server.pid, chat.port)[0], 0, chat.within(5))
    if left:
        raise CheckFailed("the server reads the datagrams of the lossy phase",
                          "its socket's queue empties within 5s", f"{left} bytes still unread",
                          "the server stopped reading its socket")
    dropped = udp_queue(chat.server.pid, chat.port)[1]
    if dropped:
        raise CheckFailed("the server reads the datagrams of the lossy phase",
                          "its socket never overflows (at most about 40 small datagrams at a time)",
                          f"the kernel dropped {dropped} datagrams at the server's socket: its queue "
                          "was full", "read the socket in a loop that does not wait on anything else")


def _lossy_phase(chat, proxy):
    """Run ROUNDS through the proxy; the clients and their standing."""
    # Leavers join first: the first member (the head of a list, slot 0)
    # leaves, an edge case of removal.
    names = LEAVERS[::-1] + STAYERS + RETURNERS
    clients = dict(zip(names, chat.connect(*names, confirm=False, port=proxy.port)))
    clients.update(zip(STRANGERS, chat.connect(*STRANGERS, silent=True, port=proxy.port)))
    join = (chat.protocol.join or "").encode()
    quit_word = chat.protocol.quit.encode()
    for round_ in ROUNDS:
        _pace(chat, proxy)
        for name, what in round_:
            c = clients[name]
            if what == JOIN:
                c._send_all(join)
                chat.transcript.add(name, "send", join, detail="(join again)")
            else:
                c.send(quit_word if what == QUIT else f"lossy {name} {what}".encode())
    # The network is reliable from here on; what it held back goes now.
    proxy.drain()
    proxy.set_faults(0, 0, 0)
    proxy.flush()
    _pace(chat, proxy)
    return clients, {n: Standing(n, proxy.to_server(c.address), quit_word) for n, c in clients.items()}


def _judged(standing, rule) -> list[str]:
    """The clients whose fate the rule decides."""
    kind = RULES[rule][0]
    if kind == "member":
        return sorted(n for n, s in standing.items() if s.member)
    if kind == "stranger":
        return sorted(n for n, s in standing.items() if s.kind in ("stranger", "left, quit again"))
    return sorted(n for n, s in standing.items() if s.kind == kind)


def _reliable_phase(chat, proxy, clients, standing):
    """w1, then each member, sends a line; the lines, and what the server
    sent each client (from the proxy's log) once it has handled them all."""
    # Two witnesses join directly, by speaking (that joins on any server).
    # w1's line comes first: it tests every client as the lossy phase left
    # it (a client's own line would make it a member again).
    w1, w2 = chat.connect("w1", "w2", silent=True)
    w1.send(b"w1 joins")
    w2.send(b"w2 joins")
    lines = {"w1": tagged("w1", 0, 20)}
    w1.send(lines["w1"])
    for name in sorted(standing):
        if standing[name].member:
            lines[name] = tagged(name, 0, 20)
            clients[name].send(lines[name])
    # A fence: the members' lines have left the proxy, so once w2 has w1's
    # next message, the server has handled every line before it: what it
    # sent w2 is in w2's stream, what it sent the others is at the proxy.
    proxy.drain()
    chat.probe(w1, [w2])
    proxy.drain()
    # A line the server relayed to w2 is one it accepted, and owes to every
    # member. One relayed to no one says its sender was ignored: that is
    # judged by the sender's standing, not by the others'.
    relayed = {s: line for s, line in lines.items() if line in {m.data for m in w2.messages}}

    def sent(name):
        return proxy.from_server(clients[name].address)
    # A server with more than one thread may still be relaying.
    proxy.wait_until(lambda: all(line in sent(n) for n in lines if n != "w1" for s, line in relayed.items()
                                 if s != n), chat.within(1))
    return lines, relayed, {n: sent(n) for n in clients}


def _problems(rule, standing, lines, relayed, sent) -> list[str]:
    """What breaks `rule`, client by client."""
    out = []
    everything = set(lines.values())
    for name in _judged(standing, rule):
        got, who = sent[name], standing[name].describe()
        if rule == "udp-no-duplicates":
            twice = [s for s, line in lines.items() if got.count(line) > 1]
            if twice:
                most = max(got.count(lines[s]) for s in twice)
                out.append(f"{who} was sent the lines of {', '.join(twice)} more than once "
                           f"(up to {most} times)")
        elif rule in ("udp-join", "udp-rejoin"):
            missing = [s for s, line in relayed.items() if s != name and line not in got]
            if missing:
                out.append(f"{who} was never sent the lines of {', '.join(missing)}")
            if name not in relayed:
                out.append(f"{who}: its own line was relayed to no one (w2 never got it)")
        else:
            wrong = [s for s, line in lines.items() if line in got]
            if wrong and standing[name].kind == "left, quit again" and (
                    any(everything & set(sent[d]) for d in _judged(standing, "quit"))
                    or _problems("udp-no-duplicates", standing, lines, relayed, sent)):
                # It left, then said quit again. When quit removes no one, or
                # members are listed twice, the repeated quit is not to blame.
                continue
            if wrong:
                out.append(f"{who} was sent the lines of {', '.join(wrong)}")
    return out


@pytest.mark.requires("udp", "quit")
@pytest.mark.parametrize("judged", [pytest.param(r, id=r, marks=pytest.mark.rule(r)) for r in RULES])
def test_membership_survives_loss(chat, judged):
    """The server's members after a lossy phase are those its datagrams
    made: duplicated, reordered and lost joins and quits do not corrupt the list."""
    chat.start_server()
    with UdpLossProxy.for_session(chat, seed=SEED, **FAULTS) as proxy:
        clients, standing = _lossy_phase(chat, proxy)
        faults = proxy.faults(TO_SERVER)
        # The seed is fixed and each client's fates are its own: the same
        # in every run, whatever the server. These hold for the seed chosen.
        assert all(faults.values()), f"seed {SEED} injected no fault of some kind: {faults}"
        for rule in RULES:
            assert _judged(standing, rule), f"seed {SEED} leaves no client to judge for {rule}"
        first = next(h.name for h in proxy.log if h.direction == TO_SERVER and h.action == "deliver")
        assert standing[first].kind == "departed", f"seed {SEED}: the first member, {first}, stays"
        lines, relayed, sent = _reliable_phase(chat, proxy, clients, standing)
    chat.expect_server_alive()
    problems = _problems(judged, standing, lines, relayed, sent)
    if problems:
        _, expected, hint = RULES[judged]
        raise CheckFailed(f"after a lossy phase (seed {SEED}: the proxy dropped {faults['dropped']}, "
                          f"duplicated {faults['duplicated']} and reordered {faults['reordered']} of "
                          "the clients' datagrams), w1 then each member sends a line over a reliable "
                          "network", expected, "\n            ".join(problems[:4]), hint)
