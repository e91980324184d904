"""The student handouts state every rule of their contract, and only those.

Each rule sentence in grading/handouts/<assignment>.md ends with a tag
`<!-- rule: ID -->` (an HTML comment: invisible when the Markdown renders).
The tags must be exactly the contract's rule ids, so every rule a student
reads has a check (tests/test_rule_coverage.py ties rules to scenarios),
and every check a student can fail is explained in the handout.
"""

import re
from pathlib import Path

import pytest

from harness.contract import by_id
from harness.plugin import DEFAULT_ASSIGNMENTS

ROOT = Path(__file__).resolve().parent.parent
HANDOUTS = ROOT / "grading" / "handouts"

TAG = re.compile(r"<!--\s*rule:\s*([\w-]+)\s*-->")
# Words too common to show that a handout line speaks of a rule.
STOPWORDS = {"the", "and", "from", "that", "with", "every", "each", "never",
             "does", "their", "them", "then", "other", "others", "this",
             "what", "when", "where", "which", "while", "least", "most"}


def handout(assignment: str) -> str:
    return (HANDOUTS / f"{assignment}.md").read_text()


def tagged_lines(text: str) -> list[tuple[str, str]]:
    """(rule id, the line's text without its tags) for every tag."""
    out = []
    for line in text.splitlines():
        for rule in TAG.findall(line):
            out.append((rule, TAG.sub("", line).strip()))
    return out


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_]+", text.lower())
            if len(w) >= 4 and w not in STOPWORDS}


def usage(program: str, argv: tuple[str, ...]) -> str:
    """How a handout writes a command line: placeholders in capitals."""
    return " ".join([program] + [re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), a)
                                 for a in argv])


def test_a_handout_for_every_default_assignment():
    missing = [a for a in DEFAULT_ASSIGNMENTS if not (HANDOUTS / f"{a}.md").exists()]
    assert not missing, f"no handout for {missing}"


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_tags_are_exactly_the_contract_rules(assignment):
    contract = by_id(assignment)
    tags = [rule for rule, _ in tagged_lines(handout(assignment))]
    unstated = sorted(set(contract.rules) - set(tags))
    unknown = sorted(set(tags) - set(contract.rules))
    twice = sorted({t for t in tags if tags.count(t) > 1})
    assert not unstated, f"rules of {assignment} the handout does not state: {unstated}"
    assert not unknown, f"tags in the {assignment} handout that are no rule of its contract: {unknown}"
    assert not twice, f"rules tagged more than once in the {assignment} handout: {twice}"


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_each_tagged_sentence_speaks_of_its_rule(assignment):
    contract = by_id(assignment)
    wrong = []
    for rule, line in tagged_lines(handout(assignment)):
        if rule not in contract.rules:
            continue  # reported by test_tags_are_exactly_the_contract_rules
        sentence = line.lstrip("-*0123456789. ").strip()
        if len(words(sentence)) < 2:
            wrong.append(f"{rule}: empty or too short: {line!r}")
        elif not words(sentence) & words(contract.rules[rule]):
            wrong.append(f"{rule}: {sentence!r} shares no word with the contract's "
                         f"{contract.rules[rule]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_tags_end_their_line(assignment):
    """A tag trails the sentence it grades, so it stays invisible and unambiguous."""
    bad = [line for line in handout(assignment).splitlines()
           if TAG.search(line) and not TAG.sub("", line).strip()
           or TAG.search(line) and not re.search(r"(<!--\s*rule:\s*[\w-]+\s*-->\s*)+$", line)]
    assert not bad, f"tags not at the end of a sentence's line: {bad}"


@pytest.mark.parametrize("assignment", DEFAULT_ASSIGNMENTS)
def test_handout_names_the_programs_and_their_arguments(assignment):
    contract = by_id(assignment)
    text = handout(assignment)
    specs = [p for p in (contract.server, contract.client, contract.counter) if p is not None]
    assert specs
    missing = [usage(p.program, p.argv) for p in specs if usage(p.program, p.argv) not in text]
    assert not missing, f"the {assignment} handout never shows the command line {missing}"


def test_usage_renders_placeholders_in_capitals():
    assert usage("tcp_chat_client", ("{host}", "{port}")) == "tcp_chat_client HOST PORT"
    assert usage("shared_counter", ("{threads}", "{iters}")) == "shared_counter THREADS ITERS"


def test_tagged_lines_reads_every_tag_and_strips_them():
    text = "- one rule <!-- rule: a -->\nplain\n- two <!-- rule: b --> <!--rule:c-->\n"
    assert tagged_lines(text) == [("a", "- one rule"), ("b", "- two"), ("c", "- two")]
