"""The one module that starts processes: programs under test, valgrind, builds.

Every program runs in a process group of its own (a new session), its
stdout and stderr captured by reader threads with timestamps and a size cap,
its stdin a pipe or a pty (stdio buffers stdout fully on a pipe and by line
on a tty, and a submission must work either way). Teardown signals the whole
group, waits, then kills it. A Supervisor owns every process a scenario
starts, stops them all at the end, and checks that none survived.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import signal
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .sandbox import Confinement, Limits, Sandbox
from .transcript import Transcript

DEFAULT_OUTPUT_CAP = 4 * 1024 * 1024   # bytes kept per stream; the rest is counted
READY_LINE = re.compile(rb"listening on port (\d+)")
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)

# Every child any Supervisor of this process started and has not reaped.
# Supervisors in several threads (a batch grades submissions at once) must
# tell their own children from orphans they adopted: a child not in this
# set is an orphan. The lock makes start-and-register one step.
_spawn_lock = threading.Lock()
_started: set[int] = set()


class ProcessError(RuntimeError):
    """A program could not be started, became unready, or misbehaved."""


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# Signals a program raises on itself by a fault, not ones sent to it.
_CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT,
            signal.SIGTRAP, signal.SIGSYS}


def describe_status(returncode: int | None) -> str:
    """'exit 0', 'crashed with SIGSEGV', 'killed by SIGTERM', 'still running'."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        if -returncode in _CRASHES:
            return f"crashed with {signal_name(-returncode)}"
        return f"killed by {signal_name(-returncode)}"
    return f"exit {returncode}"


class Stream:
    """One captured output stream: bytes kept up to a cap, waitable."""

    def __init__(self, name: str, cap: int, on_data: Callable[[bytes], None] | None = None):
        self.name = name
        self.cap = cap
        self._buf = bytearray()
        self.total = 0
        self.closed = False
        self._cond = threading.Condition()
        self._on_data = on_data

    @property
    def dropped(self) -> int:
        return self.total - len(self._buf)

    def feed(self, data: bytes) -> None:
        with self._cond:
            self.total += len(data)
            room = self.cap - len(self._buf)
            if room > 0:
                self._buf += data[:room]
            self._cond.notify_all()
        if self._on_data is not None:
            self._on_data(data)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def data(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    def text(self) -> str:
        out = self.data().decode("utf-8", "backslashreplace")
        if self.dropped:
            out += f"\n[... {self.dropped} more bytes not kept (cap {self.cap}) ...]"
        return out

    def wait_for(self, predicate: Callable[[bytes], object], deadline: float):
        """Wait until predicate(data) is truthy; return it, or None at the deadline or EOF."""
        with self._cond:
            while True:
                result = predicate(bytes(self._buf))
                if result:
                    return result
                if self.closed:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_closed(self, deadline: float) -> bool:
        with self._cond:
            while not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def _pump(fd: int, stream: Stream) -> None:
    """Reader thread: copy fd into stream until EOF (EIO on a pty master)."""
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                break  # EIO: the pty's slave side is closed everywhere
            if not chunk:
                break
            stream.feed(chunk)
    finally:
        os.close(fd)
        stream.close()


@dataclass
class Process:
    """A started program. Use Supervisor.spawn to make one."""
    name: str
    argv: list[str]
    popen: subprocess.Popen
    stdout: Stream
    stderr: Stream
    stdin_fd: int | None
    pty: bool
    transcript: Transcript | None
    started: float = field(default_factory=time.monotonic)
    stop_signal_sent: int | None = None
    timed_out: bool = False           # Supervisor.run killed it at its deadline
    confinement: Confinement | None = None   # its sandbox's cgroups and report
    outlived_signal: str = ""          # stop() had to SIGKILL it: why, in words
    _program_pid: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def program_pid(self) -> int | None:
        """The pid of the program itself, to read its /proc entries. In a
        sandbox `pid` is the sandbox's keeper: the program is its grandchild
        (keeper -> the namespace's init -> program). None once it is gone."""
        if self.confinement is None:
            return self.pid if self.alive() else None
        if self._program_pid is None:
            init = _first_child(self.pid)
            self._program_pid = _first_child(init) if init else None
        if self._program_pid is not None and not os.path.exists(f"/proc/{self._program_pid}"):
            return None
        return self._program_pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def findings(self) -> list[str]:
        """What its sandbox saw: limits hit, processes it left behind."""
        if self.confinement is None:
            return []
        return self.confinement.findings(self.popen.poll(), self.stop_signal_sent is None)

    @property
    def escaped(self) -> list[str]:
        self.findings()
        return self.confinement.escaped if self.confinement else []

    def status(self) -> str:
        """'exit 0', 'killed by SIGKILL; killed: over 512 MB of memory'."""
        return "; ".join([describe_status(self.popen.poll()), *self.findings()])

    def waiting(self) -> bool:
        """Whether the program has taken all that was written to its stdin
        (a pipe) and no thread of it is running: it waits for input, for
        the network or for a timer. Read from /proc, so it costs the
        program nothing. A program that is gone is not waiting."""
        pid = self.program_pid
        if pid is None:
            return False
        if self.stdin_fd is not None and not self.pty:
            pending = bytearray(4)
            try:
                fcntl.ioctl(self.stdin_fd, termios.FIONREAD, pending)
            except OSError:
                return False
            if int.from_bytes(pending, "little"):
                return False
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return False
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue             # a thread that just ended
            if state == "R":
                return False
        return True

    # -- stdin -----------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Write to the program's stdin (all of it)."""
        if self.stdin_fd is None:
            raise ProcessError(f"{self.name}: stdin is closed")
        if self.transcript:
            self.transcript.add(self.name, "stdin", data)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.stdin_fd, view)
            except InterruptedError:
                continue
            except BrokenPipeError:
                raise ProcessError(f"{self.name}: stdin is closed (the program exited?)") from None
            view = view[n:]

    def close_stdin(self) -> None:
        """End of input: EOF on a pipe, ^D on a pty (then the fd is closed)."""
        if self.stdin_fd is None:
            return
        if self.transcript:
            self.transcript.add(self.name, "stdin", detail="end of input")
        if self.pty:
            # In canonical mode VEOF at the start of a line reads as EOF.
            try:
                os.write(self.stdin_fd, b"\x04")
            except OSError:
                pass
            # The master stays open: closing it would hang up the program
            # (SIGHUP) before it has read the EOF.
            return
        os.close(self.stdin_fd)
        self.stdin_fd = None

    # -- waiting ---------------------------------------------------------
    def wait(self, timeout: float) -> int | None:
        """Wait for exit; the return code, or None if still running."""
        try:
            return self.popen.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return None

    def wait_ready_line(self, deadline: float) -> int | None:
        """Port from the first 'listening on port N' line in stdout or stderr."""
        def found(data: bytes):
            m = READY_LINE.search(data)
            return int(m.group(1)) if m else None
        while time.monotonic() < deadline:
            for s in (self.stdout, self.stderr):
                port = found(s.data())
                if port:
                    return port
            if not self.alive() and self.stdout.closed and self.stderr.closed:
                return None
            # Wake on new output or every 50 ms to watch the other stream.
            self.stdout.wait_for(found, min(deadline, time.monotonic() + 0.05))
        return None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, signum: int = signal.SIGTERM, grace: float = 3.0) -> int:
        """Signal the group, wait up to grace seconds, then SIGKILL it all.

        Returns the program's return code (negative: killed by a signal).
        """
        if self.alive():
            self.stop_signal_sent = signum
            if self.transcript:
                self.transcript.add(self.name, "signal", detail=signal_name(signum))
            self.signal_group(signum)
            if self.wait(grace) is None:
                self.outlived_signal = f"still running {grace:g}s after {signal_name(signum)}"
                if self.transcript:
                    self.transcript.add(self.name, "signal",
                                        detail=f"SIGKILL (no exit {grace:g}s after {signal_name(signum)})")
        # Whatever else is left in the group (children) goes too.
        self.signal_group(signal.SIGKILL)
        self.popen.wait()
        self._finish()
        return self.popen.returncode

    def _finish(self, timeout: float = 2.0) -> None:
        with _spawn_lock:
            _started.discard(self.pid)
        if self.confinement is not None:
            self.confinement.release(self.popen.poll(), self.stop_signal_sent is None)
            if self.transcript and self.findings():
                self.transcript.add(self.name, "exit",
                                    detail="sandbox: " + "; ".join(self.findings()))
        deadline = time.monotonic() + timeout
        self.stdout.wait_closed(deadline)
        self.stderr.wait_closed(deadline)
        for stream in (self.stdout, self.stderr):
            if stream.dropped and self.transcript and not getattr(stream, "_told", False):
                stream._told = True
                self.transcript.add(self.name, "note", detail=(
                    f"{stream.name}: {stream.total} bytes written; the first {stream.cap} kept, "
                    f"{stream.dropped} dropped"))
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None


def _enable_subreaper() -> bool:
    """Make this process adopt orphans of its descendants, so a program
    that double-forks a daemon cannot escape teardown unnoticed."""
    return _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _first_child(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        kids = [str(p) for p in _children_of(pid)]
    return int(kids[0]) if kids else None


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The comm field may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


class Supervisor:
    """Owns every process of one scenario; stops them all, leaves nothing."""

    def __init__(self, transcript: Transcript | None = None,
                 output_cap: int = DEFAULT_OUTPUT_CAP,
                 limits: Limits | None = None,
                 env: dict[str, str] | None = None):
        self.transcript = transcript
        self.output_cap = output_cap
        self.limits = limits
        self.env = env
        self.processes: list[Process] = []
        self.subreaper = _enable_subreaper()

    def spawn(self, name: str, argv: Sequence[str], *, cwd: str | Path | None = None,
              env: dict[str, str] | None = None, pty: bool = False, stdin: bool = True,
              limits: Limits | None = None, sandbox: Sandbox | None = None,
              ignore_signals: Sequence[int] = (), stdout_file: Path | None = None) -> Process:
        """Start argv as `name`; stdin is a pipe (or a pty, or /dev/null).

        With `sandbox` (a program under test) it runs in that box, with a
        clean environment plus `env`, under `limits` or the box's own.
        Every signal starts at its default disposition, except those in
        `ignore_signals`, which start ignored (as `nohup` does for SIGHUP).
        `stdout_file`: stdout goes to this file instead of a pipe (read it
        after the end; its size is bounded by the file-size limit). A program
        writing to a pipe waits whenever the harness is slow to read it.
        """
        if stdout_file is not None and pty:
            raise ValueError("a program's stdout is its pty or a file, not both")
        argv = [str(a) for a in argv]
        limits = limits or self.limits
        confinement = None
        if sandbox is not None:
            limits = limits or sandbox.limits
            run_env = {**sandbox.prepare(), **(env or self.env or {})}
            argv, confinement = sandbox.wrap(argv, cwd, limits, ignore_signals)
            if confinement is not None:
                limits = None       # the helper applies them, after its own setup
        else:
            run_env = dict(os.environ if env is None and self.env is None else (env or self.env))
        stdin_fd = child_in = child_out = None
        if pty:
            master, slave = os.openpty()
            attrs = termios.tcgetattr(slave)
            # No echo of typed input into the output we read, and no \n -> \r\n.
            attrs[3] &= ~(termios.ECHO | termios.ECHONL)
            attrs[1] &= ~termios.OPOST
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            stdin_fd, child_in, child_out = master, slave, slave
            out_r = os.dup(master)
        else:
            if stdin:
                child_in, stdin_fd = os.pipe()
            else:
                child_in = os.open(os.devnull, os.O_RDONLY)
            if stdout_file is None:
                out_r, child_out = os.pipe()
            else:
                out_r = None
                child_out = os.open(stdout_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                                    0o600)
        err_r, child_err = os.pipe()

        def preexec() -> None:
            if pty:
                # Make the pty the controlling terminal of the new session.
                import fcntl
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # Python ignores SIGPIPE; a program started from a shell does not.
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            for sig in ignore_signals:
                signal.signal(sig, signal.SIG_IGN)
            if limits is not None:
                limits.apply()

        if self.transcript:
            self.transcript.add(name, "start", detail=" ".join(argv))
        try:
            with _spawn_lock:
                popen = subprocess.Popen(argv, stdin=child_in, stdout=child_out, stderr=child_err,
                                         cwd=cwd, env=run_env, start_new_session=True,
                                         preexec_fn=preexec, close_fds=True)
                _started.add(popen.pid)
        except OSError as e:
            for fd in {out_r, err_r, stdin_fd}:
                if fd is not None:
                    os.close(fd)
            if confinement is not None:
                confinement.release(None)
            raise ProcessError(f"cannot start {name} ({argv[0]}): {e.strerror}") from None
        finally:
            for fd in {child_in, child_out, child_err}:
                if fd is not None:
                    os.close(fd)
        tr = self.transcript
        out = Stream("stdout", self.output_cap,
                     (lambda d: tr.add(name, "stdout", d)) if tr else None)
        err = Stream("stderr", self.output_cap,
                     (lambda d: tr.add(name, "stderr", d)) if tr else None)
        if out_r is None:
            out.close()         # stdout went to stdout_file
        for fd, stream in ((out_r, out), (err_r, err)):
            if fd is not None:
                threading.Thread(target=_pump, args=(fd, stream), daemon=True,
                                 name=f"pump-{name}-{stream.name}").start()
        proc = Process(name, argv, popen, out, err, stdin_fd, pty, tr, confinement=confinement)
        self.processes.append(proc)
        return proc

    def run(self, name: str, argv: Sequence[str], timeout: float, **kw) -> Process:
        """Start argv with no stdin and wait for it (killed at the timeout)."""
        proc = self.spawn(name, argv, stdin=False, **kw)
        if proc.wait(timeout) is None:
            proc.stop(signal.SIGKILL, grace=0)
            proc.timed_out = True
        else:
            proc._finish()
        return proc

    def stop_all(self, grace: float = 3.0) -> list[str]:
        """Stop every process (newest first) and every orphan they left.

        Returns a description of each survivor that had to be killed after
        its own group was gone (daemons that escaped with setsid).
        """
        for proc in reversed(self.processes):
            if proc.alive():
                proc.stop(signal.SIGTERM, grace)
            else:
                proc.stop(signal.SIGKILL, 0)
        # In a sandbox the escapees died with its PID namespace; its report
        # says who they were.
        return [e for p in self.processes for e in p.escaped] + self.kill_orphans()

    def kill_orphans(self) -> list[str]:
        """Kill and reap processes re-parented to us (escaped daemons)."""
        if not self.subreaper:
            return []
        escaped = []
        for _ in range(50):
            with _spawn_lock:
                known = _started | {p.pid for p in self.processes}
                others = [pid for pid in _children_of(os.getpid()) if pid not in known]
            if not others:
                break
            for pid in others:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    cmd = "?"
                if cmd and f"{pid} {cmd}" not in escaped:
                    escaped.append(f"{pid} {cmd}")
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        return escaped

    def limits_hit(self) -> list[str]:
        """'<name> <finding>' for each sandbox limit a process ran into."""
        return [f"{p.name} {f}" for p in self.processes for f in p.findings()
                if not f.startswith("left ")]

    def survivors(self) -> list[int]:
        """Pids still alive in any group this supervisor started."""
        alive = []
        for proc in self.processes:
            try:
                os.killpg(proc.pid, 0)
                alive.append(proc.pid)
            except ProcessLookupError:
                pass
            except PermissionError:
                alive.append(proc.pid)
        return alive
