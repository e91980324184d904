"""Observers: judge what participants received, and watch a process.

`tagged` makes messages that say who sent them and in which order; the
whole-line checker then tells, for any receiver, whether each line it got
is exactly one message sent (nothing merged, split or corrupted), whether
each sender's messages came in order, and what is missing.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

_TAG = re.compile(rb"m:(?P<sender>[A-Za-z0-9_]+):(?P<seq>\d+):(?P<pad>[a-z]*)")


def tagged(sender: str, seq: int, size: int = 40) -> bytes:
    """A message naming its sender and number, padded to about `size` bytes."""
    head = f"m:{sender}:{seq:06d}:".encode()
    pad = bytes(97 + (seq + i) % 26 for i in range(max(size - len(head), 0)))
    return head + pad


@dataclass
class LineReport:
    receiver: str
    received: int = 0
    broken: list[bytes] = field(default_factory=list)       # not one whole tagged message
    duplicates: list[bytes] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)    # sender -> count
    own: int = 0                                            # own messages echoed back

    @property
    def ok(self) -> bool:
        # Own messages that came back break the no-echo rule, checked on
        # its own; here they are only reported.
        return not (self.broken or self.duplicates or self.out_of_order or self.missing)

    def describe(self, limit: int = 3) -> str:
        parts = []
        if self.broken:
            sample = ", ".join(repr(b[:80]) for b in self.broken[:limit])
            parts.append(f"{len(self.broken)} broken line(s) (merged, split or corrupted), e.g. {sample}")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate(s), e.g. {self.duplicates[0][:60]!r}")
        if self.out_of_order:
            parts.append(f"{len(self.out_of_order)} out of order, e.g. {self.out_of_order[0]}")
        if self.missing:
            parts.append("missing " + ", ".join(f"{n} from {s}" for s, n in sorted(self.missing.items())))
        if self.own:
            parts.append(f"{self.own} of its own messages came back")
        return f"{self.receiver}: received {self.received}; " + ("; ".join(parts) or "all whole and in order")


def check_lines(receiver: str, received: list[bytes], sent: dict[str, list[bytes]]) -> LineReport:
    """Judge the lines `receiver` got against what each sender sent.

    `sent` maps sender -> its messages in order; the receiver's own entry,
    if present, must not come back.
    """
    rep = LineReport(receiver, received=len(received))
    expected = {s: set(msgs) for s, msgs in sent.items()}
    last_seq: dict[str, int] = {}
    seen: set[bytes] = set()
    got: dict[str, int] = {}
    for line in received:
        m = _TAG.fullmatch(line)
        if m is None:
            rep.broken.append(line)
            continue
        sender = m.group("sender").decode()
        if sender not in expected or line not in expected[sender]:
            rep.broken.append(line)
            continue
        if sender == receiver:
            rep.own += 1
            continue
        if line in seen:
            rep.duplicates.append(line)
            continue
        seen.add(line)
        seq = int(m.group("seq"))
        if seq < last_seq.get(sender, -1):
            rep.out_of_order.append(f"{sender} #{seq} after #{last_seq[sender]}")
        last_seq[sender] = max(seq, last_seq.get(sender, -1))
        got[sender] = got.get(sender, 0) + 1
    for sender, msgs in sent.items():
        if sender == receiver:
            continue
        short = len(msgs) - got.get(sender, 0)
        if short:
            rep.missing[sender] = short
    return rep


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle_to(measure, target: int, within: float) -> int:
    """Poll `measure()` until it is at most `target` or the deadline passes;
    the last value. (Departed clients' threads exit asynchronously.)"""
    deadline = time.monotonic() + within
    value = measure()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.02)
        value = measure()
    return value
