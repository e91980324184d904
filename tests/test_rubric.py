"""Scoring one rubric item from its checks: modes and valgrind deductions."""

import pytest

from grading.chatgrade.rubric import Item, RubricError, for_contract, load, score_item
from harness.contract import all_contracts, by_id

DEDUCT = {"errors": 3.0, "definitely_lost": 3.0, "indirectly_lost": 2.0, "open_fds": 2.0, "crashed": 7.0}


def check(outcome, valgrind=None):
    return {"outcome": outcome, "valgrind": valgrind}


def vg(errors=0, definitely=0, indirectly=0, fds=0, fatal=None):
    return {"errors": [{"kind": "InvalidRead", "what": "Invalid read of size 4"}] * errors,
            "leaks": {"definitely_bytes": definitely, "indirectly_bytes": indirectly},
            "open_fds": [{"fd": 5}] * fds, "fatal_signal": fatal}


def test_all_or_nothing_by_default():
    item = Item("relay", 6, "relay")
    assert score_item(item, [check("passed"), check("passed")])[:2] == (6, "passed")
    assert score_item(item, [check("passed"), check("failed")])[:2] == (0, "failed")
    assert score_item(item, [check("skipped")])[:2] == (0, "skipped")


def test_fraction_mode_gives_the_share_that_passed():
    item = Item("whole-lines", 8, "concurrency", mode="fraction")
    assert score_item(item, [check("passed")] * 3 + [check("failed")])[0] == 6


def test_one_forgotten_free_is_charged_once():
    """A lost list head: definitely lost, and its nodes indirectly lost."""
    item = Item("memcheck", 7, "memory", mode="valgrind", deduct=DEDUCT)
    score, status, deductions = score_item(item, [check("failed", vg(definitely=16, indirectly=96))])
    assert (score, status) == (4, "failed")
    assert [d["reason"] for d in deductions] == ["definitely lost 16 B"]


def test_indirect_loss_alone_is_charged():
    item = Item("memcheck", 7, "memory", mode="valgrind", deduct=DEDUCT)
    assert score_item(item, [check("failed", vg(indirectly=96))])[0] == 5


def test_each_kind_costs_once_and_the_total_is_capped():
    item = Item("memcheck", 7, "memory", mode="valgrind", deduct=DEDUCT)
    bad = vg(errors=5, definitely=10, fds=3, fatal={"signame": "SIGSEGV"})
    score, _, deductions = score_item(item, [check("failed", bad), check("failed", bad)])
    assert score == 0 and len(deductions) == 4


def test_a_clean_report_keeps_the_points_when_another_rule_failed_the_check():
    item = Item("memcheck", 7, "memory", mode="valgrind", deduct=DEDUCT)
    assert score_item(item, [check("failed", vg())])[:2] == (7, "passed")
    # ... but no report at all (the program never finished) loses them.
    assert score_item(item, [check("failed", None)])[0] == 0


@pytest.mark.parametrize("default", [c for c in all_contracts() if c.id in
                                      ("tcp_chat", "udp_chat", "select_chat", "shared_counter")],
                         ids=lambda c: c.id)
def test_default_rubrics_sum_to_100_and_cover_every_rule(default):
    rubric = for_contract(default)
    assert rubric.max_score == 100
    assert {i.rule for i in rubric.items} == set(default.rules)


def test_a_rubric_missing_a_rule_is_refused(tmp_path):
    p = tmp_path / "tcp_chat.toml"
    p.write_text('[build]\npoints = 5\n[[item]]\nrule = "relay"\npoints = 95\ncategory = "relay"\n')
    with pytest.raises(RubricError) as e:
        load(p, by_id("tcp_chat"))
    assert "without points" in str(e.value)
