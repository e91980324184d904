"""scenarios/README.md is enough to write a scenario: its step table is the
grammar, and its first example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

from harness.script import HEADER_KEYS, STEPS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "scenarios" / "README.md").read_text()


def _table_cells():
    return [m.group(1).replace("\\|", "|")
            for m in re.finditer(r"^\| `([^`]+)`(?: \.\.\. `end`)? \|", README, re.M)]


def test_every_step_is_documented_and_every_documented_step_exists():
    cells = _table_cells()
    steps = [c for c in cells if not c.endswith(":")]
    assert sorted(steps) == sorted(STEPS)


def test_every_header_key_is_documented():
    headers = {c[:-1] for c in _table_cells() if c.endswith(":")}
    assert headers == HEADER_KEYS


def test_the_readme_example_runs_as_written(tmp_path):
    example = re.search(r"Save this as `scenarios/chat/greeting.scn`:\n\n```\n(.*?)```", README, re.S)
    assert example, "the README's first example is missing"
    script = tmp_path / "greeting.scn"
    script.write_text(example.group(1))
    run = subprocess.run([sys.executable, "-m", "pytest", str(script), "-q", "-p", "no:xdist",
                          "--rootdir", str(ROOT), "-c", str(ROOT / "pytest.ini")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout, run.stdout[-2000:]


def test_the_instructors_guide_example_runs_as_written(tmp_path):
    guide = (ROOT / "docs" / "INSTRUCTORS.md").read_text()
    example = re.search(r"## Write a scenario.*?```\n(.*?)```", guide, re.S)
    assert example, "the guide's scenario example is missing"
    script = tmp_path / "late_joiner.scn"
    script.write_text(example.group(1))
    run = subprocess.run([sys.executable, "-m", "pytest", str(script), "-q", "-p", "no:xdist",
                          "--rootdir", str(ROOT), "-c", str(ROOT / "pytest.ini")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout, run.stdout[-2000:]
