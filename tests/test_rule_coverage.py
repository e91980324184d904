"""Every rule a contract states has a check that applies to it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.contract import by_id
from harness.plugin import DEFAULT_ASSIGNMENTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("checks") / "checks.jsonl"
    run = subprocess.run([sys.executable, "-m", "pytest", "scenarios", "--collect-only", "-q",
                          "-p", "no:xdist", f"--list-checks={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_every_rule_has_a_check(checks, assignment):
    contract = by_id(assignment)
    assert contract.rules, f"{assignment} states no rules"
    covered = {r for c in checks if c["assignment"] == assignment and not c["skip_reason"]
               for r in c["rules"]}
    missing = sorted(set(contract.rules) - covered)
    assert not missing, f"rules of {assignment} with no check that runs for it: {missing}"


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_every_check_names_a_rule_of_its_contract(checks, assignment):
    contract = by_id(assignment)
    stray = sorted({(c["nodeid"], r) for c in checks if c["assignment"] == assignment
                    and not c["skip_reason"] for r in c["rules"] if r not in contract.rules})
    assert not stray, f"checks naming rules {assignment} does not state: {stray}"
