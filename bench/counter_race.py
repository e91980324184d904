#!/usr/bin/env python3
"""How often one run of the shared counter shows a missing lock.

A counter without a lock loses an update (wrong total) or prints out of
order only when two of its threads run at the same instant; on a busy
machine one run may not show it. The contract's stress run is repeated for
that reason (grading/contracts/shared_counter.toml: stress_run,
stress_repeats). This measures, per run size and CPU load, the share of runs
of two lockless corpus submissions that show the mistake, and from it the
chance that every stress run of a grade misses it.

    /usr/bin/python3 bench/counter_race.py [--runs 30] [--load 0,1,3]

Not a test: the figures depend on the machine. Exit status 0.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import contract as contracts  # noqa: E402
from harness.counter import problems, run_counter  # noqa: E402
from harness.session import Programs  # noqa: E402

CORPUS = ROOT / "tests" / "corpus" / "shared_counter"
LOCKLESS = ["no_lock", "int_flag_spinlock"]


def _spin(stop):
    while not stop.is_set():
        pass


def build(name: str, into: Path) -> Programs:
    out = into / name
    out.mkdir()
    sources = sorted((CORPUS / name).rglob("*.c"))
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out / "shared_counter"), *map(str, sources)],
                   check=True)
    return Programs(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--load", default="0,1,3", help="busy loops beside the counter, comma-separated")
    ap.add_argument("--sizes", default="8x10000,16x10000,64x2500")
    args = ap.parse_args()
    contract = contracts.by_id("shared_counter")
    spec = contract.counter
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    print(f"contract: stress run {spec.stress_run[0]} x {spec.stress_run[1]}, "
          f"up to {spec.stress_repeats} times; {args.runs} runs per cell\n")
    print(f"{'submission':20} {'load':>4} {'size':>10} {'shows it':>9} {'all stress runs miss':>21}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in LOCKLESS:
            programs = build(name, Path(tmp))
            for load in (int(x) for x in args.load.split(",")):
                stop = multiprocessing.Event()
                spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(load)]
                for p in spinners:
                    p.start()
                try:
                    for threads, iters in sizes:
                        shown = 0
                        for _ in range(args.runs):
                            found = problems(contract, run_counter(contract, programs, threads, iters))
                            shown += bool(found["order"] or found["total"])
                        rate = shown / args.runs
                        miss = (1 - rate) ** spec.stress_repeats if (threads, iters) == spec.stress_run else None
                        print(f"{name:20} {load:>4} {threads:>4} x {iters:<5} {shown:>4}/{args.runs:<4}"
                              f" {'' if miss is None else f'{miss:.1e}':>21}", flush=True)
                finally:
                    stop.set()
                    for p in spinners:
                        p.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
