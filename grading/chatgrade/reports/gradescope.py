"""Gradescope's results.json: what an autograder leaves in
/autograder/results/results.json.

One test per rubric item (tagged with its category); the build's test
carries the compiler's errors when the build failed; a "Grader" test says
so when the grader itself failed.  The tests' scores add up to the score.
"""

from __future__ import annotations

from . import (build_details, build_item, failure_fields, first_failing_check, item_valgrind,
               own_files, points, restates_failure, safe_text, status_sentence, title,
               transcript_text, valgrind_lines, warnings)

MAX_OUTPUT_CHARS = 20000      # per test: a transcript must not drown the page
MAX_WARNINGS_LISTED = 20


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters not shown)"


def summary(grade: dict) -> str:
    """The top-level output: score, build, warnings, points by category, notes."""
    build = grade.get("build") or {}
    lines = [f"chatgrade: {title(grade)}" + (f" ({grade['title']})" if grade.get("title") else ""),
             f"Score: {points(grade.get('score'))} / {points(grade.get('max_score'))}",
             status_sentence(grade), ""]
    if build:
        verdict = "ok" if build.get("ok") else "FAILED"
        lines.append(f"Build ({build.get('system', '?')}): {verdict}"
                     + (f" in {build['duration']:.1f}s" if build.get("duration") is not None else ""))
        for prog, ok in (build.get("programs") or {}).items():
            lines.append(f"  {prog}: {'built' if ok else 'MISSING'}")
    warns = warnings(grade)
    if warns:
        lines.append(f"Compiler warnings: {len(warns)}")
        lines += [f"  {safe_text(w)}" for w in warns[:MAX_WARNINGS_LISTED]]
        if len(warns) > MAX_WARNINGS_LISTED:
            lines.append(f"  ... and {len(warns) - MAX_WARNINGS_LISTED} more")
    cats = grade.get("categories") or []
    if cats:
        lines += ["", "Points by category:"]
        width = max(len(c["name"]) for c in cats)
        lines += [f"  {c['name']:<{width}}  {points(c['score']):>6} / {points(c['max_score'])}" for c in cats]
    for note in grade.get("notes") or []:
        lines.append(f"Note: {safe_text(note)}")
    return "\n".join(lines).rstrip() + "\n"


def item_output(item: dict) -> str:
    """A test's output: why, deductions, the first failing check's
    expected/actual/hint and transcript excerpt, valgrind findings."""
    parts = []
    if item.get("output"):
        parts.append(safe_text(item["output"]).rstrip())
    for d in item.get("deductions") or []:
        parts.append(f"-{points(d.get('points'))} point(s): {safe_text(d.get('reason', ''))}")
    check = first_failing_check(item)
    if check is not None and check.get("outcome") == "failed":
        name = safe_text(check.get("name") or check.get("nodeid", ""))
        if not restates_failure(item, check):
            parts.append(f"Check: {name}")
            for label, text in failure_fields(check):
                text = safe_text(text).rstrip("\n")
                parts.append(f"{label.capitalize()}:\n{text}" if "\n" in text else f"{label.capitalize()}: {text}")
        if check.get("transcript"):
            parts.append(f"Transcript of '{name}' (the last events):\n" + transcript_text(check["transcript"]))
    for vcheck, vg in item_valgrind(item):
        parts.append("\n".join(valgrind_lines(vg, own_files(vcheck))))
        for src in vcheck.get("source") or []:
            if src.get("excerpt"):
                parts.append(f"{src.get('file')}:{src.get('line')}\n{safe_text(src['excerpt'])}")
    return _cap("\n\n".join(p for p in parts if p), MAX_OUTPUT_CHARS)


def _test(name: str, score: float, max_score: float, passed: bool, output: str,
          tags: list[str], number: str | None = None) -> dict:
    t = {"name": name, "score": round(float(score), 4), "max_score": round(float(max_score), 4),
         "status": "passed" if passed else "failed", "output": output,
         "tags": tags, "visibility": "visible"}
    if number is not None:
        t["number"] = number
    return t


def to_results_json(grade: dict) -> dict:
    """The results.json dict for GRADE, whatever its status.

    The build's test is the rubric's build item when there is one (with the
    compiler's errors or warnings appended); otherwise a "Build" test is
    added when the build failed or when the grade's points are not all in
    items, so that the tests always add up to the score."""
    status = grade.get("status", "graded")
    items = grade.get("items") or []
    the_build = build_item(grade)
    tests = []
    if status == "grader_error":
        notes = "\n".join(safe_text(n) for n in grade.get("notes") or [])
        tests.append(_test("Grader", 0, 0, False, status_sentence(grade) + ("\n\n" + notes if notes else ""),
                           ["grader"], "0"))
    rest_score = float(grade.get("score") or 0) - sum(float(i.get("score") or 0) for i in items)
    rest_max = float(grade.get("max_score") or 0) - sum(float(i.get("max_score") or 0) for i in items)
    if the_build is None and (status == "build_failed" or abs(rest_score) > 0.005 or abs(rest_max) > 0.005):
        ok = status != "build_failed" and (grade.get("build") or {}).get("ok", True)
        text = "\n\n".join(p for p in (status_sentence(grade) if not ok else "", build_details(grade)) if p)
        tests.append(_test("Build", rest_score, rest_max, ok and rest_score >= rest_max, text, ["build"], "0"))
    for n, item in enumerate(items, 1):
        output = item_output(item)
        if item is the_build:
            failed = status_sentence(grade) if status == "build_failed" else ""
            output = "\n\n".join(p for p in (failed, output, build_details(grade)) if p)
        if item.get("status") == "skipped" and not output:
            output = "skipped"
        tests.append(_test(f"{item.get('id')}: {safe_text(item.get('name', ''))}",
                           item.get("score") or 0.0, item.get("max_score") or 0.0,
                           item.get("status") == "passed", _cap(output, MAX_OUTPUT_CHARS),
                           [item.get("category") or "other"], str(n)))
    return {
        "score": round(float(grade.get("score") or 0.0), 4),
        "max_score": round(float(grade.get("max_score") or 0.0), 4),
        # Gradescope documents whole seconds.
        "execution_time": int(round(float(grade.get("execution_time") or 0.0))),
        "output": summary(grade),
        "output_format": "text",
        "test_output_format": "text",
        "stdout_visibility": "visible",
        "visibility": "visible",
        "tests": tests,
    }
