"""What the grader prints while it runs: a line as each check finishes,
then a table of points and one line for each failed item.

Colour only on a terminal, and never when NO_COLOR is set (no-color.org);
student bytes are escaped, so a server that sends ESC cannot drive the
terminal.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from . import points, safe_line, status_sentence, title, why

_SGR = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
VERDICT = {"passed": ("PASS", "green"), "failed": ("FAIL", "red"),
           "skipped": ("SKIP", "yellow"), "not run": ("SKIP", "yellow")}


def use_color(stream: TextIO | None = None) -> bool:
    """True when STREAM (stdout by default) is a terminal and NO_COLOR is unset or empty."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_SGR[style]}m{text}\x1b[0m" if color else text


def check_line(check: dict, color: bool | None = None) -> str:
    """'PASS  name (0.31s)': one line as a check finishes."""
    color = use_color() if color is None else color
    word, style = VERDICT.get(check.get("outcome"), ("FAIL", "red"))
    name = safe_line(check.get("name") or check.get("nodeid") or "?", 100)
    duration = check.get("duration")
    took = f" ({float(duration):.2f}s)" if duration is not None else ""
    return f"{_paint(word, style, color)}  {name}{_paint(took, 'dim', color)}"


def summary_table(grade: dict, color: bool | None = None) -> str:
    """Points by category and the total, then each item that lost points
    with one line of why."""
    color = use_color() if color is None else color
    cats = grade.get("categories") or []
    width = max([len("Total")] + [len(safe_line(c["name"], 40)) for c in cats])
    lines = [_paint(f"chatgrade {safe_line(title(grade), 80)}", "bold", color),
             status_sentence(grade), ""]
    for c in cats:
        full = (c.get("score") or 0) >= (c.get("max_score") or 0)
        score = f"{points(c['score']):>6} / {points(c['max_score']):<6}"
        lines.append(f"  {safe_line(c['name'], 40):<{width}}  {_paint(score, 'green' if full else 'red', color)}")
    total = f"{points(grade.get('score')):>6} / {points(grade.get('max_score')):<6}"
    lines.append(f"  {'-' * (width + 17)}")
    lines.append(f"  {_paint('Total'.ljust(width), 'bold', color)}  {_paint(total, 'bold', color)}")
    lost = [i for i in grade.get("items") or []
            if i.get("status") == "failed" or (i.get("status") == "passed" and i.get("deductions"))]
    if lost:
        lines += ["", "Lost points:"]
        for item in lost:
            word = "FAIL" if item.get("status") == "failed" else "-PTS"
            pts = f"{points(item.get('score'))}/{points(item.get('max_score'))}"
            lines.append(f"  {_paint(word, 'red', color)} {safe_line(item.get('id'), 40)} ({pts}): {why(item)}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
