"""Build a submission the way ASSIGNMENTS.md says, in a private copy.

A submission holding CMakeLists.txt is built with CMake; else one holding a
Makefile with make; else each program is compiled from <program>.c plus
every .c file that defines no main, with -std=c11 -Wall -Wextra -pthread -g.
The built programs are collected into one folder, the one the scenarios
are pointed at. Nothing here raises on a bad submission: a build that
fails, hangs or floods its output gives a BuildResult that says so.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import netns
from .procs import Supervisor
from .sandbox import BUILD_LIMITS, Sandbox, copy_untrusted, read_untrusted

GCC_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-pthread", "-g"]
STEP_TIMEOUT = 180.0            # seconds per build command
LOG_CAP = 256 * 1024            # bytes of compiler output kept per command
_MAIN = re.compile(rb"\bmain\s*\(")
_WARNING = re.compile(r"^.*\bwarning:.*$", re.M)
_IGNORED_DIRS = {".git", "build", "_chatgrade_build", "CMakeFiles"}


@dataclass
class BuildResult:
    ok: bool                                   # every program was built
    system: str                                # cmake | make | gcc | none
    log: str = ""
    warnings: list[str] = field(default_factory=list)
    programs: dict[str, Path | None] = field(default_factory=dict)
    duration: float = 0.0
    error: str = ""                            # why it failed, in a sentence
    source_dir: Path | None = None             # the private copy that was built
    bin_dir: Path | None = None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "system": self.system, "log": self.log,
                "warnings": self.warnings, "error": self.error,
                "programs": {n: p is not None for n, p in self.programs.items()},
                "duration": round(self.duration, 3)}


def _defines_main(path: Path) -> bool:
    text = read_untrusted(path, cap=4 << 20)
    if text is None:
        return False
    # Comments and strings rarely say "main(" in a student's helper file;
    # this is the rule the handout states, not a C parser.
    return bool(_MAIN.search(text))


def _is_executable(p: Path) -> bool:
    try:
        st = p.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _find_program(root: Path, name: str) -> Path | None:
    """The executable called `name` under root (shallowest first). The tree
    is the submission's to shape: no link is followed, neither a folder nor
    the file (a link could name a file of ours), and root itself must be a
    real folder."""
    if root.is_symlink() or not root.is_dir():
        return None
    found = []
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        p = Path(dirpath) / name
        if name in files and not p.is_symlink() and _is_executable(p):
            found.append(p)
    found.sort(key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None


def _copy_sources(src: Path, dest: Path) -> None:
    def ignore(folder, names):
        # Links are copied as links (symlinks=True); FIFOs, sockets and
        # devices not at all: copying one would block or read forever.
        out = []
        for n in names:
            try:
                mode = os.lstat(os.path.join(folder, n)).st_mode
            except OSError:
                out.append(n)
                continue
            if n in _IGNORED_DIRS or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                out.append(n)
        return out
    shutil.copytree(src, dest, symlinks=True, ignore=ignore)


def build(submission: Path, programs: list[str], workdir: Path,
          timeout: float = STEP_TIMEOUT, env: dict[str, str] | None = None,
          hidden: list[Path] = ()) -> BuildResult:
    """Build `programs` from the submission folder into workdir/bin.

    The build runs in workdir/box, which the submission's code may reshape
    at will; the programs are then copied, as plain files, into workdir/bin,
    which is ours (root's) and which the checks show their programs
    read-only.
    """
    with netns.isolated():
        # A Makefile gets the network a check gets: a loopback, nothing else.
        return _build(submission, programs, workdir, timeout, env, hidden)


def _build(submission: Path, programs: list[str], workdir: Path, timeout: float,
           env: dict[str, str] | None, hidden: list[Path]) -> BuildResult:
    start = time.monotonic()
    submission = Path(submission)
    src, bin_dir = workdir / "box" / "src", workdir / "bin"
    result = BuildResult(ok=False, system="none", programs={p: None for p in programs},
                         source_dir=src, bin_dir=bin_dir)
    if not submission.is_dir():
        result.error = f"{submission} is not a folder"
        return result
    _copy_sources(submission, src)
    bin_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(output_cap=LOG_CAP)
    # The build is the submission's own code too (a Makefile runs anything):
    # it runs in a box that sees only this private copy.
    box = Sandbox(workdir / "box", limits=BUILD_LIMITS)
    box.hidden += [Path(h) for h in hidden]
    logs: list[str] = []

    def run(argv: list[str], cwd: Path) -> bool:
        proc = sup.run("build", argv, timeout=timeout, cwd=cwd, sandbox=box, env=env)
        out = proc.stdout.text() + proc.stderr.text()
        logs.append(f"$ {' '.join(argv)}\n{out}")
        if proc.findings():
            logs.append(f"[sandbox: {'; '.join(proc.findings())}]")
        if proc.timed_out:
            logs.append(f"[killed: the build step ran for more than {timeout:g}s]")
            result.error = f"'{' '.join(argv[:2])}' ran for more than {timeout:g}s and was stopped"
            return False
        if proc.popen.returncode != 0:
            result.error = f"'{' '.join(argv[:2])}' failed ({proc.status()})"
            return False
        return True

    try:
        if (src / "CMakeLists.txt").exists():
            result.system = "cmake"
            tree = src / "_chatgrade_build"
            if run(["cmake", "-S", str(src), "-B", str(tree), "-DCMAKE_BUILD_TYPE=Debug"], src):
                run(["cmake", "--build", str(tree), "-j2"], src)
            search = [tree, src]
        elif (src / "Makefile").exists() or (src / "makefile").exists():
            result.system = "make"
            run(["make", "-j2"], src)
            search = [src]
        else:
            result.system = "gcc"
            helpers = sorted(str(p.relative_to(src)) for p in src.glob("*.c")
                             if p.stem not in programs and not _defines_main(p))
            for name in programs:
                main_file = src / f"{name}.c"
                if not main_file.exists():
                    logs.append(f"[no {name}.c in the submission]")
                    result.error = result.error or f"no {name}.c in the submission"
                    continue
                run(["gcc", *GCC_FLAGS, "-o", name, f"{name}.c", *helpers], src)
            search = [src]
        for name in programs:
            exe = next((p for root in search for p in [_find_program(root, name)] if p), None)
            (bin_dir / name).unlink(missing_ok=True)
            copied = exe is not None and copy_untrusted(exe, bin_dir / name)
            result.programs[name] = bin_dir / name if copied else None
    finally:
        sup.stop_all(grace=1)
    result.log = "\n".join(logs)
    result.warnings = sorted(set(m.group(0).strip() for m in _WARNING.finditer(result.log)))
    missing = [n for n, p in result.programs.items() if p is None]
    result.ok = not missing
    if missing and not result.error:
        result.error = f"the build did not produce {', '.join(missing)}"
    result.duration = time.monotonic() - start
    return result
