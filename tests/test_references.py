"""Properties of the reference programs that are not contract rules: the
race demonstration, and the clients' own memory hygiene."""

import pytest

from harness.contract import by_id
from harness.counter import problems, run_counter
from harness.session import REFERENCE_BIN, Programs


@pytest.mark.parametrize("tool", ["helgrind", "drd"])
def test_unsafe_counter_race_is_reported(tool):
    """Proof the race tools see the race the lock prevents."""
    import dataclasses
    contract = by_id("shared_counter")
    spec = dataclasses.replace(contract.counter, argv=contract.counter.argv + ("--unsafe",))
    unsafe = dataclasses.replace(contract, counter=spec)
    run = run_counter(unsafe, Programs(REFERENCE_BIN), 4, 200, tool=tool)
    assert run.report.errors, f"{tool} reported no race in shared_counter --unsafe"


def test_safe_counter_is_well_formed():
    contract = by_id("shared_counter")
    run = run_counter(contract, Programs(REFERENCE_BIN), 8, 10000)
    assert all(not p for p in problems(contract, run).values())
    assert run.stdout.endswith(b"total 80000\n")
