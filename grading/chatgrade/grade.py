"""Grade one submission: build it, run every check of its assignment,
score the results by the rubric, and return the grade (see model.py).

The checks run in a pytest subprocess (the harness's plugin, pointed at the
submission's build); each check's outcome is appended to a results file as
it finishes, so a live view can follow it and a run that is stopped half
way still leaves every result it reached.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from harness import netns, sandbox
from harness.build import build
from harness.procs import Supervisor
from harness.contract import Contract, by_id

from . import model
from .rubric import Rubric, for_contract, score_item

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
RUN_TIMEOUT = 1200.0            # seconds for all checks of one submission
RUN_TIMEOUT_NO_VALGRIND = 600.0


class GraderError(RuntimeError):
    """The grader itself failed (not the student's fault): exit status 3."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut short by a kill: the check counts as not run
    return out


def server_starts(contract: Contract, bin_dir: Path, hidden: list[Path], tries: int = 2) -> str:
    """Start the submission's server the way every check does; '' when it
    listens, else why it did not (the last of `tries` attempts). A server
    that cannot start would fail every check that needs it, each after the
    same wait: one clear verdict instead, and the time saved."""
    from harness.clients import CheckFailed
    from harness.session import ChatSession, Programs
    why = ""
    for _ in range(tries):
        with netns.isolated() as isolated:
            session = ChatSession(contract, Programs(bin_dir))
            session.isolated = isolated
            session.sandbox.hidden += hidden
            try:
                session.start_server()
                return ""
            except CheckFailed as e:
                hint = (e.hint or "").strip()
                why = e.actual if hint in ("", "stderr:") else f"{e.actual} ({hint[:300]})"
            finally:
                session.close()
    return why


def run_checks(contract: Contract, bin_dir: Path, source_dir: Path | None, workdir: Path, *,
               jobs: int = 2, valgrind: bool = True, timeout: float | None = None,
               on_check: Callable[[dict], None] | None = None,
               hidden: list[Path] = (), rules: list[str] = ()) -> tuple[list[dict], list[dict], bool]:
    """Run every scenario of the contract against bin_dir.

    Returns (checks listed, results, timed_out).
    """
    results = workdir / "results.jsonl"
    listed = workdir / "checks.jsonl"
    for p in (results, listed):
        p.unlink(missing_ok=True)
    argv = [PYTHON, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(ROOT), "-c", str(ROOT / "pytest.ini"),
            "--assignment", contract.id, "--contracts", str(contract.path.parent),
            "--submission", str(bin_dir), f"--results={results}", f"--list-checks={listed}"]
    if source_dir is not None:
        argv += ["--source", str(source_dir)]
    if not valgrind:
        argv.append("--no-valgrind")
    if rules:
        argv.append("--rules=" + ",".join(rules))
    if jobs > 1:
        argv += ["-n", str(jobs)]
    else:
        argv += ["-p", "no:xdist"]
    timeout = timeout or (RUN_TIMEOUT if valgrind else RUN_TIMEOUT_NO_VALGRIND)
    sup = Supervisor(output_cap=1 << 20)
    # The programs the checks start must not see these (the class folder,
    # the reports): the sandbox hides them, told through the environment.
    env = dict(os.environ)
    env[sandbox.HIDE_ENV] = os.pathsep.join(str(h) for h in [*sandbox.hidden_from_env(), *hidden])
    proc = sup.spawn("checks", argv, cwd=ROOT, stdin=False, env=env)
    deadline = time.monotonic() + timeout
    seen = 0
    timed_out = False
    try:
        while True:
            done = not proc.alive()
            if on_check is not None:
                entries = _read_jsonl(results)
                for e in entries[seen:]:
                    on_check(e)
                seen = len(entries)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.2)  # follow the results file while pytest writes it
    finally:
        sup.stop_all(grace=10)
        (workdir / "pytest.log").write_text(proc.stdout.text() + proc.stderr.text())
    checks = _read_jsonl(listed)
    entries = _read_jsonl(results)
    if on_check is not None:
        for e in entries[seen:]:
            on_check(e)
    if not checks and not timed_out:
        tail = (workdir / "pytest.log").read_text(errors="replace")[-3000:]
        raise GraderError(f"the checks could not be collected ({proc.status()}):\n{tail}")
    return checks, entries, timed_out


def _item_output(item_status: str, checks: list[dict], why_skipped: str = "") -> str:
    if item_status == "skipped":
        return why_skipped or next((c.get("skip_reason") for c in checks if c.get("skip_reason")),
                                   "not run")
    failed = [c for c in checks if c["outcome"] == "failed"]
    if not failed:
        return f"{len(checks)} check(s) passed"
    lines = []
    for c in failed[:3]:
        f = c.get("failure") or {}
        lines.append(f"{c['name']}:")
        if f.get("step"):
            lines.append(f"  step:     {f['step']}")
        if f.get("expected"):
            lines.append(f"  expected: {f['expected']}")
        lines.append(f"  actual:   {f.get('actual', '')}")
        if f.get("hint"):
            lines.append(f"  hint:     {f['hint']}")
    if len(failed) > 3:
        lines.append(f"... and {len(failed) - 3} more failed check(s)")
    return "\n".join(lines)


def score(contract: Contract, rubric: Rubric, build_info: dict, listed: list[dict],
          results: list[dict], skip_all: str = "", skip_categories: dict[str, str] | None = None,
          skip_rules: dict[str, str] | None = None) -> list[dict]:
    """The rubric items of a grade, scored from the check results."""
    by_node = {r["nodeid"]: r for r in results}
    checks = []
    for c in listed:
        r = by_node.get(c["nodeid"])
        if r is None:
            r = {**c, "name": c["nodeid"].split("::")[-1], "outcome": "not run", "failure": None,
                 "transcript": [], "valgrind": None, "source": [], "duration": 0.0}
        checks.append(r)
    items = []
    # The build item: its share of the programs built, less the warnings
    # penalty a course may switch on.
    programs = build_info["programs"]
    built = sum(programs.values())
    b_score = rubric.build_points * built / max(len(programs), 1)
    warnings = build_info["warnings"]
    penalty = min(rubric.warnings_cap, rubric.warnings_penalty * len(warnings))
    deductions = [{"reason": f"{len(warnings)} compiler warning(s)", "points": penalty}] if penalty else []
    b_score = max(0.0, b_score - penalty)
    items.append({
        "id": "build", "name": "the submission builds and produces the programs",
        "category": "build", "score": round(b_score, 2), "max_score": rubric.build_points,
        "status": "passed" if build_info["ok"] and not penalty else "failed",
        "output": (f"built with {build_info['system']}: " +
                   ", ".join(f"{n} {'ok' if ok else 'MISSING'}" for n, ok in programs.items()) +
                   (f"\n{build_info['error']}" if build_info.get("error") else "") +
                   (f"\n{len(warnings)} warning(s)" if warnings else "")),
        "deductions": deductions, "checks": []})
    for it in rubric.items:
        mine = [c for c in checks if it.rule in c.get("rules", [])]
        why = skip_all or (skip_categories or {}).get(it.category, "") or \
            (skip_rules or {}).get(it.rule, "")
        if why:
            s, status, ded = 0.0, "skipped", []
        else:
            s, status, ded = score_item(it, mine)
        items.append({"id": it.rule, "name": contract.rules.get(it.rule, it.rule),
                      "category": it.category, "score": s, "max_score": it.points,
                      "status": status, "output": _item_output(status, mine, why),
                      "deductions": ded, "checks": mine})
    return items


def grade(submission: Path, assignment: str, *, jobs: int = 2, valgrind: bool = True,
          workdir: Path | None = None, on_check: Callable[[dict], None] | None = None,
          timeout: float | None = None, hide: list[Path] = (), rules: list[str] | None = None,
          build_timeout: float | None = None) -> dict:
    """Build, check and score one submission; the grade dict (model.py)."""
    started, t0 = _now(), time.monotonic()
    submission = Path(submission).resolve()
    contract = by_id(assignment)
    rubric = for_contract(contract)
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="chatgrade-grade-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # The sandbox user passes through (never lists) our work folder to its box.
    workdir.chmod(0o711)
    # Hidden from the submission's programs: its own folder's siblings (the
    # rest of the class) and whatever the caller names (the reports).
    hidden = [submission.parent, *(Path(h).resolve() for h in hide)]
    notes = [netns.mode_description(), sandbox.mode_description()]
    if not valgrind:
        notes.append("valgrind checks not run (--no-valgrind): their points are not awarded")
    try:
        b = build(submission, [p.program for p in contract.programs], workdir / "build",
                  hidden=hidden, **({"timeout": build_timeout} if build_timeout else {}))
        build_info = b.to_dict()
        server = contract.server or contract.counter
        status = "graded"
        listed, results, skip_all, skip_cat, skip_rule = [], [], "", {}, {}
        if server is not None and not server.from_reference and not build_info["programs"].get(server.program):
            status = "build_failed"
            skip_all = f"skipped: {server.program} was not built ({b.error or 'see the build log'})"
        else:
            if contract.client and not contract.client.from_reference and \
                    not build_info["programs"].get(contract.client.program):
                skip_cat["client"] = f"skipped: {contract.client.program} was not built"
            selected = list(rules or [it.rule for it in rubric.items])
            if rules:
                notes.append(f"only these rules were graded (--rules): {', '.join(rules)}")
                for it in rubric.items:
                    if it.rule not in rules:
                        skip_rule[it.rule] = "skipped: not selected (--rules)"
            failed_start = ""
            if contract.server is not None and not contract.server.from_reference:
                failed_start = server_starts(contract, b.bin_dir, hidden)
            if failed_start:
                # Only checks that bring their own server (the reference's,
                # to judge the client) can still run.
                status = "server_failed"
                notes.append(f"the server never started listening: {failed_start}")
                for it in rubric.items:
                    if it.category != "client":
                        skip_cat[it.category] = f"skipped: the server never started listening: {failed_start}"
                selected = [it.rule for it in rubric.items
                            if it.category == "client" and it.rule in selected]
            narrowed = bool(rules or failed_start)
            timed_out = False
            if (not failed_start or "client" not in skip_cat) and (selected or not narrowed):
                listed, results, timed_out = run_checks(
                    contract, b.bin_dir, b.source_dir, workdir, jobs=jobs, valgrind=valgrind,
                    timeout=timeout, on_check=on_check, hidden=hidden,
                    rules=selected if narrowed else [])
            if timed_out:
                status = "timed_out"
                notes.append("the checks ran out of time; checks not reached score 0 (not run)")
        items = score(contract, rubric, build_info, listed, results, skip_all, skip_cat, skip_rule)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    total = round(sum(i["score"] for i in items), 2)
    return {
        "version": model.VERSION, "submission": submission.name, "path": str(submission),
        "assignment": contract.id, "title": contract.title, "status": status,
        "score": total, "max_score": rubric.max_score, "started": started,
        "execution_time": round(time.monotonic() - t0, 2), "notes": notes,
        "build": build_info, "categories": model.categories(items), "items": items,
    }
