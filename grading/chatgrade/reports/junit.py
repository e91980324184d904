"""JUnit XML for CI: one testsuite per grade, one testcase per rubric item.

The shape pytest writes with junit_family=xunit1: a testcase's points go in
its <properties> (as record_property does), the total in the suite's.
Every string goes through safe_text(), so a NUL or an ESC a student's
server sent becomes the text "\\x00": the document is XML 1.0 whatever the
bytes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from . import (build_details, build_item, failure_fields, first_failing_check, item_valgrind,
               own_files, points, restates_failure, safe_line, safe_text, status_sentence, title,
               transcript_text, valgrind_lines, warnings)

MAX_LOG_CHARS = 20000


def _properties(parent: ET.Element, props: list[tuple[str, object]]) -> None:
    el = ET.SubElement(parent, "properties")
    for name, value in props:
        ET.SubElement(el, "property", name=name, value=safe_line(value))


def _failure_text(item: dict, extra: str = "") -> str:
    parts = [safe_text(item.get("output") or "").rstrip(), extra]
    for d in item.get("deductions") or []:
        parts.append(f"-{points(d.get('points'))}: {safe_text(d.get('reason', ''))}")
    check = first_failing_check(item)
    if check is not None and check.get("outcome") == "failed":
        parts.append(f"check: {safe_text(check.get('name', ''))} ({safe_text(check.get('nodeid', ''))})")
        if not restates_failure(item, check):
            parts += [f"{label}: {safe_text(text).rstrip()}" for label, text in failure_fields(check)]
        if check.get("transcript"):
            parts.append("transcript:\n" + transcript_text(check["transcript"]))
    for vcheck, vg in item_valgrind(item):
        parts.append("\n".join(valgrind_lines(vg, own_files(vcheck))))
    return "\n\n".join(p for p in parts if p)


def _testcase(suite: ET.Element, item: dict, extra: str = "") -> tuple[str, float]:
    """Add ITEM's testcase; returns its status and time."""
    duration = sum(float(c.get("duration") or 0.0) for c in item.get("checks") or [])
    case = ET.SubElement(suite, "testcase", classname=safe_line(item.get("category") or "other"),
                         name=safe_line(f"{item.get('id')}: {item.get('name', '')}"),
                         time=f"{duration:.3f}")
    _properties(case, [("score", points(item.get("score"))), ("max_score", points(item.get("max_score")))])
    status = item.get("status")
    if status == "skipped":
        ET.SubElement(case, "skipped", message=safe_line(item.get("output") or "skipped", 500))
    elif status != "passed":
        failure = ET.SubElement(case, "failure", message=safe_line(
            (item.get("output") or "failed").strip().split("\n")[0], 500))
        failure.text = _failure_text(item, extra)
    elif item.get("deductions") or extra:
        # Passed with points off (a leak) or warnings: say so where CI shows output.
        out = ET.SubElement(case, "system-out")
        out.text = _failure_text(item, extra)
    return status, duration


def to_junit_xml(grade: dict) -> str:
    """The JUnit XML document for GRADE, as text."""
    build = grade.get("build") or {}
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=safe_line(title(grade).replace(": ", "/")))
    if grade.get("started"):
        suite.set("timestamp", safe_line(grade["started"]))
    _properties(suite, [("score", points(grade.get("score"))),
                        ("max_score", points(grade.get("max_score"))),
                        ("status", grade.get("status", "graded")),
                        ("assignment", grade.get("assignment", "")),
                        ("build_warnings", len(warnings(grade)))])
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    status = grade.get("status", "graded")
    the_build = build_item(grade)
    synthetic = [("grader", "error", "\n".join(safe_text(n) for n in grade.get("notes") or []))] \
        if status == "grader_error" else []
    if status == "build_failed" and the_build is None:
        synthetic.append(("build", "failure", build_details(grade, MAX_LOG_CHARS)))
    for name, tag, text in synthetic:
        case = ET.SubElement(suite, "testcase", classname=name, name=name,
                             time=f"{float(build.get('duration') or 0.0):.3f}")
        _properties(case, [("score", "0"), ("max_score", "0")])
        el = ET.SubElement(case, tag, message=status_sentence(grade))
        el.text = text
        counts["tests"] += 1
        counts["failures" if tag == "failure" else "errors"] += 1
    for item in grade.get("items") or []:
        item_status, duration = _testcase(suite, item, build_details(grade, MAX_LOG_CHARS)
                                          if item is the_build else "")
        counts["tests"] += 1
        total_time += duration
        if item_status == "skipped":
            counts["skipped"] += 1
        elif item_status != "passed":
            counts["failures"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{float(grade.get('execution_time') or total_time):.3f}")
    log = build.get("log") or ""
    if log and status != "build_failed":
        out = ET.SubElement(suite, "system-out")
        out.text = safe_text(log[:MAX_LOG_CHARS])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
