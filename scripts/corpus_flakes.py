#!/usr/bin/python3
"""Grade the corpus (tests/corpus/) several times and report every check
whose verdict differs between runs: a flaky check, with the transcripts of
the runs that disagree. Not part of CI (it takes N times the corpus test).

    /usr/bin/python3 scripts/corpus_flakes.py [--runs 5] [--jobs 2] [--out DIR]
    /usr/bin/python3 scripts/corpus_flakes.py --compare DIR    # the runs an --out holds
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grading.chatgrade.corpus import CORPUS, submissions  # noqa: E402
from grading.chatgrade.reports import transcript_text  # noqa: E402


def grade_corpus(out: Path, jobs: int, only: set[str]) -> dict:
    """{(assignment, submission, nodeid): check} for one run. `only`:
    "assignment/submission" names to grade (empty: all of the corpus)."""
    for folder in sorted({p.parent for p in submissions(CORPUS)}):
        root = folder
        if only:
            picked = [f for f in sorted(folder.iterdir()) if f"{folder.name}/{f.name}" in only]
            if not picked:
                continue
            # batch grades every subfolder: a class of the picked ones only
            root = out / "class" / folder.name
            for f in picked:
                shutil.copytree(f, root / f.name)
        dest = out / folder.name
        subprocess.run([str(ROOT / "chatgrade"), "batch", str(root), "--assignment", folder.name,
                        "--out", str(dest), "--jobs", str(jobs)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return read_run(out)


def read_run(out: Path) -> dict:
    """The checks of one run's batch outputs (one folder per assignment)."""
    checks = {}
    for g in out.glob("*/submissions/*/grade.json"):
        grade = json.loads(g.read_text())
        for item in grade["items"]:
            for c in item["checks"]:
                checks[(g.parent.parent.parent.name, grade["submission"], c["nodeid"])] = c
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, help="keep each run's batch output here")
    ap.add_argument("--only", default="", metavar="A/S,...",
                    help="grade only these submissions (assignment/name, comma-separated)")
    ap.add_argument("--compare", type=Path, metavar="DIR",
                    help="grade nothing: compare the complete runs already in DIR (an earlier --out)")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    base = args.compare or args.out or Path(tempfile.mkdtemp(prefix="chatgrade-flakes-"))
    runs = []
    if args.compare:
        # A run is complete when every assignment of the corpus has its gradebook.
        want = {p.parent.name for p in submissions(CORPUS)} if not only else \
            {name.split("/")[0] for name in only}
        done = [d for d in sorted(base.glob("run*"))
                if {g.parent.name for g in d.glob("*/gradebook.csv")} >= want]
        runs = [read_run(d) for d in done]
        args.runs = len(runs)
        print(f"comparing {len(runs)} complete run(s): {', '.join(d.name for d in done)}")
    for i in range(0 if args.compare else args.runs):
        print(f"run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
        runs.append(grade_corpus(base / f"run{i + 1}", args.jobs, only))
    outcomes = defaultdict(list)
    for i, run in enumerate(runs):
        for key, check in run.items():
            outcomes[key].append((i + 1, check))
    flaky = {k: v for k, v in outcomes.items() if len({c["outcome"] for _, c in v}) > 1}
    total = len(outcomes)
    print(f"{total} check verdicts x {args.runs} runs: {len(flaky)} flaky")
    for (assignment, sub, nodeid), seen in sorted(flaky.items()):
        verdicts = ", ".join(f"run {i}: {c['outcome']}" for i, c in seen)
        print(f"\nFLAKY {assignment}/{sub} {nodeid}\n  {verdicts}")
        for i, c in seen:
            if c["outcome"] == "failed":
                f = c.get("failure") or {}
                print(f"  run {i} failed at: {f.get('step', '')}\n    expected {f.get('expected', '')}"
                      f"\n    actual   {f.get('actual', '')}")
                print("    " + transcript_text(c.get("transcript", []), last=30).replace("\n", "\n    "))
                break
    print(f"\nbatch outputs: {base}")
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
