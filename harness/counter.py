"""Running and judging the shared-counter program.

The contract says what a line looks like (a regex) and what runs to make;
this module runs the program (natively or under valgrind) and says what is
wrong with its output, line by line.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import sandbox, valgrind
from .contract import Contract
from .procs import Supervisor
from .session import Programs
from .transcript import Transcript


@dataclass
class CounterRun:
    threads: int
    iters: int
    returncode: int | None
    timed_out: bool
    stdout: bytes
    stderr: str
    report: valgrind.Report | None = None


def run_counter(contract: Contract, programs: Programs, threads: int, iters: int,
                tool: str | None = None, timeout: float = 20.0,
                transcript: Transcript | None = None) -> CounterRun:
    spec = contract.counter
    exe = programs.path(spec)
    argv = [str(exe), *spec.render(threads=threads, iters=iters)]
    sup = Supervisor(transcript)
    with tempfile.TemporaryDirectory(prefix="chatgrade-counter-") as tmp:
        xml, log = Path(tmp) / "vg.xml", Path(tmp) / "vg.log"
        if tool:
            argv = valgrind.valgrind_argv(tool, argv, xml, log)
            timeout *= valgrind.TIMEOUT_SCALE[tool]
        box = sandbox.Sandbox(Path(tmp), visible=[exe.parent, valgrind.SUPPRESSIONS_DIR],
                              limits=sandbox.Limits().scaled(valgrind.TIMEOUT_SCALE[tool] if tool else 1))
        # Output to a file, not a pipe: through a pipe the program's threads
        # wait (holding stdout's lock) whenever the harness is slow to read,
        # one at a time, and on a busy machine a counter with no lock then
        # loses no update. Measured with a reader that sleeps 5 ms per 4 KB:
        # 1 run in 5 of the corpus's no_lock printed the right total.
        out = Path(tmp) / "stdout"
        proc = sup.run("counter", argv, timeout=timeout, cwd=tmp, sandbox=box, stdout_file=out)
        sup.stop_all()
        report = valgrind.load_report(xml, log, tool) if tool else None
        stdout = out.read_bytes()      # at most the file-size limit (64 MB)
    return CounterRun(threads, iters, proc.popen.returncode, proc.timed_out,
                      stdout, proc.stderr.text(), report)


ASPECTS = ("lines", "order", "total")


@dataclass
class Judged:
    """One run of the output checks, judged: what is wrong by aspect."""
    threads: int
    iters: int
    step: str                       # "shared_counter 16 10000 (stress run 3 of 5)"
    problems: dict[str, list[str]]
    stderr: str


# The runs already judged, per program: the three output checks (lines,
# order, total) share them, so a correct program is run once per worker, not
# three times. Keyed by the file's identity, so a rebuilt program is run again.
_judged: dict[tuple, list[Judged]] = {}


def output_runs(contract: Contract, programs: Programs):
    """Yield the judged runs the output checks look at: the contract's runs,
    then its stress run, repeated. A check stops at the first run that shows
    its mistake; the runs it did not need are never made."""
    spec = contract.counter
    exe = programs.path(spec)
    st = exe.stat()
    key = (contract.id, str(exe), st.st_ino, st.st_mtime_ns, st.st_size)
    done = _judged.setdefault(key, [])
    while len(_judged) > 4:          # one submission at a time, in practice
        _judged.pop(next(iter(_judged)))
    def command(t, n):
        return " ".join([spec.program, *spec.render(threads=t, iters=n)])
    plan = [(t, n, command(t, n)) for t, n in spec.runs]
    if spec.stress_run:
        t, n = spec.stress_run
        plan += [(t, n, f"{command(t, n)} (stress run {k} of {spec.stress_repeats})")
                 for k in range(1, spec.stress_repeats + 1)]
    for i, (threads, iters, step) in enumerate(plan):
        if i == len(done):
            run = run_counter(contract, programs, threads, iters)
            done.append(Judged(threads, iters, step, problems(contract, run), run.stderr[-300:]))
        yield done[i]




def problems(contract: Contract, run: CounterRun) -> dict[str, list[str]]:
    """What is wrong with one run's output, by aspect of the handout:
    "lines" (each whole and well-formed, every thread printing ITERS
    lines), "order" (counts 1..N in output order), "total" (the total line,
    N count lines, exit 0). Each aspect is its own rule, so one mistake
    costs the points of its own rule only."""
    spec = contract.counter
    line_re = re.compile(spec.line.encode())
    total_re = re.compile(spec.total.encode())
    n = run.threads * run.iters
    out: dict[str, list[str]] = {a: [] for a in ASPECTS}
    if run.timed_out:
        msg = f"did not finish in time ({run.threads} threads x {run.iters})"
        return {a: [msg] for a in ASPECTS}
    if run.returncode != 0:
        out["total"].append(f"exit status {run.returncode}, expected 0")
    lines = run.stdout.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        out["lines"].append("the output does not end with a newline")
    parsed = _parse_fast(line_re, total_re, run.stdout, len(lines))
    counts, per_thread, total = parsed if parsed else _parse_slow(line_re, total_re, lines, out)
    first = next((i for i, c in enumerate(counts) if c != i + 1), None) \
        if counts != list(range(1, len(counts) + 1)) else None
    if first is not None:
        out["order"].append(f"counts out of sequence: line {first + 1} says {counts[first]}, "
                            f"expected {first + 1} (the print must be inside the critical section)")
    bad_threads = sorted(t for t in per_thread if not 0 <= t < run.threads)
    if bad_threads:
        out["lines"].append(f"thread numbers outside 0..{run.threads - 1}: {bad_threads[:5]}")
    uneven = {t: c for t, c in per_thread.items() if c != run.iters}
    if uneven and not bad_threads:
        out["lines"].append(f"threads that did not print {run.iters} lines: {dict(list(uneven.items())[:5])}")
    if len(counts) != n:
        out["total"].append(f"{len(counts)} count lines, expected {n}")
    if total is None:
        out["total"].append("no total line")
    elif total != n:
        out["total"].append(f"total {total}, expected {n}")
    return out


def _parse_fast(line_re, total_re, stdout: bytes, n_lines: int):
    """(counts, lines per thread, total) when every line is well-formed and
    the total line comes last; None otherwise (then _parse_slow says which
    line is wrong). The stress runs print hundreds of thousands of lines:
    one findall in C instead of a Python loop over them."""
    body, _, last = stdout.rstrip(b"\n").rpartition(b"\n")
    m = total_re.fullmatch(last)
    if m is None:
        return None
    found = re.compile(b"^(?:" + line_re.pattern + b")$", re.M).findall(body + b"\n") if body else []
    if len(found) != n_lines - 1:
        return None
    ti, ci = line_re.groupindex["thread"] - 1, line_re.groupindex["count"] - 1
    # Two named groups at least (the contract's), so findall gives tuples.
    counts = [int(r[ci]) for r in found]
    per_thread = dict(Counter(int(r[ti]) for r in found))
    return counts, per_thread, int(m.group("total"))


def _parse_slow(line_re, total_re, lines: list[bytes], out: dict[str, list[str]]):
    counts, per_thread, total = [], {}, None
    for i, line in enumerate(lines, 1):
        m = line_re.fullmatch(line)
        if m:
            if total is not None:
                out["order"].append(f"line {i}: a count after the total line")
            counts.append(int(m.group("count")))
            t = int(m.group("thread"))
            per_thread[t] = per_thread.get(t, 0) + 1
            continue
        m = total_re.fullmatch(line)
        if m and total is None:
            total = int(m.group("total"))
            continue
        if len(out["lines"]) < 8:
            out["lines"].append(f"line {i} is not whole or not well-formed: {line[:80]!r}")
    return counts, per_thread, total
