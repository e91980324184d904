"""Markdown for a terminal or a pull-request comment: the score, points by
category, every item with PASS/FAIL/SKIP, then what went wrong in each
failure (expected, actual, hint, transcript, valgrind), build warnings."""

from __future__ import annotations

import re

from . import (failure_fields, first_failing_check, item_valgrind, own_files, points,
               restates_failure, safe_line, safe_text, status_sentence, title, transcript_text, valgrind_lines,
               warnings)

MARKER = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
MAX_LOG_CHARS = 8000
MAX_WARNINGS = 30


def fence(text: str, lang: str = "") -> str:
    """TEXT in a code block whose fence is longer than any backtick run in it."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    ticks = "`" * max(3, max(runs, default=0) + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


# Outside code blocks a PR comment would take <hello> for a tag and hide it:
# backslash-escape what Markdown or its HTML would act on.
_ACTIVE = re.compile(r"([\\`*\[\]<>&|])")


def inline(text: object, limit: int | None = None) -> str:
    """TEXT on one line, safe in Markdown prose or a table cell."""
    return _ACTIVE.sub(r"\\\1", safe_line(text, limit))


def cell(text: object, limit: int = 120) -> str:
    return inline(text, limit)


def prose(text: object) -> str:
    """Multi-line TEXT as a Markdown paragraph, its line breaks kept."""
    lines = [_ACTIVE.sub(r"\\\1", line) for line in safe_text(text).strip().splitlines()]
    return "  \n".join(lines)


def _failure(item: dict) -> list[str]:
    status = MARKER.get(item.get("status"), "FAIL")
    out = [f"### {status} {cell(item.get('id'))}: {cell(item.get('name', ''), 200)}"
           f" ({points(item.get('score'))}/{points(item.get('max_score'))})", ""]
    check = first_failing_check(item)
    if item.get("output") and not restates_failure(item, check):
        out += [prose(item["output"]), ""]
    failed = [c for c in item.get("checks") or [] if c.get("outcome") == "failed"]
    if len(failed) > 1:
        out += [f"{len(failed)} checks failed:", ""] + [f"- {inline(c.get('name', ''))}" for c in failed] + [""]
    for d in item.get("deductions") or []:
        out.append(f"- -{points(d.get('points'))}: {inline(d.get('reason', ''))}")
    if item.get("deductions"):
        out.append("")
    if check is not None and check.get("outcome") == "failed":
        out += [f"First failing check: {inline(check.get('name') or '')} ({inline(check.get('nodeid', ''))})", ""]
        for label, text in failure_fields(check):
            out += [f"**{label.capitalize()}**", "", fence(safe_text(text)), ""]
        if check.get("transcript"):
            out += ["**Transcript** (the last events)", "", fence(transcript_text(check["transcript"])), ""]
    for vcheck, vg in item_valgrind(item):
        out += ["**Valgrind**", "", fence("\n".join(valgrind_lines(vg, own_files(vcheck)))), ""]
        for src in vcheck.get("source") or []:
            if src.get("excerpt"):
                out += [f"{inline(src.get('file'))}:{src.get('line')}"
                        + (f": {inline(src['what'])}" if src.get("what") else ""), "",
                        fence(safe_text(src["excerpt"]), "c"), ""]
    return out


def to_markdown(grade: dict) -> str:
    """The Markdown report of GRADE."""
    build = grade.get("build") or {}
    out = [f"# chatgrade: {cell(title(grade), 200)}", "",
           f"**Score: {points(grade.get('score'))} / {points(grade.get('max_score'))}**"
           + (f" ({cell(grade['title'])})" if grade.get("title") else ""), "",
           status_sentence(grade), ""]
    for note in grade.get("notes") or []:
        out.append(f"> {inline(note)}")
    if grade.get("notes"):
        out.append("")
    cats = grade.get("categories") or []
    if cats:
        out += ["| Category | Points | Max |", "|---|---:|---:|"]
        out += [f"| {cell(c['name'])} | {points(c['score'])} | {points(c['max_score'])} |" for c in cats]
        out += [f"| **Total** | **{points(grade.get('score'))}** | **{points(grade.get('max_score'))}** |", ""]
    items = grade.get("items") or []
    if items:
        out += ["| # | Result | Item | Category | Points |", "|---:|---|---|---|---:|"]
        for n, item in enumerate(items, 1):
            out.append(f"| {n} | {MARKER.get(item.get('status'), 'FAIL')} | "
                       f"{cell(item.get('id'))}: {cell(item.get('name', ''))} | {cell(item.get('category'))} | "
                       f"{points(item.get('score'))}/{points(item.get('max_score'))} |")
        out.append("")
    if grade.get("status") == "build_failed" or not build.get("ok", True):
        out += ["## Build log", "", fence(safe_text(build.get("log") or "(no output)")[:MAX_LOG_CHARS]), ""]
    lost = [i for i in items if i.get("status") == "failed" or i.get("deductions")
            or (i.get("status") != "skipped" and (i.get("score") or 0) < (i.get("max_score") or 0))]
    if lost and grade.get("status") != "build_failed":
        out += ["## Lost points", ""]
        for item in lost:
            out += _failure(item)
    skipped = [i for i in items if i.get("status") == "skipped"]
    if skipped and grade.get("status") != "build_failed":
        out += ["## Skipped", ""]
        out += [f"- {cell(i.get('id'))}: {cell(i.get('output') or 'skipped', 200)}" for i in skipped]
        out.append("")
    warns = warnings(grade)
    if warns:
        shown = "\n".join(safe_text(w) for w in warns[:MAX_WARNINGS])
        if len(warns) > MAX_WARNINGS:
            shown += f"\n... and {len(warns) - MAX_WARNINGS} more"
        out += [f"## Build warnings ({len(warns)})", "", fence(shown), ""]
    return "\n".join(out).rstrip() + "\n"
