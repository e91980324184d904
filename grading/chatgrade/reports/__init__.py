"""Views of a grade: each module turns the grade dict (see ../model.py) into
one format; none of them runs anything.

    gradescope.to_results_json(grade) -> dict     Gradescope's results.json
    junit.to_junit_xml(grade) -> str               JUnit XML for CI
    markdown.to_markdown(grade) -> str             terminal or PR comment
    html.to_html(grade) -> str                     one self-contained page
    terminal.check_line(check) / summary_table(grade) -> str

This module holds what several formats share: reading a grade (the first
failing check, a valgrind summary from a Report.to_dict(), a transcript as
text), making student bytes safe to show, and write_atomic().
"""

from __future__ import annotations

import os
import re
import tempfile

# How much of a transcript the text formats show (the HTML picture has its own cap).
TRANSCRIPT_EXCERPT = 40
MAX_DATA_CHARS = 200

# C0 controls (but tab and newline), DEL, C1 controls, lone surrogates and the
# two noncharacters XML 1.0 forbids: what a student's program may send and
# no report should pass through raw (an ESC would drive the terminal, a NUL
# makes XML invalid).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_UNSAFE_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def safe_text(text: object) -> str:
    """TEXT with every control character written as an escape (\\x1b),
    keeping newlines and tabs: for multi-line blocks."""
    return _UNSAFE.sub(_escape_char, "" if text is None else str(text))


def safe_line(text: object, limit: int | None = None) -> str:
    """TEXT on one line, newlines too written as escapes, shortened in the
    middle to LIMIT characters: for a transcript event or a table cell."""
    s = _UNSAFE_IN_LINE.sub(_escape_char, "" if text is None else str(text))
    if limit is not None and len(s) > limit:
        keep = max(limit - 3, 2)
        s = s[:keep - keep // 3] + "..." + s[len(s) - keep // 3:]
    return s


def points(x: float | int | None) -> str:
    """8.0 -> '8', 7.25 -> '7.25'."""
    if x is None:
        return "0"
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------
# Reading a grade
# --------------------------------------------------------------------------

def title(grade: dict) -> str:
    """'alice: tcp_chat' (the submission, then the assignment)."""
    sub = grade.get("submission") or "submission"
    asg = grade.get("assignment") or ""
    return f"{sub}: {asg}" if asg else sub


def status_sentence(grade: dict) -> str:
    """What the grade's status means, in a sentence."""
    status = grade.get("status", "graded")
    build = grade.get("build") or {}
    if status == "build_failed":
        missing = [p for p, ok in (build.get("programs") or {}).items() if not ok]
        extra = f" (missing: {', '.join(missing)})" if missing else ""
        return f"The build failed{extra}: no check could run."
    if status == "timed_out":
        return "The grader ran out of time: checks not run score 0."
    if status == "grader_error":
        return "The grader itself failed; this grade is not the submission's fault."
    return "Graded."


def first_failing_check(item: dict) -> dict | None:
    """The check that explains ITEM: its first failed check, else its first
    check with valgrind findings, else None."""
    checks = item.get("checks") or []
    for c in checks:
        if c.get("outcome") == "failed":
            return c
    for c in checks:
        if valgrind_findings(c.get("valgrind")):
            return c
    return None


def failure_fields(check: dict | None) -> list[tuple[str, str]]:
    """(label, text) for the step/expected/actual/hint of CHECK's failure
    that are present."""
    failure = (check or {}).get("failure") or {}
    return [(k, str(failure[k])) for k in ("step", "expected", "actual", "hint")
            if failure.get(k) not in (None, "")]


def restates_failure(item: dict, check: dict | None) -> bool:
    """True when ITEM's output already spells out CHECK's failure (the
    grader writes expected/actual into it), so a report that shows the
    failure's fields need not show the output as well."""
    out = item.get("output") or ""
    fields = failure_fields(check)
    return bool(fields) and all(text in out for _, text in fields)


def why(item: dict, limit: int = 200) -> str:
    """One line: why ITEM lost points: its deductions when it has some (the
    points taken off say it best), else its first failing check's expected
    and actual, else its output's first line."""
    if item.get("deductions"):
        return safe_line("; ".join(f"-{points(d.get('points'))}: {d.get('reason', '')}"
                                   for d in item["deductions"]), limit)
    check = first_failing_check(item)
    fields = dict(failure_fields(check))
    if "actual" in fields:
        first = {k: v.strip().splitlines()[0] if v.strip() else "" for k, v in fields.items()}
        text = f"got {first['actual']}"
        if first.get("expected"):
            text = f"expected {first['expected']}; {text}"
        return safe_line(text, limit)
    out = (item.get("output") or "").strip()
    if out:
        return safe_line(out.splitlines()[0], limit)
    return item.get("status", "")


def warnings(grade: dict) -> list[str]:
    return list((grade.get("build") or {}).get("warnings") or [])


def build_item(grade: dict) -> dict | None:
    """The rubric item that scores the build (id or category "build"), if any."""
    return next((i for i in grade.get("items") or []
                 if i.get("id") == "build" or i.get("category") == "build"), None)


def build_details(grade: dict, max_log: int = 8000, max_warnings: int = 20) -> str:
    """What to attach to the build's test: the compiler's output when the
    build failed, else its warnings."""
    build = grade.get("build") or {}
    if not build.get("ok", True) or grade.get("status") == "build_failed":
        log = safe_text(build.get("log") or "(no compiler output)")
        if len(log) > max_log:
            log = log[:max_log] + f"\n... ({len(log) - max_log} more characters not shown)"
        return "Compiler output:\n" + log
    warns = warnings(grade)
    if not warns:
        return ""
    lines = [f"Compiler warnings ({len(warns)}):"] + [safe_text(w) for w in warns[:max_warnings]]
    if len(warns) > max_warnings:
        lines.append(f"... and {len(warns) - max_warnings} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Transcripts (the dicts of harness.transcript.Event.to_dict())
# --------------------------------------------------------------------------

def event_text(ev: dict, limit: int = MAX_DATA_CHARS) -> str:
    """An event's detail and data on one line, the data quoted."""
    detail = safe_line(ev.get("detail") or "", limit)
    data = ev.get("data") or ""
    if data:
        quoted = f'"{safe_line(data, limit)}"'
        return f"{detail} {quoted}" if detail else quoted
    return detail


def transcript_text(events: list[dict], last: int | None = TRANSCRIPT_EXCERPT) -> str:
    """The timeline as text, one event per line, like Transcript.render()."""
    events = list(events or [])
    out = []
    if last is not None and len(events) > last:
        out.append(f"   ... {len(events) - last} earlier events not shown ...")
        events = events[-last:]
    for ev in events:
        t = float(ev.get("t") or 0.0) * 1000
        out.append(f"{t:9.1f}ms  {safe_line(ev.get('actor', ''), 12):<12} "
                   f"{safe_line(ev.get('kind', ''), 8):<8} {event_text(ev)}".rstrip())
    return "\n".join(out)


# --------------------------------------------------------------------------
# Valgrind (the dicts of harness.valgrind.Report.to_dict())
# --------------------------------------------------------------------------

_LOST_KINDS = ("Leak_DefinitelyLost", "Leak_IndirectlyLost")


def valgrind_findings(vg: dict | None) -> bool:
    """True when a valgrind report found something (not clean)."""
    return bool(vg) and not vg.get("clean", True)


def frame_location(frame: dict) -> str:
    """'file.c:42 in fn', or the object when there is no debug info."""
    if frame.get("file"):
        where = f"{frame['file']}:{frame.get('line')}"
    else:
        where = frame.get("obj") or frame.get("ip") or "?"
    return f"{where} in {frame['fn']}" if frame.get("fn") else where


def own_frame(stack: list[dict], own_files: set[str] = frozenset()) -> dict | None:
    """The frame to point at: the first in one of OWN_FILES (the student's,
    from a check's source list), else the first with a file, else the first."""
    stack = stack or []
    for f in stack:
        if f.get("file") and os.path.basename(f["file"]) in own_files:
            return f
    return next((f for f in stack if f.get("file")), stack[0] if stack else None)


def own_files(check: dict | None) -> set[str]:
    return {os.path.basename(s["file"]) for s in (check or {}).get("source") or [] if s.get("file")}


def valgrind_lines(vg: dict | None, own: set[str] = frozenset()) -> list[str]:
    """valgrind.summarise() for a report dict: the verdict, then each finding
    and where (the frame in OWN files when there is one)."""
    if not vg:
        return []

    def where(finding: dict) -> str:
        f = own_frame(finding.get("stack") or [], own)
        return frame_location(f) if f else "(no stack)"

    tool = vg.get("tool") or "valgrind"
    errors = vg.get("errors") or []
    head = f"{tool}: {len(errors)} error(s)"
    if tool in ("", "memcheck", "valgrind"):
        lk = vg.get("leaks") or {}
        head += (f"; definitely lost {lk.get('definitely_bytes', 0)} B in {lk.get('definitely_blocks', 0)} blocks,"
                 f" indirectly lost {lk.get('indirectly_bytes', 0)} B in {lk.get('indirectly_blocks', 0)},"
                 f" possibly lost {lk.get('possibly_bytes', 0)} B in {lk.get('possibly_blocks', 0)},"
                 f" still reachable {lk.get('reachable_bytes', 0)} B in {lk.get('reachable_blocks', 0)}"
                 f"; {len(vg.get('open_fds') or [])} fd(s) open at exit")
    out = [head]
    if not vg.get("complete", True):
        out.append("  (report incomplete: the program was killed before valgrind finished)")
    fs = vg.get("fatal_signal")
    if fs:
        out.append(f"  fatal signal {fs.get('signame') or fs.get('signo')} at {where(fs)}")
    for e in errors:
        times = f" (x{e['count']})" if (e.get("count") or 1) > 1 else ""
        out.append(f"  {e.get('kind')}{times}: {e.get('what')} at {where(e)}")
    for e in vg.get("leak_records") or []:
        if e.get("kind") in _LOST_KINDS:
            out.append(f"  {e.get('kind')}: {e.get('what')} at {where(e)}")
    for f in vg.get("open_fds") or []:
        out.append(f"  {f.get('description')} opened at {where(f)}")
    return [safe_line(line) for line in out]


def valgrind_findings_list(vg: dict | None) -> list[tuple[str, dict]]:
    """(heading, finding) for each thing worth showing a stack for: the
    fatal signal, errors, lost-memory records, fds left open."""
    if not vg:
        return []
    out = []
    fs = vg.get("fatal_signal")
    if fs:
        out.append((f"fatal signal {fs.get('signame') or fs.get('signo')}", fs))
    for e in vg.get("errors") or []:
        out.append((f"{e.get('kind')}: {e.get('what')}", e))
    for e in vg.get("leak_records") or []:
        if e.get("kind") in _LOST_KINDS:
            out.append((f"{e.get('kind')}: {e.get('what')}", e))
    for f in vg.get("open_fds") or []:
        out.append((f"fd left open: {f.get('description')}", f))
    return out


def item_valgrind(item: dict) -> list[tuple[dict, dict]]:
    """(check, report) for each of ITEM's checks whose valgrind report found
    something, leaving out a report that says what an earlier one said (the
    same leak under SIGINT and under SIGTERM)."""
    out, seen = [], set()
    for c in item.get("checks") or []:
        if valgrind_findings(c.get("valgrind")):
            said = tuple(valgrind_lines(c["valgrind"], own_files(c)))
            if said not in seen:
                seen.add(said)
                out.append((c, c["valgrind"]))
    return out


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write TEXT (UTF-8) to PATH so a reader sees the old file or the whole
    new one: a temp file in the same directory, fsync, then os.replace."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
