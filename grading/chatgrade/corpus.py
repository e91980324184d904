"""A corpus of submissions with known verdicts, and how the grader did on it.

Each submission folder of a corpus holds an `expected.toml`:

    verdict = "correct" | "defective"
    defect = "what is wrong, as a TA would say it"      # defective only
    rule = "no-echo"                                     # the rubric item that must lose points
    says = "its own message"                             # a phrase its output must contain
    uncaught = "why the grader misses it"                # optional: a known gap

`judge` compares a grade with its expectation; the corpus test and the
flake command (scripts/corpus_flakes.py) both use it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus"


@dataclass
class Expectation:
    name: str
    assignment: str
    verdict: str
    defect: str = ""
    rule: str = ""
    says: str = ""
    uncaught: str = ""


def load(folder: Path) -> Expectation:
    data = tomllib.loads((folder / "expected.toml").read_text())
    e = Expectation(folder.name, folder.parent.name, data["verdict"], data.get("defect", ""),
                    data.get("rule", ""), data.get("says", ""), data.get("uncaught", ""))
    if e.verdict not in ("correct", "defective"):
        raise ValueError(f"{folder}/expected.toml: verdict must be correct or defective")
    if e.verdict == "defective" and not (e.rule and e.says):
        raise ValueError(f"{folder}/expected.toml: a defective submission names its rule and says")
    return e


def submissions(root: Path = CORPUS) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/expected.toml"))


def judge(e: Expectation, grade: dict) -> list[str]:
    """What is wrong with the grade, given the expectation ([] = as expected)."""
    items = {i["id"]: i for i in grade.get("items", [])}
    if e.verdict == "correct":
        if grade["score"] != grade["max_score"]:
            lost = [f"{i['id']} {i['score']:g}/{i['max_score']:g}" for i in grade["items"]
                    if i["score"] < i["max_score"]]
            return [f"a correct submission got {grade['score']:g}: lost {', '.join(lost)}"]
        return []
    item = items.get(e.rule)
    if item is None:
        return [f"no rubric item {e.rule!r}"]
    problems = []
    if item["score"] >= item["max_score"]:
        problems.append(f"{e.rule} not penalised ({item['score']:g}/{item['max_score']:g})")
    elif e.says.lower() not in item["output"].lower() + " ".join(
            d["reason"] for d in item.get("deductions", [])).lower():
        # The output itself goes with it: a CI log is all there is to go on.
        shown = " | ".join(item["output"].splitlines())[:600]
        problems.append(f"{e.rule} lost points but its output does not say {e.says!r} "
                        f"(status {item['status']}; output: {shown})")
    return problems


def lost_where(grade: dict) -> str:
    return ", ".join(f"{i['id']} -{i['max_score'] - i['score']:g}" for i in grade.get("items", [])
                     if i["score"] < i["max_score"]) or "-"
