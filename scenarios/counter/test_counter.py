"""shared_counter: order, total and whole lines; clean under valgrind."""

import pytest

from harness.clients import CheckFailed
from harness.counter import problems, run_counter


def _check(contract, programs, threads, iters, tool=None, node=None):
    run = run_counter(contract, programs, threads, iters, tool=tool)
    if node is not None:
        node._valgrind_report = run.report   # the grader's deductions read it
    wrong = problems(contract, run)
    if wrong:
        raise CheckFailed(f"shared_counter {threads} {iters}",
                          f"counts 1..{threads * iters} in order, each line whole, total {threads * iters}",
                          "; ".join(wrong[:6]), "stderr: " + run.stderr[-300:] if run.stderr else "")
    return run


@pytest.mark.rule("counter-order", "counter-total", "counter-lines")
def test_counts_in_order_and_total(contract, programs, counter):
    for threads, iters in contract.counter.runs:
        _check(contract, programs, threads, iters)


@pytest.mark.rule("counter-memcheck")
def test_memcheck_clean(contract, programs, counter, no_valgrind, request):
    threads, iters = contract.counter.race_run
    run = _check(contract, programs, threads, iters, tool="memcheck", node=request.node)
    if not run.report.clean:
        from harness.valgrind import summarise
        raise CheckFailed("shared_counter under memcheck", "no errors, nothing lost, no fds left",
                          summarise(run.report))


@pytest.mark.rule("counter-race-free")
@pytest.mark.parametrize("tool", ["helgrind", "drd"])
def test_no_data_race(contract, programs, counter, no_valgrind, tool, request):
    threads, iters = contract.counter.race_run
    run = run_counter(contract, programs, threads, iters, tool=tool)
    request.node._valgrind_report = run.report
    if run.report.errors:
        from harness.valgrind import summarise
        raise CheckFailed(f"shared_counter under {tool}", "no data race",
                          summarise(run.report), "take the lock around every access to the counter")
