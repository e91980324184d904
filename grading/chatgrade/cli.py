"""The chatgrade command.

    chatgrade grade SUBMISSION_DIR --assignment A [--json F] [--junit F] [--html F] [--md F]
                                   [--jobs N] [--no-valgrind]
    chatgrade batch ROOT --assignment A --out DIR [--jobs N] [--shard I/N] [--resume] [--no-valgrind]
    chatgrade merge OUT_DIR... --out DIR
    chatgrade gradescope --assignment A --out autograder.zip

Exit status: 0 when grading completed (whatever the score), 2 for a usage
error, 3 when the grader itself failed - never confused with a student's
failure.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from harness.contract import ContractError, by_id

EXIT_OK, EXIT_USAGE, EXIT_GRADER = 0, 2, 3
ASSIGNMENTS = ("tcp_chat", "udp_chat", "select_chat", "shared_counter")


class UsageError(Exception):
    pass


def _assignment(value: str) -> str:
    try:
        by_id(value)
    except ContractError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _shard(value: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected I/N, e.g. 2/4") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{value!r}: I must be between 1 and N")
    return i, n


def _rules(value: str) -> list[str]:
    rules = [r.strip() for r in value.split(",") if r.strip()]
    if not rules:
        raise argparse.ArgumentTypeError("expected rule ids separated by commas")
    return rules


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", type=_rules, default=None,
                   help="grade only these rules (comma-separated ids); the others are skipped")
    p.add_argument("--build-timeout", type=_positive, default=None,
                   help="seconds each build command may run (default 180)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatgrade", description="Grade chat-server assignments.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one submission folder")
    g.add_argument("submission", type=Path)
    g.add_argument("--assignment", required=True, type=_assignment,
                   help=f"one of {', '.join(ASSIGNMENTS)} (or another contract's id)")
    g.add_argument("--json", type=Path, help="write Gradescope's results.json here")
    g.add_argument("--junit", type=Path, help="write JUnit XML here")
    g.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    g.add_argument("--md", type=Path, help="write a Markdown report here")
    g.add_argument("--grade-json", type=Path, help="write the full grade data here")
    g.add_argument("--jobs", type=_positive, default=2, help="checks run at once (default 2)")
    g.add_argument("--no-valgrind", action="store_true", help="skip the valgrind checks (faster)")
    _selection_options(g)

    b = sub.add_parser("batch", help="grade every subfolder of ROOT")
    b.add_argument("root", type=Path)
    b.add_argument("--assignment", required=True, type=_assignment)
    b.add_argument("--out", required=True, type=Path)
    b.add_argument("--jobs", type=_positive, default=2, help="submissions graded at once")
    b.add_argument("--shard", type=_shard, default=(1, 1), help="grade only shard I of N (I/N)")
    b.add_argument("--resume", action="store_true", help="keep submissions already graded in --out")
    b.add_argument("--no-valgrind", action="store_true")
    _selection_options(b)

    m = sub.add_parser("merge", help="join the gradebooks of several batch outputs")
    m.add_argument("outputs", type=Path, nargs="+")
    m.add_argument("--out", required=True, type=Path)

    z = sub.add_parser("gradescope", help="build a Gradescope autograder package")
    z.add_argument("--assignment", required=True, type=_assignment)
    z.add_argument("--out", required=True, type=Path)
    return p


def _check_rules(args) -> None:
    from harness.contract import by_id
    if args.rules:
        known = by_id(args.assignment).rules
        unknown = [r for r in args.rules if r not in known]
        if unknown:
            raise UsageError(f"--rules: {', '.join(unknown)} not rule(s) of {args.assignment} "
                             f"(its rules: {', '.join(known)})")


def cmd_grade(args) -> int:
    if not args.submission.is_dir():
        raise UsageError(f"{args.submission}: no such folder")
    from .grade import grade
    from .output import write_all
    from .reports import terminal
    print(f"chatgrade: grading {args.submission} as {args.assignment}", file=sys.stderr)
    _check_rules(args)
    g = grade(args.submission, args.assignment, jobs=args.jobs, valgrind=not args.no_valgrind,
              on_check=lambda c: print(terminal.check_line(c), flush=True),
              rules=args.rules, build_timeout=args.build_timeout)
    print(terminal.summary_table(g))
    write_all(g, json_path=args.json, junit_path=args.junit, html_path=args.html,
              md_path=args.md, grade_json=args.grade_json)
    return EXIT_OK


def cmd_batch(args) -> int:
    from .batch import batch
    if not args.root.is_dir():
        raise UsageError(f"{args.root}: no such folder")
    _check_rules(args)
    batch(args.root, args.assignment, args.out, jobs=args.jobs, shard=args.shard,
          resume=args.resume, valgrind=not args.no_valgrind, rules=args.rules,
          build_timeout=args.build_timeout)
    return EXIT_OK


def cmd_merge(args) -> int:
    from .batch import merge
    for o in args.outputs:
        if not (o / "gradebook.csv").exists():
            raise UsageError(f"{o}: no gradebook.csv (is it a batch --out folder?)")
    merge(args.outputs, args.out)
    return EXIT_OK


def cmd_gradescope(args) -> int:
    from .gradescope_package import build_package
    path = build_package(args.assignment, args.out)
    print(f"chatgrade: wrote {path}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse: 2 on a usage error, 0 for --help
        return int(e.code or 0)
    try:
        return {"grade": cmd_grade, "batch": cmd_batch, "merge": cmd_merge,
                "gradescope": cmd_gradescope}[args.command](args)
    except UsageError as e:
        print(f"chatgrade: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("chatgrade: interrupted", file=sys.stderr)
        return EXIT_GRADER
    except Exception:  # the grader's own bug: say so, never blame the student
        print("chatgrade: the grader itself failed (this is not the submission's fault):",
              file=sys.stderr)
        traceback.print_exc()
        return EXIT_GRADER


if __name__ == "__main__":
    sys.exit(main())
