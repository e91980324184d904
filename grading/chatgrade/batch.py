"""Grade a whole class: every subfolder of ROOT is a submission.

    OUT/gradebook.csv                      one row per submission
    OUT/submissions/<name>/grade.json      the grade (written last, atomically)
    OUT/submissions/<name>/{results.json,report.html,report.md,junit.xml}

A submission whose grade.json exists is done: after a crash or a kill -9,
`--resume` grades only the rest, and the gradebook is rebuilt from the
grade.json files, so it ends with exactly one row per submission. One
broken submission (or a grader failure on it) is recorded and the batch
goes on.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from harness.contract import by_id

from . import reports
from .grade import grade
from .output import write_all
from .rubric import for_contract

GRADEBOOK = "gradebook.csv"


def submissions(root: Path, shard: tuple[int, int] = (1, 1)) -> list[Path]:
    """The submission folders of ROOT (sorted), those of shard I of N."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    i, n = shard
    return [p for k, p in enumerate(folders) if k % n == i - 1]


def _failed_grade(sub: Path, assignment: str, why: str) -> dict:
    """A grade for a submission the grader could not grade: recorded, 0."""
    contract = by_id(assignment)
    return {"version": 1, "submission": sub.name, "path": str(sub), "assignment": assignment,
            "title": contract.title, "status": "grader_error", "score": 0.0,
            "max_score": for_contract(contract).max_score, "started": "", "execution_time": 0.0,
            "notes": [why], "build": {"ok": False, "system": "none", "log": "", "warnings": [],
                                      "programs": {}, "error": why, "duration": 0.0},
            "categories": [], "items": []}


def grade_one(sub: Path, assignment: str, out: Path, valgrind: bool, **options) -> dict:
    dest = out / "submissions" / sub.name
    try:
        with tempfile.TemporaryDirectory(prefix="chatgrade-batch-") as work:
            g = grade(sub, assignment, jobs=1, valgrind=valgrind, workdir=Path(work), hide=[out],
                      **options)
    except Exception:
        g = _failed_grade(sub, assignment, "the grader failed on this submission:\n"
                          + traceback.format_exc()[-2000:])
    write_all(g, json_path=dest / "results.json", junit_path=dest / "junit.xml",
              html_path=dest / "report.html", md_path=dest / "report.md",
              grade_json=dest / "grade.json")
    return g


def categories_of(assignment: str) -> list[str]:
    rubric = for_contract(by_id(assignment))
    return list(dict.fromkeys(["build"] + [i.category for i in rubric.items]))


def write_gradebook(out: Path, assignment: str, grades: list[dict]) -> Path:
    cats = categories_of(assignment)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "score", "max_score", "status", *cats])
    for g in sorted(grades, key=lambda g: g["submission"]):
        by_cat = {c["name"]: c["score"] for c in g.get("categories", [])}
        w.writerow([g["submission"], g["score"], g["max_score"], g["status"],
                    *[by_cat.get(c, 0.0) for c in cats]])
    path = out / GRADEBOOK
    reports.write_atomic(path, buf.getvalue())
    return path


def load_grades(out: Path) -> list[dict]:
    grades = []
    for p in sorted((out / "submissions").glob("*/grade.json")):
        try:
            grades.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            pass  # cannot happen with atomic writes; a damaged file is graded again
    return grades


def _progress(done: int, total: int, g: dict, t0: float) -> None:
    width = 30
    filled = width * done // max(total, 1)
    bar = "#" * filled + "-" * (width - filled)
    line = (f"[{bar}] {done}/{total}  {g['submission']}: {g['score']:g}/{g['max_score']:g} "
            f"({g['status']})  {time.monotonic() - t0:.0f}s")
    print(line, flush=True)


def batch(root: Path, assignment: str, out: Path, *, jobs: int = 2, shard=(1, 1),
          resume: bool = False, valgrind: bool = True, rules: list[str] | None = None,
          build_timeout: float | None = None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    subs = submissions(root, shard)
    done = {g["submission"] for g in load_grades(out)} if resume else set()
    if not resume:
        shutil.rmtree(out / "submissions", ignore_errors=True)
    todo = [s for s in subs if s.name not in done]
    print(f"chatgrade batch: {len(subs)} submission(s) in shard {shard[0]}/{shard[1]}, "
          f"{len(done & {s.name for s in subs})} already graded, {len(todo)} to grade", file=sys.stderr)
    t0 = time.monotonic()
    finished = len(subs) - len(todo)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_one, s, assignment, out, valgrind, rules=rules,
                               build_timeout=build_timeout) for s in todo]
        for f in as_completed(futures):
            finished += 1
            _progress(finished, len(subs), f.result(), t0)
    names = {s.name for s in subs}
    grades = [g for g in load_grades(out) if g["submission"] in names]
    path = write_gradebook(out, assignment, grades)
    print(f"chatgrade batch: gradebook {path} ({len(grades)} rows)", file=sys.stderr)
    return grades


def merge(outputs: list[Path], dest: Path) -> Path:
    """Join shard gradebooks into one (a submission graded twice: the
    last output named wins)."""
    rows: dict[str, list[str]] = {}
    header: list[str] | None = None
    for o in outputs:
        with open(o / GRADEBOOK, newline="") as f:
            r = csv.reader(f)
            h = next(r)
            if header is None:
                header = h
            elif h != header:
                raise ValueError(f"{o / GRADEBOOK}: columns differ from the first gradebook")
            for row in r:
                rows[row[0]] = row
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header or [])
    for name in sorted(rows):
        w.writerow(rows[name])
    path = dest / GRADEBOOK
    reports.write_atomic(path, buf.getvalue())
    print(f"chatgrade merge: {len(rows)} rows -> {path}", file=sys.stderr)
    return path
