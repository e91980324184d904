"""Write a grade's reports: each file whole or not at all (atomic)."""

from __future__ import annotations

import json
from pathlib import Path

from . import reports
from .reports import gradescope, html, junit, markdown


def write_all(grade: dict, *, json_path: Path | None = None, junit_path: Path | None = None,
              html_path: Path | None = None, md_path: Path | None = None,
              grade_json: Path | None = None) -> None:
    """Write every report asked for; grade_json last, so its presence
    means the others are complete (batch --resume relies on it)."""
    for path, render in ((json_path, lambda g: json.dumps(gradescope.to_results_json(g), indent=1)),
                         (junit_path, junit.to_junit_xml),
                         (html_path, html.to_html),
                         (md_path, markdown.to_markdown)):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            reports.write_atomic(path, render(grade))
    if grade_json is not None:
        Path(grade_json).parent.mkdir(parents=True, exist_ok=True)
        reports.write_atomic(grade_json, json.dumps(grade, indent=1))
