"""What a new member received while it was joining (Receiver.pass_over_joining).

A member that connects while a probe is being relayed may get part of it:
a server that sends a line and its "\\n" in two sends gives it a lone "\\n"
on the runs where it joins between them. Those pieces are passed over, so
the race does not decide whatever check was connecting; the whole-lines
checks judge that defect on every run. Anything else (a greeting the
contract does not allow) stays for the scenario to judge.
"""

from harness.clients import Receiver
from harness.contract import Protocol
from harness.transcript import Transcript

PROBE = b"chatgrade-probe-2-0f28cc"


def _member(protocol=None) -> Receiver:
    return Receiver("c", protocol or Protocol(), Transcript())


def test_a_lone_newline_before_the_probe_is_passed_over():
    c = _member()
    c.feed(b"\n" + PROBE + b"\nhello\n")
    early = c.pass_over_joining()
    assert [m.line for m in early] == [b""]
    assert [m.data for m in c.messages] == [b"hello"] and c.cursor == 0


def test_the_tail_of_an_earlier_probe_is_passed_over():
    # A relay prefix sent on its own: the new member got the probe without it.
    c = _member(Protocol(relay=r"\[\w+\] (?P<msg>.*)"))
    c.feed(b"chatgrade-probe-1-0f28cc\n[a] " + PROBE + b"\n")
    assert [m.line for m in c.pass_over_joining()] == [b"chatgrade-probe-1-0f28cc"]
    assert c.messages == []


def test_a_greeting_is_not_a_piece_of_a_probe():
    c = _member()
    c.feed(b"welcome to the chat\n\n" + PROBE + b"\n")
    assert [m.line for m in c.pass_over_joining()] == [b""]
    assert [m.data for m in c.messages] == [b"welcome to the chat"]


def test_what_came_after_the_probe_stays():
    c = _member()
    c.feed(PROBE + b"\n\nbye\n")
    assert c.pass_over_joining() == []
    assert [m.data for m in c.messages] == [b"", b"bye"]


def test_messages_already_read_keep_the_cursor_right():
    c = _member()
    c.feed(b"first\n\n" + PROBE + b"\nnext\n")
    c.cursor = 1          # "first" was read by an earlier step
    c.pass_over_joining()
    assert [m.data for m in c.unread()] == [b"next"]
