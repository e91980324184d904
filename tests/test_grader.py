"""The chatgrade command end to end: grade, batch (shards, resume, a kill
-9 mid-run), merge, and the Gradescope package run as Gradescope would."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from grading.chatgrade.gradescope_package import build_package, unpack

ROOT = Path(__file__).resolve().parent.parent
CHATGRADE = [str(ROOT / "chatgrade")]

COUNTER = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static long counter;
static long iters;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg)
{
	long t = (long)arg;
	for (long i = 0; i < iters; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		printf("thread %ld count %ld\n", t, counter);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}
int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	long n = atol(argv[1]);
	iters = atol(argv[2]);
	pthread_t *tids = malloc(sizeof *tids * (size_t)n);
	for (long t = 0; t < n; t++)
		pthread_create(&tids[t], NULL, work, (void *)t);
	for (long t = 0; t < n; t++)
		pthread_join(tids[t], NULL);
	free(tids);
	printf("total %ld\n", counter);
	return 0;
}
"""

# The classic mistake: the print after the unlock, so counts can come out
# of order.
PRINT_OUTSIDE = COUNTER.replace(
    'counter++;\n\t\tprintf("thread %ld count %ld\\n", t, counter);\n\t\tpthread_mutex_unlock(&lock);',
    'long mine = ++counter;\n\t\tpthread_mutex_unlock(&lock);\n\t\tprintf("thread %ld count %ld\\n", t, mine);')


def _submission(root: Path, name: str, source: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "shared_counter.c").write_text(source)
    return d


@pytest.fixture
def class_root(tmp_path):
    root = tmp_path / "class"
    _submission(root, "alice", COUNTER)
    _submission(root, "bob", PRINT_OUTSIDE)
    _submission(root, "carol", "int main(void) { return 0 }\n")   # does not build
    (root / "dave").mkdir()                                        # handed in nothing
    return root


def _run(*args, timeout=300):
    return subprocess.run(CHATGRADE + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _gradebook(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("args, words", [
    (["grade", "/no/such/folder", "--assignment", "tcp_chat"], "no such folder"),
    (["grade", ".", "--assignment", "tcp_chatt"], "unknown assignment"),
    (["grade", ".", "--assignment", "tcp_chat", "--jobs", "0"], "at least 1"),
    (["batch", ".", "--assignment", "tcp_chat", "--out", "x", "--shard", "3/2"], "between 1 and N"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_a_clear_message(args, words):
    r = _run(*args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr


def test_grade_writes_every_report_and_scores_by_rubric(class_root, tmp_path):
    out = tmp_path / "out"
    r = _run("grade", str(class_root / "alice"), "--assignment", "shared_counter",
             "--json", str(out / "results.json"), "--junit", str(out / "junit.xml"),
             "--html", str(out / "report.html"), "--md", str(out / "report.md"),
             "--grade-json", str(out / "grade.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == 100
    assert all(t["status"] == "passed" for t in results["tests"])
    for name in ("junit.xml", "report.html", "report.md"):
        assert (out / name).stat().st_size > 0
    assert "PASS" in r.stdout


def test_a_defect_costs_the_points_of_its_rule_and_says_why(class_root, tmp_path):
    out = tmp_path / "grade.json"
    r = _run("grade", str(class_root / "bob"), "--assignment", "shared_counter",
             "--grade-json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    g = json.loads(out.read_text())
    items = {i["id"]: i for i in g["items"]}
    assert items["counter-order"]["status"] == "failed"
    assert "critical section" in items["counter-order"]["output"]
    assert items["build"]["score"] == items["build"]["max_score"]
    assert g["score"] < 100


def test_a_build_failure_is_a_report_not_a_crash(class_root, tmp_path):
    out = tmp_path / "results.json"
    r = _run("grade", str(class_root / "carol"), "--assignment", "shared_counter", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["score"] == 0
    text = json.dumps(results)
    assert "error" in text and "shared_counter.c" in text   # the compiler's message
    assert len(results["tests"]) > 1                         # every item listed, with the reason


def test_batch_shards_merge_and_resume(class_root, tmp_path):
    outs = []
    for i in (1, 2):
        out = tmp_path / f"shard{i}"
        r = _run("batch", str(class_root), "--assignment", "shared_counter", "--out", str(out),
                 "--shard", f"{i}/2", "--no-valgrind")
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(out)
    merged = tmp_path / "merged"
    r = _run("merge", *map(str, outs), "--out", str(merged))
    assert r.returncode == 0, r.stderr
    book = _gradebook(merged)
    assert set(book) == {"alice", "bob", "carol", "dave"}
    assert float(book["alice"]["score"]) == 100 - 15 - 20   # the valgrind items are not run
    assert book["carol"]["status"] == "build_failed" and float(book["carol"]["score"]) == 0
    assert book["dave"]["status"] == "build_failed"
    # Resume grades only what is missing.
    first = outs[0]
    kept = sorted((first / "submissions").glob("*/grade.json"))
    stamp = {p: p.stat().st_mtime_ns for p in kept}
    kept[0].unlink()
    r = _run("batch", str(class_root), "--assignment", "shared_counter", "--out", str(first),
             "--shard", "1/2", "--resume", "--no-valgrind")
    assert r.returncode == 0, r.stderr[-3000:]
    assert kept[0].exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items() if p != kept[0])
    assert len(_gradebook(first)) == len(kept)


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = []
        try:
            # Each thread's children are listed under that thread.
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids += [int(k) for k in f.read().split()]
        except OSError:
            continue
        out |= set(kids)
        todo += kids
    return out


def _alive(pids) -> set[int]:
    return {p for p in pids if os.path.exists(f"/proc/{p}")}


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ")
    except OSError:
        return b""


def test_kill_9_of_grader_and_runner_takes_the_programs_along(tmp_path):
    """`pkill -9` of the grader and its check runner at once leaves no time
    for any teardown: the sandbox's keeper dies with whatever started it,
    and the program's namespace with the keeper."""
    root = tmp_path / "class"
    # Would sleep 10 minutes: only dying with the grader ends it in time.
    _submission(root, "sleeper", "#include <unistd.h>\nint main(void) { sleep(600); return 0; }\n")
    proc = subprocess.Popen(CHATGRADE + ["batch", str(root), "--assignment", "shared_counter",
                                         "--out", str(tmp_path / "out"), "--jobs", "1", "--no-valgrind"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            family = _descendants(proc.pid)
            # The built program running (not its build), as the sandbox user.
            program = {p for p in _alive(family)
                       if _cmdline(p).split(b" ")[0].endswith(b"/bin/shared_counter")
                       and os.stat(f"/proc/{p}").st_uid != 0}
            if program:
                break     # the submission's program runs, in its sandbox
            time.sleep(0.05)
        else:
            pytest.fail("the submission's program never started")
        runner = next(p for p in family if b" -m pytest " in _cmdline(p))
        os.kill(proc.pid, signal.SIGKILL)
        os.kill(runner, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(program) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(program) == set(), "the program outlived the grader killed with -9"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_9_mid_batch_then_resume_leaves_one_row_each(class_root, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(CHATGRADE + ["batch", str(class_root), "--assignment", "shared_counter",
                                         "--out", str(out), "--jobs", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((out / "submissions").glob("*/grade.json")) and time.monotonic() < deadline:
        time.sleep(0.1)   # wait (bounded) for the first result, then kill mid-run
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = _run("batch", str(class_root), "--assignment", "shared_counter", "--out", str(out),
             "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    book = _gradebook(out)
    assert sorted(book) == ["alice", "bob", "carol", "dave"]
    for g in (out / "submissions").glob("*/grade.json"):
        json.loads(g.read_text())        # every grade whole
    for report in (out / "submissions").glob("*/results.json"):
        json.loads(report.read_text())   # every report whole


def test_gradescope_package_runs_like_gradescope(class_root, tmp_path):
    zip_path = build_package("shared_counter", tmp_path / "autograder.zip")
    ag = tmp_path / "autograder"
    unpack(zip_path, ag / "source")
    sub = ag / "submission"
    sub.mkdir(parents=True)
    (sub / "shared_counter.c").write_text(COUNTER)
    r = subprocess.run(["bash", str(ag / "source" / "run_autograder")], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "AUTOGRADER_ROOT": str(ag)})
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((ag / "results" / "results.json").read_text())
    assert results["score"] == 100, json.dumps(results)[:2000]


def test_grading_the_references_is_deterministic(tmp_path):
    """Three grades in a row of the same (correct) program: the same score.
    (More repetitions are a flake hunt, not a test: scripts/corpus_flakes.py
    grades the whole corpus N times.)"""
    scores = []
    for i in range(3):
        out = tmp_path / f"g{i}.json"
        r = _run("grade", str(ROOT / "impl"), "--assignment", "tcp_chat", "--no-valgrind",
                 "--grade-json", str(out), timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        g = json.loads(out.read_text())
        scores.append(g["score"])
        assert g["status"] == "graded"
    assert len(set(scores)) == 1, scores
    # Without valgrind, only the valgrind items (memcheck 7, races 6) are missing.
    assert scores[0] == 100 - 7 - 6, scores
