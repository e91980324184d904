"""Markers of the harness's own tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "valgrind: runs programs under valgrind (slow; deselect with -m 'not valgrind')")


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
