"""The hostile corpus (tests/hostile/): submissions that attack the machine
that grades them. One batch grades them all, next to a correct submission
that holds a secret, and each must end with a clear, recorded verdict while
the batch goes on, nothing escapes, and nothing outside the box is read or
touched. A few rules are graded (--rules), enough for every case to show.
"""

import csv
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import sandbox

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile" / "tcp_chat"
CORRECT = ROOT / "tests" / "corpus" / "tcp_chat" / "correct_slots"
RUBRIC = ROOT / "grading" / "rubrics" / "tcp_chat.toml"
SECRET = "SIBLING-SECRET-7f3a9c"
RULES = "relay,shutdown,client-sends"
BUILD_TIMEOUT = 10

pytestmark = [pytest.mark.skipif(not sandbox.available(),
                                 reason="the hostile corpus needs the sandbox: " + sandbox.mode_description()),
              pytest.mark.timeout(1200)]   # the batch in the fixture: about a minute alone

# case: (status, phrase the grade must contain). The phrase is what an
# instructor reads in the report.
EXPECTED = {
    "fork_bomb": ("graded", "hit the limit of 1024 processes and threads"),
    "client_fork_bomb": ("graded", "hit the limit of 1024 processes and threads"),
    "infinite_loop": ("server_failed", "not listening on 7000; it listens on no port at all"),
    "never_binds": ("server_failed", "not listening on 7000; it listens on no port at all"),
    "memory_hog": ("server_failed", "killed: over 512 MB of memory"),
    "output_flood": ("graded", "dropped"),
    "wrong_port": ("server_failed", "not listening on 7000; it listens on 7001 instead"),
    "segfault_at_start": ("server_failed", "the server ended first (crashed with SIGSEGV)"),
    "segfault_under_load": ("graded", "the server crashed with SIGSEGV during"),
    "ignores_sigterm": ("graded", "s after SIGTERM, so killed by SIGKILL"),
    # The parent exits once its child listens: whether the start is seen
    # before the parent's exit is the submission's own race. Either way it
    # is told that it left a process running.
    "daemonizes": (("server_failed", "graded"), "left 1 process(es) running when it ended"),
    "netns_inspect": ("graded", "NETINSPECT"),
    "reads_sibling": ("graded", "STOLEN-FAILED"),
    "reads_grader": ("graded", "STOLEN-FAILED"),
    "endless_build": ("build_failed", f"ran for more than {BUILD_TIMEOUT}s and was stopped"),
    "makefile_canary": ("graded", "built with make"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the hostile class once; (grades by name, out folder, context)."""
    base = tmp_path_factory.mktemp("hostile")
    klass = base / "class"
    klass.mkdir()
    canary = base / "canary.txt"          # outside every submission folder
    canary.write_text("the Makefile must not delete me\n")
    sibling = klass / "zz_correct"        # another student, with a secret
    shutil.copytree(CORRECT, sibling, ignore=shutil.ignore_patterns("expected.toml"))
    (sibling / "notes.txt").write_text(SECRET + "\n")
    subst = {"@SECRET_PATH@": str(sibling / "notes.txt"), "@SIBLING_DIR@": str(sibling),
             "@RUBRIC_PATH@": str(RUBRIC), "@CANARY@": str(canary)}
    for case in sorted(p for p in HOSTILE.iterdir() if p.is_dir()):
        # A case holds only the files it changes: the rest is the correct
        # submission it was made from.
        dest = klass / case.name
        shutil.copytree(CORRECT, dest, ignore=shutil.ignore_patterns("expected.toml"))
        shutil.copytree(case, dest, dirs_exist_ok=True)
        for f in dest.iterdir():
            text = f.read_text()
            for key, value in subst.items():
                text = text.replace(key, value)
            f.write_text(text)
    out = base / "out"
    t0 = time.monotonic()
    proc = subprocess.run([str(ROOT / "chatgrade"), "batch", str(klass), "--assignment", "tcp_chat",
                           "--out", str(out), "--jobs", "2", "--no-valgrind", "--rules", RULES,
                           "--build-timeout", str(BUILD_TIMEOUT)],
                          capture_output=True, text=True, timeout=1500)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    grades = {g["submission"]: g for g in
              (json.loads(p.read_text()) for p in (out / "submissions").glob("*/grade.json"))}
    print(f"\nhostile corpus graded in {took:.0f} s")
    for name, g in sorted(grades.items()):
        print(f"  {name:22} {g['status']:14} {g['score']:5}  {verdict(g)[:150]}")
    return grades, out, {"canary": canary, "sibling": sibling}


def verdict(g: dict) -> str:
    """The first thing the report says went wrong."""
    if g["status"] != "graded":
        return g["notes"][-1] if g["status"] != "build_failed" else g["build"]["error"]
    failed = [c for i in g["items"] for c in i["checks"] if c["outcome"] == "failed"]
    return failed[0]["failure"]["actual"] if failed else "all selected checks passed"


def test_every_case_graded_and_the_batch_went_on(graded):
    grades, out, _ = graded
    assert set(grades) == set(EXPECTED) | {"zz_correct"}
    with open(out / "gradebook.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["submission"] for r in rows) == sorted(grades)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_verdict(graded, case):
    grades, _, _ = graded
    g = grades[case]
    status, phrase = EXPECTED[case]
    assert g["status"] in ((status,) if isinstance(status, str) else status), verdict(g)
    assert phrase in json.dumps(g), f"{case}: '{phrase}' not in the grade; it says: {verdict(g)}"
    # "crashed ... during '<step>'": the step's first line, not its description too
    assert not any(re.search(r"during '[^'\n]*\n", it["output"]) for it in g["items"]), verdict(g)
    if case not in ("netns_inspect", "reads_sibling", "reads_grader", "makefile_canary", "output_flood"):
        assert g["score"] < 100, f"{case} was not penalised"


def test_correct_neighbour_unharmed(graded):
    grades, _, _ = graded
    g = grades["zz_correct"]
    graded_items = [i for i in g["items"] if i["status"] != "skipped"]
    assert all(i["score"] == i["max_score"] for i in graded_items), verdict(g)


def test_secrets_never_reached_the_reports(graded):
    """Neither the sibling's secret nor the rubric's text appears in any
    report: the programs could not read them, so they could not relay them."""
    _, out, ctx = graded
    rubric_line = next(l for l in RUBRIC.read_text().splitlines() if "points" in l and "=" in l)
    for f in (out / "submissions").rglob("*"):
        if f.is_file() and f.parent.name != "zz_correct":
            text = f.read_text(errors="replace")
            assert SECRET not in text, f"{f}: the sibling's secret leaked"
            assert rubric_line not in text, f"{f}: the rubric leaked"


def test_canary_outside_the_submission_survives(graded):
    _, _, ctx = graded
    assert ctx["canary"].read_text() == "the Makefile must not delete me\n"


def test_namespace_shows_only_loopback(graded):
    """What netns_inspect printed from inside: interfaces and routes."""
    grades, _, _ = graded
    lines = set()
    for item in grades["netns_inspect"]["items"]:
        for c in item["checks"]:
            for ev in c.get("transcript", []):
                if ev["kind"] == "stderr":
                    lines |= {l for l in ev["data"].splitlines() if l.startswith("NETINSPECT")}
    assert lines, "no NETINSPECT output was recorded"
    ifaces = {m.group(1) for l in lines for m in [re.match(r"NETINSPECT getifaddrs (\S+)", l)] if m}
    assert ifaces == {"lo"}, ifaces
    routes = [l for l in lines if l.startswith("NETINSPECT /proc/net/route") and "Iface" not in l]
    assert routes == [], routes
