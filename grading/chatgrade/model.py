"""The grade of one submission, as data: what every report is made from.

A grade is a plain dict (JSON-ready), written as `grade.json` beside the
reports; the reports (Gradescope results.json, JUnit XML, HTML, Markdown,
the terminal table) are views of it and never run anything themselves.

    {
      "version": 1,
      "submission": "alice",                 # folder name
      "path": "/abs/path/to/alice",
      "assignment": "tcp_chat",
      "title": "Threaded TCP chat",
      "status": "graded" | "build_failed" | "timed_out" | "grader_error",
      "score": 87.5, "max_score": 100.0,
      "started": "2026-11-27T01:40:00+00:00",
      "execution_time": 31.2,                # seconds
      "notes": ["isolation: ...", "valgrind checks not run (--no-valgrind)"],
      "build": {
        "ok": true, "system": "cmake" | "make" | "gcc",
        "log": "compiler output (capped)",
        "warnings": ["x.c:12:5: warning: unused variable 'n'"],
        "programs": {"tcp_chat_server": true, "tcp_chat_client": false},
        "duration": 2.1
      },
      "categories": [{"name": "relay", "score": 20.0, "max_score": 20.0}],
      "items": [                             # one per rubric item, rubric order
        {
          "id": "relay", "name": "the rule's sentence from the contract",
          "category": "relay", "score": 8.0, "max_score": 8.0,
          "status": "passed" | "failed" | "skipped",
          "output": "why: expected / actual / hint of the first failure, or why skipped",
          "deductions": [{"reason": "definitely lost 48 B", "points": 3.0}],
          "checks": [                        # the scenario runs behind the item
            {
              "nodeid": "scenarios/chat/relay.scn::relay[tcp_chat]",
              "name": "a message reaches every other member, and never its sender",
              "outcome": "passed" | "failed" | "skipped" | "not run",
              "duration": 0.31,
              "failure": {"step": "...", "expected": "...", "actual": "...", "hint": "..."} | null,
              "transcript": [{"t": 0.012, "actor": "a", "kind": "send", "data": "hello\\n", "detail": ""}],
              "valgrind": {... harness.valgrind.Report.to_dict() ...} | null,
              "source": [{"file": "server.c", "line": 42, "excerpt": "..."}]
            }
          ]
        }
      ]
    }
"""

from __future__ import annotations

VERSION = 1
STATUSES = ("graded", "build_failed", "timed_out", "grader_error")


def categories(items: list[dict]) -> list[dict]:
    """Points by category, in the order categories first appear."""
    out: dict[str, dict] = {}
    for item in items:
        c = out.setdefault(item["category"], {"name": item["category"], "score": 0.0, "max_score": 0.0})
        c["score"] += item["score"]
        c["max_score"] += item["max_score"]
    return [{**c, "score": round(c["score"], 2), "max_score": round(c["max_score"], 2)}
            for c in out.values()]
