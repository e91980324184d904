"""shared_counter: order, total and whole lines; clean under valgrind."""

import pytest

from harness.clients import CheckFailed
from harness.counter import ASPECTS, problems, run_counter


EXPECTED = {
    "lines": "every line whole: thread <t> count <value>, ITERS lines per thread",
    "order": "the counts 1, 2, ..., THREADS*ITERS in output order",
    "total": "a last line total THREADS*ITERS, and exit status 0",
}


def _check(contract, programs, threads, iters, aspects=ASPECTS, tool=None, node=None):
    run = run_counter(contract, programs, threads, iters, tool=tool)
    if node is not None:
        node._valgrind_report = run.report   # the grader's deductions read it
    found = problems(contract, run)
    wrong = [p for a in aspects for p in found[a]]
    if wrong:
        raise CheckFailed(f"shared_counter {threads} {iters}",
                          "; ".join(EXPECTED[a] for a in aspects),
                          "; ".join(wrong[:6]), "stderr: " + run.stderr[-300:] if run.stderr else "")
    return run


@pytest.mark.rule("counter-lines")
def test_every_line_whole_and_well_formed(contract, programs, counter):
    for threads, iters in contract.counter.runs:
        _check(contract, programs, threads, iters, aspects=["lines"])


@pytest.mark.rule("counter-order")
def test_counts_in_output_order(contract, programs, counter):
    for threads, iters in contract.counter.runs:
        _check(contract, programs, threads, iters, aspects=["order"])


@pytest.mark.rule("counter-total")
def test_total_and_exit_status(contract, programs, counter):
    for threads, iters in contract.counter.runs:
        _check(contract, programs, threads, iters, aspects=["total"])


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
                          summarise(run.report), "a variable two threads use without the lock: the counter, or one passed by address to the threads")
