"""Rubrics: points per contract rule, as data (grading/rubrics/<id>.toml),
and the scoring of one rule from the outcomes of its checks."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.contract import Contract

RUBRICS_DIR = Path(__file__).resolve().parent.parent / "rubrics"
MODES = ("all", "fraction", "valgrind")
DEDUCTION_KINDS = ("errors", "definitely_lost", "indirectly_lost", "open_fds", "crashed")


class RubricError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    rule: str
    points: float
    category: str
    mode: str = "all"
    deduct: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rubric:
    assignment: str
    build_points: float
    warnings_penalty: float
    warnings_cap: float
    items: tuple[Item, ...]
    path: Path

    @property
    def max_score(self) -> float:
        return self.build_points + sum(i.points for i in self.items)


def load(path: Path, contract: Contract | None = None) -> Rubric:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RubricError(f"{path}: {e}") from None
    b = data.get("build", {})
    items = []
    for n, t in enumerate(data.get("item", []), 1):
        where = f"{Path(path).name} item {n}"
        for key in ("rule", "points", "category"):
            if key not in t:
                raise RubricError(f"{where}: '{key}' is required")
        mode = t.get("mode", "all")
        if mode not in MODES:
            raise RubricError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
        deduct = {k: float(v) for k, v in t.get("deduct", {}).items()}
        unknown = set(deduct) - set(DEDUCTION_KINDS)
        if unknown:
            raise RubricError(f"{where}: unknown deductions {sorted(unknown)}")
        items.append(Item(t["rule"], float(t["points"]), t["category"], mode, deduct))
    rubric = Rubric(data.get("assignment", Path(path).stem), float(b.get("points", 0)),
                    float(b.get("warnings_penalty", 0)), float(b.get("warnings_cap", 0)),
                    tuple(items), Path(path))
    if contract is not None:
        rules = [i.rule for i in items]
        dup = sorted({r for r in rules if rules.count(r) > 1})
        unknown = sorted(set(rules) - set(contract.rules))
        missing = sorted(set(contract.rules) - set(rules))
        if dup or unknown or missing:
            raise RubricError(f"{path}: rules listed twice {dup}, not in the contract {unknown}, "
                              f"without points {missing}")
    return rubric


def for_contract(contract: Contract, directory: Path = RUBRICS_DIR) -> Rubric:
    path = directory / f"{contract.id}.toml"
    if not path.exists():
        raise RubricError(f"no rubric for {contract.id} ({path})")
    return load(path, contract)


def _valgrind_deductions(item: Item, checks: list[dict]) -> list[dict]:
    """Deductions by kind from the worst report among the checks; each kind
    counts once, however many errors of it there are."""
    found: dict[str, str] = {}
    for c in checks:
        vg = c.get("valgrind")
        if not vg:
            continue
        leaks = vg.get("leaks", {})
        if vg.get("errors"):
            found.setdefault("errors", f"{len(vg['errors'])} memory error(s), first: "
                             f"{vg['errors'][0].get('what') or vg['errors'][0].get('kind')}")
        if leaks.get("definitely_bytes"):
            found.setdefault("definitely_lost", f"definitely lost {leaks['definitely_bytes']} B")
        if leaks.get("indirectly_bytes") and not leaks.get("definitely_bytes"):
            # Indirect blocks hang off definitely lost ones: one forgotten
            # free of a list head is one mistake, charged once.
            found.setdefault("indirectly_lost", f"indirectly lost {leaks['indirectly_bytes']} B")
        if vg.get("open_fds"):
            found.setdefault("open_fds", f"{len(vg['open_fds'])} fd(s) open at exit")
        if vg.get("fatal_signal"):
            fs = vg["fatal_signal"]
            found.setdefault("crashed", f"killed by {fs.get('signame') or fs.get('signo')}")
    return [{"reason": why, "points": item.deduct.get(kind, item.points)} for kind, why in found.items()]


def score_item(item: Item, checks: list[dict]) -> tuple[float, str, list[dict]]:
    """(score, status, deductions) of one rubric item from its checks.

    `checks` are result entries (see harness.plugin): outcome passed, failed,
    skipped or "not run".
    """
    ran = [c for c in checks if c["outcome"] in ("passed", "failed")]
    if not ran:
        return 0.0, "skipped", []
    failed = [c for c in ran if c["outcome"] == "failed"]
    if not failed:
        return item.points, "passed", []
    if item.mode == "fraction":
        return round(item.points * (len(ran) - len(failed)) / len(ran), 2), "failed", []
    if item.mode == "valgrind":
        deductions = _valgrind_deductions(item, failed)
        if not deductions and all(c.get("valgrind") for c in failed):
            # The report is clean: what failed belongs to another rule
            # (the exit status is the shutdown rule's).
            return item.points, "passed", []
        if not deductions:
            return 0.0, "failed", [{"reason": "no valgrind report (the program did not finish)",
                                    "points": item.points}]
        lost = min(item.points, sum(d["points"] for d in deductions))
        return round(item.points - lost, 2), "failed", deductions
    return 0.0, "failed", []
