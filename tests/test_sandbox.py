"""The sandbox, judged from inside: what a program under test can see, use
and leave behind (harness/sandbox.py, harness/sandbox_exec.c).

Each test starts a small program (a shell, python3, ip) through the same
Supervisor.spawn a submission's programs go through, in a private network
namespace, and reads what it reports. Nothing here sends a packet anywhere.
"""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness import netns, sandbox
from harness.procs import Supervisor
from harness.sandbox import MiB, Limits, Sandbox

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sandbox.available(),
                                reason="the sandbox needs root: " + sandbox.mode_description())


def run(tmp_path, argv, limits=None, hidden=(), timeout=30.0, stdin=False, **spawn):
    box = Sandbox(tmp_path / "box", limits=limits or Limits(), hidden=list(hidden))
    box.box.mkdir(exist_ok=True)
    sup = Supervisor()
    with netns.private_namespace():
        proc = sup.run("probe", argv, timeout=timeout, sandbox=box, **spawn)
    sup.stop_all(grace=1)
    return proc


def sh(tmp_path, script, **kw):
    return run(tmp_path, ["/bin/sh", "-c", script], **kw)


def test_sees_only_loopback_and_no_route(tmp_path):
    proc = sh(tmp_path, "cat /proc/net/dev; echo ROUTES; cat /proc/net/route; echo ADDR; ip -o addr")
    out = proc.stdout.text()
    devs = [l.split(":")[0].strip() for l in out.split("ROUTES")[0].splitlines() if ":" in l]
    assert devs == ["lo"], out
    routes = out.split("ROUTES")[1].split("ADDR")[0].strip().splitlines()
    assert len(routes) == 1 and routes[0].startswith("Iface"), f"a route is visible: {routes}"
    addrs = [l.split()[1] for l in out.split("ADDR")[1].strip().splitlines()]
    assert set(addrs) == {"lo"}, out


def test_runs_unprivileged_with_a_private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATGRADE_TEST_SECRET", "do-not-leak")
    proc = sh(tmp_path, "id -u; id -G; echo HOME=$HOME; echo TMPDIR=$TMPDIR; env; hostname; "
              "touch $HOME/ok $TMPDIR/ok && echo WROTE")
    out = proc.stdout.text()
    assert proc.returncode == 0, proc.stderr.text()
    uid, groups = out.splitlines()[:2]
    assert sandbox.is_sandbox_uid(int(uid)) and groups == uid
    assert f"HOME={tmp_path / 'box'}" in out and "WROTE" in out
    assert "do-not-leak" not in out, "the grader's environment reached the program"
    assert "chatgrade" in out.splitlines()  # its own hostname (UTS namespace)


def test_cannot_see_grader_class_or_other_boxes(tmp_path):
    sibling = tmp_path / "class" / "other_student"
    sibling.mkdir(parents=True)
    (sibling / "server.c").write_text("SECRET-OF-ANOTHER-STUDENT")
    rubric = ROOT / "grading" / "rubrics" / "tcp_chat.toml"
    proc = sh(tmp_path, f"cat {sibling / 'server.c'}; cat {rubric}; "
              f"echo TMP $(ls -A /tmp); echo ROOTS $(ls -A /root /home {' '.join(map(str, sandbox.project_folders()))} "
              "| grep -v ':$'); "
              "echo PROCS $(ls /proc | grep -c '^[0-9]')", hidden=[tmp_path / "class"])
    out = proc.stdout.text() + proc.stderr.text()
    assert "SECRET-OF-ANOTHER-STUDENT" not in out
    assert "[[item]]" not in out, "the rubric was readable"
    lines = dict(l.split(" ", 1) if " " in l else (l, "") for l in proc.stdout.text().splitlines())
    # /tmp holds nothing but the way down to the box (tmp_path is under it).
    box_top = (tmp_path / "box").relative_to("/tmp").parts[0] if str(tmp_path).startswith("/tmp/") else ""
    assert lines["TMP"].split() == ([box_top] if box_top else []), lines["TMP"]
    assert lines["ROOTS"] == "", f"visible: {lines['ROOTS']}"
    # sh, the command substitution's shell and ls, plus init.
    assert int(lines["PROCS"]) <= 5, f"{lines['PROCS']} processes visible: the PID namespace leaks"


def test_grader_files_hidden_even_when_readable_by_all(tmp_path):
    mode = (ROOT / "README.md").stat().st_mode
    assert mode & 0o004, "the test needs a world-readable file of ours"
    proc = sh(tmp_path, f"cat {ROOT / 'README.md'} && echo READ")
    assert "READ" not in proc.stdout.text()


def test_daemon_that_escapes_its_session_dies_with_the_program(tmp_path):
    marker = "299.987"      # a sleep nobody else runs, to look for afterwards
    proc = sh(tmp_path, f"setsid sleep {marker} & sleep 0.2; exit 0")
    assert proc.returncode == 0
    assert any("left 1 process" in f for f in proc.findings()), proc.findings()
    assert "sleep" in proc.status()
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and
                 marker.encode() in _cmdline(p)]
    assert leftovers == [], "the escaped daemon is still running"


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_memory_limit_kills_and_says_so(tmp_path):
    proc = run(tmp_path, ["/usr/bin/python3", "-c", "b = b'x' * (400 << 20); print('survived')"],
               limits=Limits(memory=128 * MiB))
    assert "survived" not in proc.stdout.text()
    assert proc.returncode == -signal.SIGKILL
    assert "killed: over 128 MB of memory" in proc.status()


def test_process_limit_bounds_a_fork_bomb(tmp_path):
    # Bounded by itself too: 300 forks of a 20 s sleep at most.
    proc = sh(tmp_path, "i=0; while [ $i -lt 300 ]; do sleep 20 & i=$((i+1)); done 2>/dev/null; "
              "echo FORKED; exit 0", limits=Limits(processes=40), timeout=60)
    assert "hit the limit of 40 processes and threads" in proc.status(), proc.status()


def test_cpu_limit(tmp_path):
    proc = sh(tmp_path, "while :; do :; done", limits=Limits(cpu_seconds=1), timeout=30)
    assert proc.returncode == -signal.SIGXCPU
    assert "killed: over 1 s of CPU time" in proc.status()


def test_file_size_limit(tmp_path):
    proc = run(tmp_path, ["/usr/bin/head", "-c", str(4 * MiB), "/dev/zero"],
               limits=Limits(file_size=MiB))
    # Output to a pipe is not a file: it is captured (and capped) instead.
    assert proc.returncode == 0
    proc = run(tmp_path, ["/usr/bin/dd", "if=/dev/zero", f"of={tmp_path / 'box' / '.home' / 'big'}",
                          "bs=65536", "count=64"], limits=Limits(file_size=MiB))
    assert "wrote a file over 1 MB" in proc.status(), proc.status()


def test_status_and_signals_pass_through(tmp_path):
    assert sh(tmp_path, "exit 3").returncode == 3
    assert sh(tmp_path, "kill -SEGV $$").returncode == -signal.SIGSEGV
    box = Sandbox(tmp_path / "box2")
    box.box.mkdir()
    sup = Supervisor()
    with netns.private_namespace():
        # The program, not the sandbox, answers the harness's SIGTERM.
        p = sup.spawn("term", ["/bin/sh", "-c", "trap 'exit 7' TERM; echo ready; "
                               "while :; do sleep 0.05; done"], sandbox=box)
        assert p.stdout.wait_for(lambda d: b"ready" in d, time.monotonic() + 10)
        assert p.stop(signal.SIGTERM, grace=10) == 7
        q = sup.spawn("plain", ["/bin/sleep", "30"], sandbox=box)
        deadline = time.monotonic() + 10
        while q.program_pid is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the keeper forks init, which forks the program
        assert q.program_pid is not None and q.program_pid != q.pid
        # The same pid before and after its exec: wait for the exec.
        while not _cmdline(str(q.program_pid)).startswith(b"/bin/sleep") and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert _cmdline(str(q.program_pid)).startswith(b"/bin/sleep")
        assert q.stop(signal.SIGTERM, grace=10) == -signal.SIGTERM
    sup.stop_all()


def test_the_probes_do_see_through_without_a_sandbox(tmp_path):
    """The tests above can fail: the same probe outside the box reads our
    files and sees the machine's interfaces."""
    sup = Supervisor()
    proc = sup.run("probe", ["/bin/sh", "-c", f"cat {ROOT / 'README.md'} >/dev/null && echo READ; "
                                              "cat /proc/net/dev"], timeout=30)
    sup.stop_all()
    assert "READ" in proc.stdout.text()
    assert proc.findings() == []


def test_private_scratch_and_hidden_processes(tmp_path):
    proc = sh(tmp_path, "touch /tmp/a /dev/shm/b && echo SCRATCH; cat /proc/1/cmdline && echo INIT")
    assert "SCRATCH" in proc.stdout.text(), proc.stderr.text()
    # init's command line names every hidden folder: hidepid keeps it out.
    assert "INIT" not in proc.stdout.text()


def test_untrusted_reads_refuse_links_fifos_and_floods(tmp_path):
    (tmp_path / "real.xml").write_bytes(b"x" * 100)
    (tmp_path / "zero.xml").symlink_to("/dev/zero")
    (tmp_path / "secret.xml").symlink_to(ROOT / "README.md")
    os.mkfifo(tmp_path / "fifo.xml")
    assert sandbox.read_untrusted(tmp_path / "real.xml") == b"x" * 100
    assert sandbox.read_untrusted(tmp_path / "real.xml", cap=10) == b"x" * 10
    for name in ("zero.xml", "secret.xml", "fifo.xml", "missing.xml"):
        assert sandbox.read_untrusted(tmp_path / name) is None, name


def _build(tmp_path, files: dict[str, str], programs=("tcp_chat_server",)):
    from harness.build import build
    sub = tmp_path / "student"
    sub.mkdir(exist_ok=True)
    for name, text in files.items():
        (sub / name).write_text(text)
    work = tmp_path / "work"
    work.mkdir(mode=0o711)
    return build(sub, list(programs), work, timeout=60)


def test_build_cannot_plant_links_for_the_grader_to_follow(tmp_path):
    """A Makefile that leaves its program as a link to a file of ours, and
    replaces its build folder's parent's bin: neither is followed."""
    target = ROOT / "build" / "impl" / "tcp_chat_server"
    r = _build(tmp_path, {"Makefile": (
        "all:\n"
        f"\tln -sf {target} tcp_chat_server\n"
        # Where the programs are collected, in this layout and the one
        # before it (bin beside src): out of the box's sight either way.
        "\t-rm -rf ../bin ../../bin; mkdir -p ../bin ../../bin\n"
        "\t-ln -sf /etc/passwd ../bin/tcp_chat_server; ln -sf /etc/passwd ../../bin/tcp_chat_server\n")})
    assert r.programs["tcp_chat_server"] is None, "a link was taken as the program"
    assert not (tmp_path / "work" / "bin" / "tcp_chat_server").exists()
    assert not any(p.is_symlink() for p in (tmp_path / "work" / "bin").iterdir())


def test_build_gets_loopback_only_and_never_blocks_the_grader(tmp_path):
    files = {"tcp_chat_server.c": "int main(void) { return 0; }\n",
             "Makefile": "all:\n\tcat /proc/net/dev\n\tcc -o tcp_chat_server tcp_chat_server.c\n"}
    r = _build(tmp_path, files)
    devs = [l.split(":")[0].strip() for l in r.log.splitlines() if ":" in l and "|" not in l
            and l.strip().split(":")[0].strip().isidentifier()]
    assert "lo" in devs and set(devs) <= {"lo", "Inter-", "face"}, r.log
    # gcc mode reads each .c to find helpers: a link to /dev/zero or a FIFO
    # must not hang it or fill its memory.
    other = tmp_path / "g"
    (other / "student").mkdir(parents=True)
    (other / "student" / "x.c").symlink_to("/dev/zero")
    os.mkfifo(other / "student" / "y.c")
    r = _build(other, {"tcp_chat_server.c": "int main(void) { return 0; }\n"})
    # The grader came back; gcc itself, reading /dev/zero, ran into the box's
    # memory limit, and the log says so.
    assert r.system == "gcc" and "killed: over 2048 MB of memory" in r.log, r.log


def _ignored(status: str) -> set[int]:
    """The signals a /proc/PID/status text says are ignored."""
    mask = int(next(l for l in status.splitlines() if l.startswith("SigIgn:")).split()[1], 16)
    return {s for s in range(1, 65) if mask >> (s - 1) & 1}


@pytest.mark.parametrize("boxed", [True, False], ids=["sandboxed", "reference"])
def test_signals_start_at_default_unless_a_check_asks(tmp_path, boxed):
    """A program starts as from a shell: no signal ignored (the harness's
    Python ignores SIGPIPE, the helper ignores the group's signals), except
    what the check asked for (ignore_signals)."""
    def ignored(**kw):
        if boxed:
            proc = run(tmp_path, ["/bin/cat", "/proc/self/status"], **kw)
        else:
            proc = Supervisor().run("probe", ["/bin/cat", "/proc/self/status"], timeout=30, **kw)
        assert proc.returncode == 0, proc.stderr.text()
        return _ignored(proc.stdout.text())

    assert ignored() == set()
    assert ignored(ignore_signals=[signal.SIGPIPE]) == {signal.SIGPIPE}


def test_stdout_to_a_file_never_waits_for_the_harness(tmp_path):
    """stdout_file (the counter's runs): 8 MB, more than any pipe holds,
    written with nobody reading, all kept."""
    out = tmp_path / "stdout"
    proc = run(tmp_path, ["/bin/sh", "-c", "head -c 8388608 /dev/zero | tr '\\0' x; echo end >&2"],
               stdout_file=out)
    assert proc.returncode == 0 and not proc.timed_out, proc.stderr.text()
    data = out.read_bytes()
    assert len(data) == 8 << 20 and set(data) == {ord("x")}
    assert proc.stdout.data() == b"" and proc.stderr.text() == "end\n"
    with pytest.raises(ValueError):
        Supervisor().spawn("p", ["/bin/true"], pty=True, stdout_file=out)
