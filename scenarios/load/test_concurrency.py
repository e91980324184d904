"""Whole lines and order when many members talk at once.

The rule these check is the one a missing lock breaks: the bytes of two
relayed messages never interleave at a receiver, however many clients send
at once and however their lines were cut into segments on the way in.
"""

import random
import threading
import time

import pytest

from harness.clients import CheckFailed
from harness.observe import check_lines, tagged


def _judge(chat, clients, sent, step):
    """Wait for every receiver to get every other sender's messages, then
    judge each stream; fail with the first receivers' problems."""
    # One deadline for all: a server that loses lines costs 15 s, not 15 s
    # per receiver.
    deadline = time.monotonic() + chat.within(15)
    for c in clients:
        want = sum(len(m) for s, m in sent.items() if s != c.name)
        c.wait_count(want, max(0.0, deadline - time.monotonic()))
    reports = [check_lines(c.name, [m.data for m in c.messages], sent) for c in clients]
    bad = [r for r in reports if not r.ok]
    if bad:
        raise CheckFailed(step, "every line whole, once, in each sender's order",
                          "\n            ".join(r.describe() for r in bad[:4]),
                          "relay each complete line under the lock; never relay a recv() chunk as it comes")


def _all_at_once(clients, talk):
    """Run talk(client) for every client at the same time."""
    threads = [threading.Thread(target=talk, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _will_send(client, messages):
    """Tell the client what it is about to send in raw pieces, so its own
    messages coming back are set apart (the no-echo rule is checked on its
    own) rather than counted as received."""
    for m in messages:
        client.sent[m] += 1


def _send_cut(client, data: bytes, rng: random.Random):
    """Send `data` in random pieces, so lines cross segment boundaries."""
    pos = 0
    while pos < len(data):
        n = rng.randint(1, 300)
        client.send_raw(data[pos:pos + n])
        pos += n


@pytest.mark.rule("whole-lines")
@pytest.mark.requires("tcp", "line-framing")
def test_twenty_senders_at_once_lines_stay_whole(chat):
    chat.start_server()
    names = [f"s{i}" for i in range(20)]
    clients = chat.connect(*names)
    sent = {n: [tagged(n, i, 30 + (i * 37) % 300) for i in range(40)] for n in names}

    def talk(c):
        _will_send(c, sent[c.name])
        _send_cut(c, b"".join(chat.protocol.frame(m) for m in sent[c.name]), random.Random(c.name))

    _all_at_once(clients, talk)
    _judge(chat, clients, sent, "20 clients each send 40 lines at once, cut into random segments")


@pytest.mark.rule("whole-lines")
@pytest.mark.requires("udp")
def test_ten_senders_at_once_datagrams_stay_whole(chat):
    chat.start_server()
    names = [f"s{i}" for i in range(10)]
    clients = chat.connect(*names)
    sent = {n: [tagged(n, i, 30 + (i * 37) % 300) for i in range(20)] for n in names}
    # Each speaks once, in turn, before all talk at once, so the list a
    # server keeps (and updates when a member speaks) is the same on every
    # run: a server that adds a speaker to it twice has done so before the
    # burst, and the burst then reaches that member twice on every run, not
    # only when it happened to speak before the others were done.
    for c in clients:
        c.send(sent[c.name][0], settle=True)

    def talk(c):
        for m in sent[c.name][1:]:
            c.send(m)

    _all_at_once(clients, talk)
    _judge(chat, clients, sent, "10 clients each send 20 datagrams at once")


@pytest.mark.rule("whole-lines")
@pytest.mark.requires("tcp", "line-framing")
def test_slow_typist_while_others_talk(chat):
    chat.start_server()
    typist, b, c, d = chat.connect("typist", "b", "c", "d")
    line = tagged("typist", 0, 80)
    sent = {"typist": [line], "b": [tagged("b", i) for i in range(30)],
            "c": [tagged("c", i) for i in range(30)], "d": []}
    _will_send(typist, [line])
    # Each piece is read by the server before the others go on (settle):
    # a server that relays what one read() returns breaks the line every
    # run, not only when the pieces happen to arrive apart. Between pieces,
    # b then c send 10 lines each, and everyone has them before anyone goes
    # on: the typist's line is assembled across the others' talk, with no
    # two relays at once. Relays at once are the twenty senders' check;
    # here they would make a relay sent in two pieces fail some runs only.
    typist.send_raw(line[:10], settle=True)
    members = [typist, b, c, d]
    got = {m.name: 0 for m in members}
    deadline = time.monotonic() + chat.within(15)   # one for all: _judge reports a loss
    for k in range(3):
        for x in (b, c):
            for m in sent[x.name][k * 10:(k + 1) * 10]:
                x.send(m)
            for r in members:
                if r is not x:
                    got[r.name] += 10
                    r.wait_count(got[r.name], max(0.0, deadline - time.monotonic()))
        typist.send_raw(line[10 + k * 20: 10 + (k + 1) * 20], settle=True)
    typist.send_raw(line[70:] + b"\n")
    _judge(chat, [typist, b, c, d], sent, "a line typed in 5 pieces while two others send 30 lines each")


@pytest.mark.rule("whole-lines")
@pytest.mark.requires("tcp", "line-framing")
def test_many_lines_in_one_write(chat):
    chat.start_server()
    clients = chat.connect("burst", "r1", "r2", "r3")
    sent = {"burst": [tagged("burst", i, 50) for i in range(500)], "r1": [], "r2": [], "r3": []}
    _will_send(clients[0], sent["burst"])
    clients[0].send_raw(b"".join(chat.protocol.frame(m) for m in sent["burst"]))
    _judge(chat, clients[1:], sent, "500 lines sent in one write")
