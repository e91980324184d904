"""Markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "valgrind: runs programs under valgrind (slow; deselect with -m 'not valgrind')")
    # This run's tag, inherited by the xdist workers and every grader they
    # start: sandbox cgroups carry it, so the leftover check below judges
    # this run's boxes only, not those of another run on the machine.
    import os
    import secrets
    os.environ.setdefault("CHATGRADE_RUN", "t" + secrets.token_hex(4))


def pytest_terminal_summary(terminalreporter):
    """The corpus table (tests/test_corpus.py), when the corpus was graded:
    submission, expected verdict, rule, score, points lost where."""
    # Setup, call and teardown reports all carry the property: one row each.
    rows = list({value[0]: value for reports in terminalreporter.stats.values() for rep in reports
                 for key, value in getattr(rep, "user_properties", ())
                 if key == "corpus_row"}.values())
    if not rows:
        return
    tr = terminalreporter
    tr.section("grader on the corpus")
    head = ("submission", "expected", "rule", "score", "points lost where", "verdict")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *sorted(rows)]:
        tr.write_line("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    defective = [r for r in rows if r[1] == "defective"]
    correct = [r for r in rows if r[1] == "correct"]
    caught = sum(r[5] == "ok" for r in defective)
    punished = sum(r[5] != "ok" for r in correct)
    tr.write_line(f"catch rate {caught}/{len(defective)}; correct submissions punished "
                  f"{punished}/{len(correct)}")


def _leftovers() -> list[str]:
    """Processes of this run still alive: anything of the sandbox user, any
    sandbox keeper, any program started from this checkout's build. A
    process in a box of another run (its cgroup has another tag) is that
    run's business."""
    import os
    import re
    from pathlib import Path
    from harness import sandbox
    root = str(Path(__file__).resolve().parent.parent)
    me = os.getpid()
    ours = f"-{sandbox.run_tag()}-"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/cgroup") as f:
                boxes = re.findall(r"/box-\d+-[^/\n]*", f.read())
        except OSError:
            continue
        if boxes and not any(ours in b for b in boxes):
            continue
        if sandbox.is_sandbox_uid(uid) or "chatgrade-sandbox" in cmd or \
                f"{root}/build/" in cmd or f"{root}/tests/mutants/" in cmd:
            found.append(f"{pid} {cmd[:120]}")
    st = sandbox._probe() if os.geteuid() == 0 else {}
    for controller in ("pids", "memory"):
        base = st.get(controller)
        if base is not None and Path(base).exists():
            # A grader killed with -9 (the resume test) leaves empty cgroups,
            # swept by the next one; a cgroup still holding a process is a leak.
            sandbox.sweep_cgroups(Path(base))
            found += [f"cgroup {d} holds {(d / 'cgroup.procs').read_text().split()}"
                      for d in Path(base).glob(f"box-*{ours}*") if (d / "cgroup.procs").read_text().split()]
    return found


def pytest_sessionfinish(session, exitstatus):
    """After the whole suite: nothing it started is left on the machine."""
    if hasattr(session.config, "workerinput"):
        return      # an xdist worker: the controller checks once, at the very end
    import time
    deadline = time.monotonic() + 10
    left = _leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)   # processes being reaped as the last workers exit
        left = _leftovers()
    if left:
        session.config.stash[LEFT_KEY] = left
        session.exitstatus = 1


try:
    import pytest
    LEFT_KEY = pytest.StashKey[list]()
except AttributeError:  # pragma: no cover
    LEFT_KEY = "chatgrade-left"


def pytest_unconfigure(config):
    left = config.stash.get(LEFT_KEY, None)
    if left:
        import sys
        print("\nLEFT ON THE MACHINE after the suite (a sandbox or teardown leak):\n  "
              + "\n  ".join(left), file=sys.stderr)
