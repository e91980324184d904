"""harness/counter.py judges a run's output: the fast path (one findall)
must say exactly what the line-by-line path says, on every kind of output
a student's program prints."""

import random

import pytest

from harness import contract as contracts
from harness import counter
from harness.counter import CounterRun, problems

CONTRACT = contracts.by_id("shared_counter")


def _output(threads, iters, rng, mistake):
    lines, value = [], 0
    order = [t for t in range(threads) for _ in range(iters)]
    rng.shuffle(order)
    for t in order:
        value += 1
        lines.append(f"thread {t} count {value}")
    if mistake == "lost update" and lines:
        i = rng.randrange(len(lines))
        lines[i:] = [f"thread {ln.split()[1]} count {int(ln.split()[3]) - 1}" for ln in lines[i:]]
        value -= 1
    if mistake == "swapped" and len(lines) > 2:
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    if mistake == "torn line" and lines:
        i = rng.randrange(len(lines))
        lines[i] = lines[i][:7] + "thread 0 count 1"
    if mistake == "crlf" and lines:
        lines[-1] += "\r"
    total = [f"total {value}"]
    if mistake == "total first":
        lines = total + lines
    elif mistake != "no total":
        lines += total
    text = "\n".join(lines) + ("" if mistake == "no final newline" else "\n")
    if mistake == "empty":
        text = ""
    return text.encode()


MISTAKES = [None, "lost update", "swapped", "torn line", "crlf", "total first", "no total",
            "no final newline", "empty"]


@pytest.mark.parametrize("mistake", MISTAKES)
def test_fast_and_slow_paths_agree(mistake, monkeypatch):
    rng = random.Random(f"{mistake}")
    for threads, iters in [(1, 1), (3, 7), (8, 200)]:
        out = _output(threads, iters, rng, mistake)
        run = CounterRun(threads, iters, 0, False, out, "")
        fast = problems(CONTRACT, run)
        monkeypatch.setattr(counter, "_parse_fast", lambda *a: None)
        slow = problems(CONTRACT, run)
        monkeypatch.undo()
        assert fast == slow, (mistake, out[:200])
        if mistake is None:
            assert fast == {"lines": [], "order": [], "total": []}
        elif threads * iters > 2:   # one line cannot be swapped with the next
            assert any(fast.values()), f"{mistake} went unnoticed"
