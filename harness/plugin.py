"""pytest plugin: scenario scripts as test items, chat fixtures, reports.

    pytest scenarios                          # the references (build/impl)
    pytest scenarios --submission DIR --assignment tcp_chat

Every *.scn file under the run becomes one item per assignment it applies
to. Python scenarios get the `chat` fixture (a ChatSession in a private
network namespace, torn down after the test, nothing left running) and are
parametrized over the selected assignments the same way.

With --results FILE, every item's outcome, failure (step, expected, actual,
hint) and transcript are written as JSON lines: that is what the grader
reads, so nothing it reports is scraped from terminal output.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from . import netns
from .clients import CheckFailed
from .contract import ContractError, by_id
from .script import REQUIREMENTS, Runner, ScriptError, parse
from .session import REFERENCE_BIN, ChatSession, Programs

DEFAULT_ASSIGNMENTS = ["tcp_chat", "udp_chat", "select_chat", "shared_counter"]


def pytest_addoption(parser):
    g = parser.getgroup("chatgrade")
    g.addoption("--submission", default=None,
                help="folder holding the built programs to check (default: the references, build/impl)")
    g.addoption("--reference", default=str(REFERENCE_BIN),
                help="folder of the reference programs (clients graded 'from_reference')")
    g.addoption("--assignment", action="append", default=None,
                help="contract id to check (repeatable; default: the four assignments)")
    g.addoption("--contracts", default=None, help="folder of contract files")
    g.addoption("--no-valgrind", action="store_true", help="skip checks that run under valgrind")
    g.addoption("--rules", default=None,
                help="comma-separated rule ids: run only the checks of these rules")
    g.addoption("--results", default=None, help="write one JSON line per check to this file")
    g.addoption("--list-checks", default=None,
                help="write the collected checks (assignment, rules, skip reason) as JSON lines")
    g.addoption("--source", action="append", default=None,
                help="the submission's source folder (valgrind errors are attributed to it)")


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*features): contract features a scenario needs")
    config.addinivalue_line("markers", "rule(*ids): contract rules a scenario checks")
    config.addinivalue_line("markers", "tool(name): the scenario runs the server under valgrind")
    config.addinivalue_line("markers", "not_applicable: no selected contract applies (deselected)")
    config._chatgrade_lock = threading.Lock()


def pytest_report_header(config):
    return [netns.mode_description(),
            f"programs: {config.getoption('--submission') or config.getoption('--reference')}"]


def selected_contracts(config):
    from .contract import CONTRACTS_DIR
    directory = Path(config.getoption("--contracts") or CONTRACTS_DIR)
    ids = config.getoption("--assignment") or DEFAULT_ASSIGNMENTS
    try:
        return [by_id(i, directory) for i in ids]
    except ContractError as e:
        raise pytest.UsageError(str(e))


def programs_for(config) -> Programs:
    sub = config.getoption("--submission") or config.getoption("--reference")
    return Programs(Path(sub), Path(config.getoption("--reference")))


@contextmanager
def chat_session(config, contract, tool=None):
    """A ChatSession in a private network namespace; closed afterwards,
    and a test fails if anything it started survived."""
    with netns.isolated() as isolated:
        session = ChatSession(contract, programs_for(config), tool=tool,
                              source_dirs=[Path(d) for d in config.getoption("--source") or ()])
        session.isolated = isolated
        ok = False
        try:
            yield session
            ok = True
        finally:
            escaped = session.close()
            if ok and session.early_death:
                raise CheckFailed("the server keeps serving until it is stopped", "still running at the end",
                                  f"it ended by itself ({session.early_death})",
                                  "stderr: " + session.server.stderr.text()[-800:])
            left = session.supervisor.survivors()
            over = session.supervisor.limits_hit()
            if ok and over:
                raise CheckFailed("every program stays within the sandbox's limits",
                                  session.sandbox.limits.describe(), "; ".join(over))
            if escaped or left:
                raise CheckFailed("nothing the test started outlives it", "no process left",
                                  f"killed after teardown: {escaped + [str(p) for p in left]}")


# -- Python scenarios ------------------------------------------------------

def _applies(contract, item_or_markers) -> tuple[bool, str]:
    for mark in item_or_markers:
        if mark.name == "requires":
            for req in mark.args:
                if not REQUIREMENTS[req](contract):
                    return False, f"needs '{req}', which the {contract.id} contract does not have"
    return True, ""


def pytest_generate_tests(metafunc):
    """Parametrize scenarios over the selected contracts they apply to. A
    scenario that applies to none of them is not a check of this run: it is
    deselected, not skipped."""
    if "contract" in metafunc.fixturenames:
        contracts = selected_contracts(metafunc.config)
        marks = list(metafunc.definition.iter_markers())
        counter = "counter" in metafunc.fixturenames
        params = [pytest.param(c, id=c.id) for c in contracts
                  if (c.transport == "none") == counter and _applies(c, marks)[0]]
        metafunc.parametrize("contract", params or [pytest.param(None, id="none-applies",
                                                                 marks=pytest.mark.not_applicable)])


def pytest_collection_modifyitems(config, items):
    wanted = set(filter(None, (config.getoption("--rules") or "").split(",")))

    def out(i) -> bool:
        if i.get_closest_marker("not_applicable"):
            return True
        return bool(wanted) and not wanted & {a for m in i.iter_markers("rule") for a in m.args}
    gone = [i for i in items if out(i)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [i for i in items if not out(i)]


@pytest.fixture
def programs(request) -> Programs:
    return programs_for(request.config)


@pytest.fixture
def counter(contract):
    """Marks a scenario as one for the counter assignment (transport none)."""
    return contract.counter


@pytest.fixture
def no_valgrind(request):
    """Skips a scenario that needs valgrind when the run says --no-valgrind."""
    if request.config.getoption("--no-valgrind"):
        pytest.skip("--no-valgrind")


@pytest.fixture
def chat(request, contract):
    tool = None
    mark = request.node.get_closest_marker("tool")
    if mark:
        if request.config.getoption("--no-valgrind"):
            pytest.skip("--no-valgrind")
        tool = mark.args[0]
    with chat_session(request.config, contract, tool) as session:
        request.node._chat_session = session
        yield session


# -- scenario scripts --------------------------------------------------------

def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".scn":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        try:
            script = parse(self.path)
        except (ScriptError, ValueError) as e:
            raise self.CollectError(str(e)) from None
        for contract in selected_contracts(self.config):
            if not script.applies_to(contract)[0]:
                continue  # not a check of this assignment: not listed at all
            item = ScenarioItem.from_parent(self, name=f"{self.path.stem}[{contract.id}]",
                                            script=script, contract=contract)
            if script.tool and self.config.getoption("--no-valgrind"):
                item.add_marker(pytest.mark.skip(reason="--no-valgrind"))
            if script.header.get("timeout"):
                item.add_marker(pytest.mark.timeout(float(script.header["timeout"])))
            yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, script, contract, **kw):
        super().__init__(**kw)
        self.script = script
        self.contract = contract
        for rule in script.rules:
            self.add_marker(pytest.mark.rule(rule))

    def runtest(self):
        with chat_session(self.config, self.contract, self.script.tool) as session:
            self._chat_session = session
            Runner(self.script, session).run()

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.script.title}\n{excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"scenario: {self.script.title}"


# -- failure details and the results file -------------------------------------

def _item_contract(item):
    return getattr(item, "contract", None) or \
        getattr(getattr(item, "callspec", None), "params", {}).get("contract")


def pytest_collection_finish(session):
    path = session.config.getoption("--list-checks")
    if not path:
        return
    with open(path, "w") as f:
        for item in session.items:
            skip = item.get_closest_marker("skip")
            f.write(json.dumps({
                "nodeid": item.nodeid,
                "assignment": getattr(_item_contract(item), "id", None),
                "rules": [a for m in item.iter_markers("rule") for a in m.args],
                "skip_reason": skip.kwargs.get("reason", "") if skip else "",
            }) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    session = getattr(item, "_chat_session", None)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if session is not None and report.failed:
            report.sections.append(("transcript", session.transcript.render(last=200)))
            for proc in session.supervisor.processes:
                err = proc.stderr.text()
                if err.strip():
                    report.sections.append((f"{proc.name} stderr", err[-4000:]))
        _record(item, report, call, session)


def _source_lines(report, config) -> list[dict]:
    """The student's own source lines behind valgrind's findings."""
    from . import valgrind
    dirs = config.getoption("--source") or []
    if not dirs:
        return []
    out, seen = [], set()
    for finding in [*report.errors, *report.leak_records, *report.open_fds] + \
            ([report.fatal_signal] if report.fatal_signal else []):
        if getattr(finding, "kind", "") in ("Leak_PossiblyLost", "Leak_StillReachable"):
            continue
        frame = valgrind.attribute(finding, dirs)
        if frame is None or (frame.file, frame.line) in seen:
            continue
        seen.add((frame.file, frame.line))
        out.append({"file": frame.file, "line": frame.line, "fn": frame.fn,
                    "what": getattr(finding, "what", None) or getattr(finding, "description", ""),
                    "excerpt": valgrind.source_excerpt(frame) or ""})
        if len(out) >= 8:
            break
    return out


def _check_name(item) -> str:
    """A sentence for the check: a script's title, a Python scenario's
    docstring's first line, or its function name in words."""
    script = getattr(item, "script", None)
    if script is not None:
        return script.title
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    if doc:
        paragraph = " ".join(doc.split("\n\n")[0].split())
        return paragraph.split(". ")[0].rstrip(".")
    name = getattr(item, "originalname", item.name)
    params = f" [{item.callspec.id}]" if hasattr(item, "callspec") else ""
    return name.removeprefix("test_").replace("_", " ") + params


def _record(item, outcome_report, call, session):
    path = item.config.getoption("--results")
    if not path:
        return
    failure = None
    if outcome_report.failed and call.excinfo is not None:
        exc = call.excinfo.value
        if isinstance(exc, CheckFailed):
            failure = {"step": exc.step, "expected": exc.expected, "actual": exc.actual,
                       "hint": exc.hint}
        else:
            failure = {"step": "", "expected": "", "actual": str(exc)[-2000:], "hint": ""}
        # A limit the sandbox enforced explains what followed (a fork that
        # failed, a thread that was never made): it comes first.
        over = session.supervisor.limits_hit() if session else []
        if over and "sandbox's limits" not in failure["step"]:
            failure["actual"] = f"{'; '.join(over)}; then: {failure['actual']}"
        death = session.died_on_its_own() if session else None
        if death:
            # "the connection was reset" is the symptom; the cause comes first,
            # with the step it happened in.
            during = f" during '{failure['step'].splitlines()[0]}'" if failure["step"] else ""
            what = death if death.startswith(("crashed", "killed")) else f"ended ({death})"
            failure["actual"] = f"the server {what}{during}; {failure['actual']}"
    rules = [a for m in item.iter_markers("rule") for a in m.args]
    # A chat session's server report, or one a Python scenario attached.
    report = getattr(item, "_valgrind_report", None) or (session.report if session else None)
    contract = _item_contract(item)
    entry = {
        "nodeid": item.nodeid,
        "name": _check_name(item),
        "file": str(item.path),
        "rules": rules,
        "assignment": getattr(contract, "id", None),
        "outcome": "skipped" if outcome_report.skipped else outcome_report.outcome,
        "skip_reason": (outcome_report.longrepr[2] if outcome_report.skipped
                        and isinstance(outcome_report.longrepr, tuple) else ""),
        "duration": outcome_report.duration,
        "failure": failure,
        "transcript": [e.to_dict() for e in session.transcript.events()[-300:]] if session else [],
        "valgrind": report.to_dict() if report else None,
        "source": _source_lines(report, item.config) if report else [],
    }
    line = json.dumps(entry) + "\n"
    # xdist workers append to the same file: one write per line, O_APPEND.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)

