"""Build a Gradescope autograder package (autograder.zip).

Gradescope unzips the package into /autograder/source, runs setup.sh once
when it builds the image, and runs /autograder/run_autograder for every
submission, which must leave /autograder/results/results.json. Ours ships
the project itself (harness, scenarios, contracts, rubrics, the reference
sources) and grades /autograder/submission with `chatgrade grade --json`.
AUTOGRADER_ROOT moves that layout elsewhere, for tests.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["chatgrade", "CMakeLists.txt", "pytest.ini", "harness", "scenarios", "grading",
           "impl", "bench", "scripts"]
_SKIP = {"__pycache__", ".pytest_cache", "examples"}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope image setup: Debian/Ubuntu packages, then the references.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential cmake valgrind iproute2 \\
    util-linux procps python3 python3-pytest python3-pytest-xdist python3-pytest-timeout
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Grade /autograder/submission as {assignment}; results in /autograder/results.
set -uo pipefail
AG="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$AG/source"
{build_references}mkdir -p "$AG/results"
/usr/bin/python3 -m grading.chatgrade.cli grade "$AG/submission" --assignment {assignment} \\
    --json "$AG/results/results.json" --md "$AG/results/report.md"
status=$?
if [ $status -ne 0 ] && [ ! -s "$AG/results/results.json" ]; then
    # Never leave Gradescope without a result: say the grader failed.
    printf '{{"score": 0, "output": "The autograder itself failed (exit %s); this is not your fault: tell your instructor.", "tests": []}}\\n' "$status" > "$AG/results/results.json"
fi
exit 0
"""


def _add_tree(z: zipfile.ZipFile, path: Path, arc: str) -> None:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            # Build trees are made on the image (setup.sh), not shipped.
            if child.name in _SKIP or (child.is_dir() and child.name.startswith("build")):
                continue
            _add_tree(z, child, f"{arc}/{child.name}")
    elif path.is_file():
        info = zipfile.ZipInfo(arc)
        mode = path.stat().st_mode
        info.external_attr = (stat.S_IMODE(mode) | stat.S_IFREG) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, path.read_bytes())


def _add_script(z: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o755 | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


def _reference_step(assignment: str) -> str:
    """Contracts that borrow a reference program (select_chat grades with
    the reference client) need the references built; the others do not."""
    from harness.contract import by_id
    borrowed = [p.program for p in (by_id(assignment).server, by_id(assignment).client)
                if p is not None and p.from_reference]
    if not borrowed:
        return ""
    return (f"# {', '.join(borrowed)} comes from the references.\n"
            f"[ -x build/impl/{borrowed[0]} ] || {{ cmake -S . -B build >/dev/null && "
            f"cmake --build build -j2 >/dev/null; }}\n")


def build_package(assignment: str, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        _add_script(z, "setup.sh", SETUP_SH)
        _add_script(z, "run_autograder", RUN_AUTOGRADER.format(
            assignment=assignment, build_references=_reference_step(assignment)))
        for name in SHIPPED:
            if (ROOT / name).exists():
                _add_tree(z, ROOT / name, name)
    os.replace(tmp, out)
    return out


def unpack(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the executable bits (zipfile's extract drops them)."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
