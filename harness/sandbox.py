"""The box every program of a submission runs in: its build, its server,
its clients.

A grader runs untrusted code from a whole class. Each program under test is
started through a small C helper (sandbox_exec.c, compiled here on first
use) that puts it in

- a PID namespace of its own: when the program ends, everything it started
  (children, double-forked daemons, setsid escapees) is killed with it;
- a mount namespace in which the grader's files, /tmp, /home, /root, /run
  and every submission folder are hidden under empty tmpfs, and only the
  program's own box (its binaries, a private HOME and TMPDIR, its
  scenario's work folder) is visible; and a /proc that shows no other
  process;
- the scenario's network namespace (the harness thread's, see netns.py),
  whose only interface is its loopback;
- cgroups that cap its memory and its number of processes and threads;
- resource limits: CPU seconds, file size, open files, processes;
- an unprivileged uid of its own (one per box, from CHATGRADE_SANDBOX_UID,
  default 100000), with no supplementary groups and no_new_privs.

Limits are scaled for valgrind, which needs several times the memory and
CPU. Without root, or where namespaces are refused, programs run with the
resource limits alone and a subreaper collects escapees; mode_description()
says which, and the run's header and each grade's notes repeat it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).resolve().parent / "sandbox_exec.c"
HELPER = ROOT / "build" / "harness" / "chatgrade-sandbox"
# Each box runs as a uid of its own, drawn from UID_RANGE uids from this
# one: what the kernel keeps per user (keyrings, process counts, inotify
# and mqueue quotas) is then never shared between two students' programs.
SANDBOX_UID = int(os.environ.get("CHATGRADE_SANDBOX_UID", "100000"))
UID_RANGE = 1 << 16


def is_sandbox_uid(uid: int) -> bool:
    return SANDBOX_UID <= uid < SANDBOX_UID + UID_RANGE
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Always hidden; plus the project itself, and what the grader adds in
# CHATGRADE_HIDE (os.pathsep-separated: the class folder being graded, the
# output folder), which its check runs inherit.
HIDDEN = ["/run", "/root", "/home", "/srv", "/mnt", "/media"]
# Hidden too, but replaced by an empty world-writable tmpfs of the box's
# own (a program may use /tmp and POSIX shared memory).
SCRATCH = ["/tmp", "/var/tmp", "/dev/shm"]
HIDE_ENV = "CHATGRADE_HIDE"
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one program under test may use. None: no limit of ours.

    memory and processes are cgroup limits (resident memory; processes
    plus threads); the rest are setrlimit(2) values.
    """
    cpu_seconds: int | None = 60
    memory: int | None = 512 * MiB
    processes: int | None = 1024
    file_size: int | None = 64 * MiB
    open_files: int | None = 1024
    address_space: int | None = None      # only used where there is no memory cgroup

    def scaled(self, factor: float) -> "Limits":
        """For valgrind: more CPU time and memory (address space unlimited)."""
        if factor <= 1:
            return self
        return replace(self, cpu_seconds=self.cpu_seconds and int(self.cpu_seconds * factor),
                       memory=self.memory and int(self.memory * min(factor, 4)),
                       address_space=None)

    def merged(self, **overrides) -> "Limits":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def describe(self) -> str:
        parts = []
        if self.cpu_seconds:
            parts.append(f"{self.cpu_seconds} s CPU")
        if self.memory:
            parts.append(f"{self.memory // MiB} MB memory")
        if self.processes:
            parts.append(f"{self.processes} processes/threads")
        if self.file_size:
            parts.append(f"{self.file_size // MiB} MB per file")
        if self.open_files:
            parts.append(f"{self.open_files} open files")
        return ", ".join(parts)

    def apply(self) -> None:
        """setrlimit in the child before exec: the fallback without the helper."""
        import resource
        pairs = [(resource.RLIMIT_CPU, self.cpu_seconds), (resource.RLIMIT_FSIZE, self.file_size),
                 (resource.RLIMIT_NOFILE, self.open_files),
                 (resource.RLIMIT_AS, self.address_space or (self.memory and 8 * self.memory))]
        for res, value in pairs:
            if value is not None:
                hard = value + 5 if res == resource.RLIMIT_CPU else value
                resource.setrlimit(res, (value, hard))


BUILD_LIMITS = Limits(cpu_seconds=300, memory=2048 * MiB, processes=512,
                      file_size=512 * MiB, open_files=1024)

_lock = threading.Lock()
_state: dict[str, object] = {}


def _compile_helper() -> Path:
    """Build the helper next to the references; rebuilt when its source changes."""
    if HELPER.exists() and HELPER.stat().st_mtime >= SOURCE.stat().st_mtime:
        return HELPER
    HELPER.parent.mkdir(parents=True, exist_ok=True)
    tmp = HELPER.with_name(f".{HELPER.name}.{os.getpid()}.{threading.get_ident()}")
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-o", str(tmp), str(SOURCE)],
                   check=True, capture_output=True)
    os.replace(tmp, HELPER)   # atomic: parallel workers never run a half-written file
    return HELPER


def _cgroup_dir(controller: str) -> Path | None:
    """Where we may create cgroups for `controller` (cgroup v1), or None."""
    base = CGROUP_ROOT / controller
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(","):
                    here = base / path.lstrip("/") / "chatgrade"
                    here.mkdir(exist_ok=True)
                    return here
    except OSError:
        return None
    return None


def run_tag() -> str:
    """CHATGRADE_RUN from the environment (letters and digits only): the
    test suite sets it, and every grader it starts inherits it, so the
    suite's leftover check can tell its own boxes from those of another run
    on the same machine."""
    tag = os.environ.get("CHATGRADE_RUN", "")
    return tag if tag.isalnum() else ""


def sweep_cgroups(base: Path) -> None:
    """Remove empty cgroups of graders that no longer run."""
    for d in base.glob("box-*"):
        owner = d.name.split("-")[1]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            try:
                d.rmdir()
            except OSError:
                pass    # still holds a process: a leak for the caller to report


def _probe() -> dict:
    """What isolation this machine allows us (tried once per process)."""
    with _lock:
        if _state:
            return _state
        info: dict[str, object] = {"helper": None, "reason": ""}
        if os.geteuid() != 0:
            info["reason"] = "not running as root"
        else:
            try:
                helper = _compile_helper()
                r = subprocess.run([str(helper), "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                                    "--scratch", "/tmp", "--", "true"], capture_output=True, timeout=30)
                if r.returncode == 0:
                    info["helper"] = helper
                else:
                    info["reason"] = r.stderr.decode(errors="replace").strip() or f"exit {r.returncode}"
            except (OSError, subprocess.SubprocessError) as e:
                info["reason"] = f"the sandbox helper could not be built: {e}"
        info["pids"] = _cgroup_dir("pids") if info["helper"] else None
        info["memory"] = _cgroup_dir("memory") if info["helper"] else None
        for base in (info["pids"], info["memory"]):
            if base is not None:
                sweep_cgroups(base)
        _state.update(info)
        return _state


def available() -> bool:
    return _probe()["helper"] is not None


def mode_description() -> str:
    st = _probe()
    if st["helper"] is None:
        return (f"sandbox: limits only ({st['reason']}): programs run as this user with "
                "rlimits; a subreaper collects escaped processes")
    cg = [c for c in ("pids", "memory") if st[c] is not None]
    return (f"sandbox: a uid of its own per box (from {SANDBOX_UID}), private PID/mount namespaces, "
            "grader files hidden"
            + (f", cgroups: {', '.join(cg)}" if cg else ", no cgroups (rlimits only)"))


def chown_tree(path: Path, uid: int) -> None:
    """Give the box to its sandbox user (its HOME, its build tree). Runs
    before any of the submission's code, and never follows a link."""
    if not available():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, uid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, uid)


@dataclass
class Sandbox:
    """The box of one scenario or build: what a program there can see.

    `box` is the read-write folder of the program (its working directory,
    HOME and TMPDIR live there); `visible` are read-only folders it needs
    (its binaries, our valgrind suppressions); `hidden` adds folders to
    hide beyond HIDDEN and the project itself.
    """
    box: Path
    visible: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=lambda: hidden_from_env())
    limits: Limits = field(default_factory=Limits)
    uid: int = field(default_factory=lambda: SANDBOX_UID + secrets.randbelow(UID_RANGE))
    _env: dict[str, str] | None = None

    def prepare(self) -> dict[str, str]:
        """Make HOME and TMPDIR in the box; the environment for programs."""
        if self._env is not None:
            return dict(self._env)
        home = self.box / ".home"
        home.mkdir(parents=True, exist_ok=True)
        # Outside hidden folders (/tmp is one) the folders above the box
        # must let the sandbox user pass: the caller's temporary folders
        # are made 0711 where they are created.
        chown_tree(self.box, self.uid)
        # TMPDIR: the box's own /tmp (SCRATCH), private to each program.
        self._env = {"HOME": str(home), "TMPDIR": "/tmp", "PATH": "/usr/local/bin:/usr/bin:/bin",
                     "LANG": "C.UTF-8", "USER": "student", "LOGNAME": "student"}
        return dict(self._env)

    def wrap(self, argv: list[str], cwd: str | Path | None, limits: Limits | None = None,
             ignore_signals: Sequence[int] = ()) -> tuple[list[str], "Confinement | None"]:
        """argv to run instead of `argv`, and the handle to its cgroups and
        report. The program starts with `ignore_signals` ignored, every other
        signal at its default."""
        st = _probe()
        limits = limits or self.limits
        if st["helper"] is None:
            return argv, None
        for v in [self.box, *self.visible]:
            # The helper refuses a link at the last component; here none
            # anywhere: an exposed folder must be exactly the one named.
            if os.path.realpath(v) != os.path.abspath(v):
                raise ValueError(f"sandbox: {v} goes through a symbolic link; refusing to expose it")
        conf = Confinement(limits)
        out = [str(st["helper"]), "--uid", str(self.uid), "--gid", str(self.uid),
               "--chdir", str(cwd or self.box), "--report", str(conf.report)]
        for controller, knob, value in (("pids", "pids.max", limits.processes),
                                        ("memory", "memory.limit_in_bytes", limits.memory)):
            base = st[controller]
            if base is not None and value:
                out += ["--cgroup", str(conf.add_cgroup(base, controller, knob, value))]
        for name, value in (("cpu", limits.cpu_seconds), ("fsize", limits.file_size),
                            ("nofile", limits.open_files), ("core", 0),
                            # The uid's total across every box running now: a
                            # backstop for machines without the pids cgroup.
                            ("nproc", 8192 if limits.processes and st["pids"] is None else None),
                            ("as", limits.address_space if st["memory"] is None else None)):
            if value is not None:
                out += ["--rlimit", f"{name}={value}"]
        for h in [*HIDDEN, *project_folders(), *self.hidden]:
            out += ["--hide", os.path.abspath(h)]
        for h in SCRATCH:
            out += ["--scratch", h]
        for sig in ignore_signals:
            out += ["--ignore-signal", str(int(sig))]
        out += ["--expose", os.path.abspath(self.box)]
        for v in self.visible:
            out += ["--expose-ro", os.path.abspath(v)]
        return out + ["--", *argv], conf


class Confinement:
    """One sandboxed process's cgroups and report: what it ran into."""

    def __init__(self, limits: Limits):
        self.limits = limits
        fd, name = tempfile.mkstemp(prefix="chatgrade-sandbox-", suffix=".report")
        os.close(fd)
        self.report = Path(name)
        self.cgroups: dict[str, Path] = {}
        self.escaped: list[str] = []
        self._findings: list[str] | None = None

    def add_cgroup(self, base: Path, controller: str, knob: str, value: int) -> Path:
        # Named after us: a grader killed with -9 leaves its cgroups, and the
        # next one removes those whose owner is gone (sweep_cgroups). Then
        # the run's tag, if the grader was started by one (run_tag()).
        tag = run_tag()
        d = Path(tempfile.mkdtemp(prefix=f"box-{os.getpid()}-{tag + '-' if tag else ''}", dir=base))
        (d / knob).write_text(str(value))
        if controller == "memory":
            # Where swap is accounted, swap counts against the same limit.
            try:
                (d / "memory.memsw.limit_in_bytes").write_text(str(value))
            except OSError:
                pass
        self.cgroups[controller] = d
        return d

    def _read(self, controller: str, name: str) -> str:
        d = self.cgroups.get(controller)
        try:
            return (d / name).read_text() if d else ""
        except OSError:
            return ""

    def findings(self, returncode: int | None, on_its_own: bool = False) -> list[str]:
        """What the sandbox saw, in words, once the program has ended
        (`on_its_own`: not stopped by the harness)."""
        if self._findings is not None or returncode is None:
            return self._findings or []
        out = []
        oom = {k: v for k, v in (l.split() for l in self._read("memory", "memory.oom_control").splitlines()
                                 if len(l.split()) == 2)}
        if int(oom.get("oom_kill", "0")) > 0 or (
                returncode == -signal.SIGKILL and self._read("memory", "memory.failcnt").strip() not in ("", "0")
                and "oom_kill" not in oom):
            out.append(f"killed: over {self.limits.memory // MiB} MB of memory")
        if returncode == -signal.SIGXCPU:
            out.append(f"killed: over {self.limits.cpu_seconds} s of CPU time")
        if returncode == -signal.SIGXFSZ:
            out.append(f"killed: wrote a file over {self.limits.file_size // MiB} MB")
        events = self._read("pids", "pids.events").split()
        if len(events) == 2 and events[0] == "max" and events[1] != "0":
            out.append(f"hit the limit of {self.limits.processes} processes and threads "
                       f"({events[1]} fork/clone calls refused)")
        try:
            lines = self.report.read_text().splitlines()
        except OSError:
            lines = []
        # "left PID PGRP COMM". Group 0 is the program's own, which the
        # harness's signals reach: worth telling only when the program ended
        # by itself, leaving them. Any other group escaped, as a daemon does.
        left = [(f[2], f"{f[3] if len(f) > 3 else '?'} (pid {f[1]} in the sandbox)")
                for f in (l.split(None, 3) for l in lines if l.startswith("left ")) if len(f) > 2]
        self.escaped = [what for group, what in left if group != "0"]
        told = [what for _, what in left] if on_its_own else self.escaped
        if told:
            out.append(f"left {len(told)} process(es) running when it ended "
                       f"({', '.join(told)}); the sandbox killed them")
        self._findings = out
        return out

    def release(self, returncode: int | None, on_its_own: bool = False) -> None:
        """Record the findings, then remove the cgroups and the report."""
        self.findings(returncode, on_its_own)
        for d in self.cgroups.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Tasks of a dying namespace still being reaped: kill
                    # what is left and retry.
                    for pid in (d / "cgroup.procs").read_text().split() if (d / "cgroup.procs").exists() else []:
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (ProcessLookupError, ValueError):
                            pass
                    threading.Event().wait(0.02)
        self.report.unlink(missing_ok=True)


def _open_untrusted(path: str | Path) -> int | None:
    """An fd on a regular file a submission may have planted or replaced:
    never through a link at its last component, never blocking on a FIFO
    or device. None when it is anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_untrusted(path: str | Path, cap: int = 16 * MiB) -> bytes | None:
    """At most `cap` bytes of a file in a box (valgrind's reports, sources):
    the harness runs as root, outside every limit, so it must not read
    /dev/zero or a secret through a link the program left there."""
    fd = _open_untrusted(path)
    if fd is None:
        return None
    try:
        chunks, total = [], 0
        while total < cap:
            b = os.read(fd, min(1 << 20, cap - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def copy_untrusted(src: Path, dest: Path, cap: int = 256 * MiB) -> bool:
    """Copy a built program out of its box into a folder of ours: a
    regular file only, and `dest` created anew (never through a link)."""
    fd = _open_untrusted(src)
    if fd is None:
        return False
    try:
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
        try:
            copied = 0
            while copied < cap:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                os.write(out, b)
                copied += len(b)
        finally:
            os.close(out)
        return copied < cap
    finally:
        os.close(fd)


# Folders that hold the system's own programs: never hidden as the
# project's parent.
_SYSTEM = {Path(p) for p in ("/", "/usr", "/usr/local", "/usr/share", "/usr/lib", "/opt", "/var",
                             "/var/lib", "/etc", "/tmp")}


def project_folders() -> list[Path]:
    """The project and the folder it was checked out in (its neighbours
    are a grader's too: other checkouts, shared notes), unless that is a
    system folder."""
    return [ROOT] + ([ROOT.parent] if ROOT.parent not in _SYSTEM else [])


def hidden_from_env() -> list[Path]:
    return [Path(p) for p in os.environ.get(HIDE_ENV, "").split(os.pathsep) if p]
