"""shared_counter: order, total and whole lines; clean under valgrind."""

import pytest

from harness.clients import CheckFailed
from harness.counter import output_runs, run_counter


EXPECTED = {
    "lines": "every line whole: thread <t> count <value>, ITERS lines per thread",
    "order": "the counts 1, 2, ..., THREADS*ITERS in output order",
    "total": "a last line total THREADS*ITERS, and exit status 0",
}


def _judge(contract, programs, aspect):
    """Fail on the first run whose output breaks this aspect of the handout.
    The runs are shared by the three output checks (harness/counter.py)."""
    for run in output_runs(contract, programs):
        wrong = run.problems[aspect]
        if wrong:
            raise CheckFailed(run.step,
                              EXPECTED[aspect], "; ".join(wrong[:6]),
                              "stderr: " + run.stderr if run.stderr else "")


@pytest.mark.rule("counter-lines")
def test_every_line_whole_and_well_formed(contract, programs, counter):
    _judge(contract, programs, "lines")


@pytest.mark.rule("counter-order")
def test_counts_in_output_order(contract, programs, counter):
    _judge(contract, programs, "order")


@pytest.mark.rule("counter-total")
def test_total_and_exit_status(contract, programs, counter):
    _judge(contract, programs, "total")


def _under(tool, contract, programs, request):
    """A run under valgrind, judged by its report alone: what the output
    says is the other rules' business (and under valgrind's one-thread-at-a-
    time scheduler a race shows in the output on some runs only)."""
    threads, iters = contract.counter.race_run
    run = run_counter(contract, programs, threads, iters, tool=tool)
    request.node._valgrind_report = run.report   # the grader's deductions read it
    if run.timed_out:
        raise CheckFailed(f"shared_counter {threads} {iters} under {tool}",
                          "it finishes", f"still running after the deadline under {tool}")
    return run


@pytest.mark.rule("counter-memcheck")
def test_memcheck_clean(contract, programs, counter, no_valgrind, request):
    run = _under("memcheck", contract, programs, request)
    if not run.report.clean:
        from harness.valgrind import summarise
        raise CheckFailed("shared_counter under memcheck", "no errors, nothing lost, no fds left",
                          summarise(run.report))


@pytest.mark.rule("counter-race-free")
@pytest.mark.parametrize("tool", ["helgrind", "drd"])
def test_no_data_race(contract, programs, counter, no_valgrind, tool, request):
    run = _under(tool, contract, programs, request)
    if run.report.errors:
        from harness.valgrind import summarise
        raise CheckFailed(f"shared_counter under {tool}", "no data race",
                          summarise(run.report), "a variable two threads use without the lock: the counter, or one passed by address to the threads")
