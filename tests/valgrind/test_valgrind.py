"""Tests of harness/valgrind.py against real valgrind runs of tiny C fixtures.

Each fixture is compiled with ``gcc -g -pthread`` at test time, once per
worker, into a temporary directory.  Every test uses its own tmp_path, so
the file runs under pytest-xdist (``-n 2``) as well as serially.  No sleeps:
where we must wait (the SIGKILL test) we wait for a condition, with a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when run without the repo's pytest.ini
    sys.path.insert(0, str(ROOT))

from harness import valgrind as vg  # noqa: E402
from harness.valgrind import Tool  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEADLINE_S = 120  # per valgrind run; a hang fails the test instead of the suite

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed"),
]


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """build("race") -> path of the compiled fixtures/race.c (cached)."""
    out = tmp_path_factory.mktemp("vg-bin")
    built: dict[str, Path] = {}

    def _build(name: str) -> Path:
        if name not in built:
            exe = out / name
            subprocess.run(
                ["gcc", "-g", "-O0", "-pthread", "-o", str(exe), str(FIXTURES / f"{name}.c")],
                check=True, capture_output=True, timeout=60)
            built[name] = exe
        return built[name]

    return _build


def line_of(name: str, marker: str) -> int:
    """The line number of the fixture line carrying /* MARKER */."""
    for n, line in enumerate((FIXTURES / f"{name}.c").read_text().splitlines(), 1):
        if f"/* {marker} */" in line:
            return n
    raise AssertionError(f"no {marker} in {name}.c")


def run(tool, exe, tmp_path, args=(), suppressions=None, extra=(), **kw):
    """Run EXE under TOOL to completion; (report, returncode)."""
    xml, log = tmp_path / f"{tool}.xml", tmp_path / f"{tool}.log"
    cmd = vg.valgrind_argv(tool, [exe, *args], xml, log, suppressions=suppressions, extra=extra)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=DEADLINE_S, cwd=tmp_path, **kw)
    report = vg.load_report(xml, log, tool)
    return report, proc.returncode


def at(frame):
    return (frame.file, frame.line) if frame else None


# ---------------------------------------------------------------- memcheck

def test_clean_program_has_no_findings(build, tmp_path):
    report, rc = run(Tool.MEMCHECK, build("clean"), tmp_path)
    assert rc == 0
    assert report.complete and report.tool == "memcheck" and report.protocol in (4, 5)
    assert report.errors == [] and report.leak_records == []
    assert report.leaks == vg.LeakSummary()
    assert report.open_fds == []
    assert report.fatal_signal is None and report.clean
    # valgrind's own log and XML files are seen, and set aside, not blamed
    ignored = {f.path for f in report.ignored_fds}
    assert str(tmp_path / "memcheck.log") in ignored


def test_definite_and_indirect_leaks_counted_and_attributed(build, tmp_path):
    report, rc = run(Tool.MEMCHECK, build("leaks"), tmp_path)
    assert rc == 3, "the program's own exit status is preserved"
    assert report.errors == []
    l = report.leaks
    # XML says "49 (16 direct, 33 indirect) bytes ... definitely lost": the
    # summary counts the 33 once, as indirect.
    assert (l.definitely_bytes, l.definitely_blocks) == (16, 1)
    assert (l.indirectly_bytes, l.indirectly_blocks) == (33, 1)
    assert (l.possibly_bytes, l.reachable_bytes, l.reachable_blocks) == (0, 7, 1)
    assert l.lost_bytes == 49 and not report.clean
    by_kind = {r.kind: r for r in report.leak_records}
    assert at(vg.attribute(by_kind["Leak_DefinitelyLost"], [FIXTURES])) == \
        ("leaks.c", line_of("leaks", "LEAK-DEFINITE"))
    assert at(vg.attribute(by_kind["Leak_IndirectlyLost"], [FIXTURES])) == \
        ("leaks.c", line_of("leaks", "LEAK-INDIRECT"))
    assert at(vg.attribute(by_kind["Leak_StillReachable"], [FIXTURES])) == \
        ("leaks.c", line_of("leaks", "STILL-REACHABLE"))
    # not the student's code: nothing to attribute
    assert vg.attribute(by_kind["Leak_DefinitelyLost"], [tmp_path]) is None
    text = vg.summarise(report, [FIXTURES])
    assert f"leaks.c:{line_of('leaks', 'LEAK-DEFINITE')} in lose" in text
    assert "definitely lost 16 B in 1 blocks" in text
    json.dumps(report.to_dict())


def test_invalid_read_attributed_with_excerpt(build, tmp_path):
    report, rc = run(Tool.MEMCHECK, build("invalid_read"), tmp_path)
    assert rc == 4
    assert [e.kind for e in report.errors] == ["InvalidRead"]
    err = report.errors[0]
    assert "Invalid read of size 4" in err.what
    assert err.auxwhat and "alloc'd" in err.auxwhat[0] and err.auxstacks
    line = line_of("invalid_read", "INVALID-READ")
    frame = vg.attribute(err, [FIXTURES])
    assert at(frame) == ("invalid_read.c", line) and frame.fn == "main"
    excerpt = vg.source_excerpt(frame, context=1)
    assert excerpt.splitlines()[1].startswith(f"> {line} |") and "a[4]" in excerpt
    assert len(excerpt.splitlines()) == 3
    d = report.to_dict()
    assert d["errors"][0]["stack"][0]["line"] == line and d["clean"] is False


def test_open_fds_reported_but_not_valgrinds_own_or_inherited(build, tmp_path):
    leaked_file = tmp_path / "left-open.txt"
    r, w = os.pipe()  # an fd the harness forgot to close: inherited, not a leak
    try:
        report, rc = run(Tool.MEMCHECK, build("open_fds"), tmp_path,
                         args=[leaked_file], pass_fds=(w,))
    finally:
        os.close(r)
        os.close(w)
    assert rc == 0
    assert report.errors == []
    assert [f.kind for f in report.open_fds] == ["file", "socket"]
    f, s = report.open_fds
    assert f.path == str(leaked_file) and not f.inherited
    assert "AF_INET socket" in s.description and "127.0.0.1" in s.description
    assert at(vg.attribute(f, [FIXTURES])) == ("open_fds.c", line_of("open_fds", "OPEN-FILE"))
    assert at(vg.attribute(s, [FIXTURES])) == ("open_fds.c", line_of("open_fds", "OPEN-SOCKET"))
    program_fds = {x.fd for x in report.open_fds}
    ignored = {x.fd: x for x in report.ignored_fds}
    log = str(tmp_path / "memcheck.log")
    assert all(x.path != log for x in report.open_fds)
    assert any(x.path == log for x in ignored.values()), "the log fd is seen and set aside"
    assert w in ignored and ignored[w].inherited
    assert not program_fds & set(ignored) and not report.clean
    assert "2 fd(s) open at exit" in vg.summarise(report)


def test_fd_stacks_from_a_text_log(build, tmp_path):
    """Without --xml, 3.19 writes the where-opened stacks into the text log."""
    log = tmp_path / "text.log"
    subprocess.run(["valgrind", "--track-fds=yes", f"--log-file={log}",
                    build("open_fds"), tmp_path / "f.txt"],
                   capture_output=True, timeout=DEADLINE_S, check=True)
    fds = [f for f in vg.parse_fd_log(log.read_text()) if not f.inherited]
    assert sorted(f.kind for f in fds) == ["file", "socket"]
    for f in fds:
        frame = vg.attribute(f, [FIXTURES])
        assert frame is not None and frame.file == "open_fds.c" and frame.fn == "main"


def test_fatal_signal_parsed_and_exit_status_kept(build, tmp_path):
    report, rc = run(Tool.MEMCHECK, build("segv"), tmp_path)
    assert rc == -signal.SIGSEGV
    assert report.fatal_signal is not None and report.fatal_signal.signame == "SIGSEGV"
    assert at(vg.attribute(report.fatal_signal, [FIXTURES])) == ("segv.c", line_of("segv", "SEGV"))
    assert [e.kind for e in report.errors] == ["InvalidWrite"]
    assert "fatal signal SIGSEGV" in vg.summarise(report, [FIXTURES])


def test_killed_program_gives_partial_report(build, tmp_path):
    xml, log = tmp_path / "k.xml", tmp_path / "k.log"
    cmd = vg.valgrind_argv(Tool.MEMCHECK, [build("blocked")], xml, log)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE_S
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            got = b""
            while b"\n" not in got:
                left = deadline - time.monotonic()
                assert left > 0, "fixture never said ready"
                if sel.select(timeout=left):
                    chunk = os.read(proc.stdout.fileno(), 100)
                    assert chunk, "fixture exited early"
                    got += chunk
        assert got.startswith(b"ready")
        # valgrind flushes each XML message whole before the program goes on,
        # so the error is in the file by now.
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    report = vg.load_report(xml, log, Tool.MEMCHECK)
    assert report.complete is False
    assert report.pid == proc.pid
    assert [e.kind for e in report.errors] == ["InvalidRead"]
    assert at(vg.attribute(report.errors[0], [FIXTURES])) == \
        ("blocked.c", line_of("blocked", "INVALID-READ"))
    assert "incomplete" in vg.summarise(report)


def test_every_truncation_parses(build, tmp_path):
    run(Tool.MEMCHECK, build("invalid_read"), tmp_path)
    text = (tmp_path / "memcheck.xml").read_text()
    end = text.rindex("</valgrindoutput>")
    for cut in range(0, end, 11):
        report = vg.parse_report(text[:cut])
        assert report.complete is False
        assert len(report.errors) <= 1
    assert vg.parse_report(text).complete
    garbage = text[: end // 2] + "\x00\x01<<&&>>" + "\ufffd" * 3
    assert vg.parse_report(garbage).complete is False
    assert vg.load_report(tmp_path / "missing.xml").complete is False


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("tool,kind", [(Tool.HELGRIND, "Race"), (Tool.DRD, "ConflictingAccess")])
def test_race_reported_and_attributed(build, tmp_path, tool, kind):
    report, rc = run(tool, build("race"), tmp_path)
    assert rc == 0 and report.complete and report.tool == tool.value
    assert report.errors and {e.kind for e in report.errors} == {kind}
    frames = {at(vg.attribute(e, [FIXTURES])) for e in report.errors}
    assert ("race.c", line_of("race", "RACE")) in frames
    assert "race.c:" in vg.summarise(report, [FIXTURES])


@pytest.mark.parametrize("tool", [Tool.HELGRIND, Tool.DRD])
def test_printf_under_mutex_is_clean(build, tmp_path, tool):
    report, rc = run(tool, build("printf_mutex"), tmp_path)
    assert rc == 0 and report.complete
    assert report.errors == [], vg.summarise(report, [FIXTURES])


@pytest.mark.parametrize("tool", [Tool.HELGRIND, Tool.DRD])
def test_our_suppressions_alone_cover_glibc(build, tmp_path, tool):
    """Without valgrind's default.supp, glibc's stdio and lock internals are
    reported for correct code; our files alone silence them, and a real race
    in user code still gets through."""
    nodefault = ["--default-suppressions=no"]
    (tmp_path / "bare").mkdir()
    bare, _ = run(tool, build("printf_mutex"), tmp_path / "bare", suppressions=[], extra=nodefault)
    assert bare.errors, "expected glibc-internal reports without any suppressions"
    ours, _ = run(tool, build("printf_mutex"), tmp_path, extra=nodefault)
    assert ours.errors == [], vg.summarise(ours)
    assert sum(ours.suppressed.get(n, 0) for n in ours.suppressed if n.startswith("chatgrade-")) > 0
    (tmp_path / "race").mkdir()
    racy, _ = run(tool, build("race"), tmp_path / "race", extra=nodefault)
    assert ("race.c", line_of("race", "RACE")) in {at(vg.attribute(e, [FIXTURES])) for e in racy.errors}


# ---------------------------------------------------------------- argv, protocol 5

def test_argv_shape():
    argv = vg.valgrind_argv("memcheck", ["./prog", "7000"], "r.xml", "r.log")
    assert argv[0] == "valgrind" and argv[-2:] == ["./prog", "7000"]
    for opt in ("--leak-check=full", "--show-leak-kinds=all", "--track-fds=yes",
                "--errors-for-leak-kinds=definite,indirect", "--xml=yes",
                "--child-silent-after-fork=yes", f"--xml-file={os.path.abspath('r.xml')}",
                f"--log-file={os.path.abspath('r.log')}"):
        assert opt in argv
    assert not any(a.startswith("--error-exitcode") for a in argv)
    for tool in (Tool.HELGRIND, Tool.DRD):
        argv = vg.valgrind_argv(tool, ["./p"], "x", "y", extra=["--foo"])
        supps = [a.split("=", 1)[1] for a in argv if a.startswith("--suppressions=")]
        assert supps and all(os.path.isabs(s) and os.path.isfile(s) for s in supps)
        assert "--track-fds=yes" not in argv and argv[-2:] == ["--foo", "./p"]
        assert vg.TIMEOUT_SCALE[tool] > vg.TIMEOUT_SCALE[Tool.MEMCHECK] > 1
    assert not any(a.startswith("--suppressions") for a in
                   vg.valgrind_argv(Tool.DRD, ["p"], "x", "y", suppressions=[]))


# HAND-WRITTEN sample, not captured from a real valgrind: composed from
# docs/internals/xml-output-protocol5.txt (protocol 5 = protocol 4 plus the
# core errors FdBadClose / FdNotClosed / FdBadUse with <fd> and optional
# <path>), in the shape 3.23+ uses for other errors.
PROTOCOL5_SAMPLE = """<?xml version="1.0"?>
<valgrindoutput>
<protocolversion>5</protocolversion>
<protocoltool>memcheck</protocoltool>
<pid>4242</pid>
<ppid>4241</ppid>
<tool>memcheck</tool>
<status><state>RUNNING</state><time>00:00:00:00.040 </time></status>
<error>
  <unique>0x0</unique>
  <tid>1</tid>
  <kind>FdBadClose</kind>
  <fd>5</fd>
  <what>File descriptor 5 already closed</what>
  <stack>
    <frame><ip>0x4955011</ip><obj>/usr/lib/libc.so.6</obj><fn>close</fn></frame>
    <frame><ip>0x1091DE</ip><obj>/srv/sub/tcp_chat_server</obj><fn>drop_client</fn>
      <dir>/srv/sub</dir><file>tcp_chat_server.c</file><line>88</line></frame>
  </stack>
  <auxwhat>Previously closed</auxwhat>
  <stack>
    <frame><ip>0x1091AA</ip><obj>/srv/sub/tcp_chat_server</obj><fn>broadcast</fn>
      <dir>/srv/sub</dir><file>tcp_chat_server.c</file><line>42</line></frame>
  </stack>
</error>
<status><state>FINISHED</state><time>00:00:00:01.000 </time></status>
<error>
  <unique>0x1</unique>
  <tid>1</tid>
  <kind>FdNotClosed</kind>
  <fd>6</fd>
  <path>/srv/sub/chat.log</path>
  <what>Open file descriptor 6: /srv/sub/chat.log</what>
  <stack>
    <frame><ip>0x4955011</ip><obj>/usr/lib/libc.so.6</obj><fn>open</fn></frame>
    <frame><ip>0x1091DE</ip><obj>/srv/sub/tcp_chat_server</obj><fn>main</fn>
      <dir>/srv/sub</dir><file>tcp_chat_server.c</file><line>12</line></frame>
  </stack>
</error>
<error>
  <unique>0x2</unique>
  <tid>1</tid>
  <kind>FdNotClosed</kind>
  <fd>7</fd>
  <what>Open AF_INET socket 7: 127.0.0.1:7000 &lt;-&gt; 127.0.0.1:51234</what>
  <stack>
    <frame><ip>0x4967DC7</ip><obj>/usr/lib/libc.so.6</obj><fn>accept</fn></frame>
    <frame><ip>0x109254</ip><obj>/srv/sub/tcp_chat_server</obj><fn>main</fn>
      <dir>/srv/sub</dir><file>tcp_chat_server.c</file><line>30</line></frame>
  </stack>
</error>
<error>
  <unique>0x3</unique>
  <tid>1</tid>
  <kind>FdNotClosed</kind>
  <fd>3</fd>
  <path>/tmp/run/memcheck.log</path>
  <what>Open file descriptor 3: /tmp/run/memcheck.log</what>
  <auxwhat>&lt;inherited from parent&gt;</auxwhat>
</error>
<error>
  <unique>0x4</unique>
  <tid>1</tid>
  <kind>FdNotClosed</kind>
  <fd>1</fd>
  <path>/dev/pts/0</path>
  <what>Open file descriptor 1: /dev/pts/0</what>
</error>
<error>
  <unique>0x5</unique>
  <tid>1</tid>
  <kind>Leak_DefinitelyLost</kind>
  <xwhat>
    <text>24 bytes in 3 blocks are definitely lost in loss record 1 of 1</text>
    <leakedbytes>24</leakedbytes>
    <leakedblocks>3</leakedblocks>
  </xwhat>
  <stack>
    <frame><ip>0x48417B4</ip><obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so</obj><fn>malloc</fn></frame>
  </stack>
</error>
<errorcounts>
  <pair><count>2</count><unique>0x0</unique></pair>
</errorcounts>
<suppcounts>
</suppcounts>
</valgrindoutput>
"""


def test_protocol5_hand_written_sample(tmp_path):
    src = tmp_path / "srv" / "sub"
    report = vg.parse_report(PROTOCOL5_SAMPLE, "", exclude_paths=["/tmp/run/memcheck.log"])
    assert report.protocol == 5 and report.complete and report.pid == 4242
    assert [e.kind for e in report.errors] == ["FdBadClose"]
    bad = report.errors[0]
    assert bad.fd == 5 and bad.count == 2 and bad.auxwhat == ["Previously closed"]
    assert [(f.fd, f.kind) for f in report.open_fds] == [(6, "file"), (7, "socket")]
    assert report.open_fds[0].path == "/srv/sub/chat.log"
    assert report.open_fds[1].path.startswith("127.0.0.1:7000")
    assert sorted(f.fd for f in report.ignored_fds) == [1, 3]
    assert (report.leaks.definitely_bytes, report.leaks.definitely_blocks) == (24, 3)
    # attribution needs the file to exist inside a source dir
    src.mkdir(parents=True)
    (src / "tcp_chat_server.c").write_text("".join(f"line {n}\n" for n in range(1, 100)))
    rebased = vg.parse_report(PROTOCOL5_SAMPLE.replace("/srv/sub", str(src)))
    frame = vg.attribute(rebased.errors[0], [src])
    assert (frame.file, frame.line, frame.fn) == ("tcp_chat_server.c", 88, "drop_client")
    assert "> 88 | line 88" in vg.source_excerpt(frame)
    assert "tcp_chat_server.c:88 in drop_client" in vg.summarise(rebased, [src])
    assert at(vg.attribute(rebased.open_fds[1], [src])) == ("tcp_chat_server.c", 30)
    json.dumps(rebased.to_dict())


def test_attribution_ignores_library_file_of_the_same_name(tmp_path):
    """glibc's printf.c (compiled in ./stdio-common) is not the student's printf.c."""
    (tmp_path / "printf.c").write_text("int x;\n" * 40)
    err = vg.Error(kind="Race", what="", stack=[
        vg.Frame(fn="printf", file="printf.c", line=33, dir="./stdio-common",
                 obj="/usr/lib/x86_64-linux-gnu/libc.so.6"),
        vg.Frame(fn="worker", file="printf.c", line=7, dir=str(tmp_path)),
    ])
    assert at(vg.attribute(err, [tmp_path])) == ("printf.c", 7)
    no_dir = vg.Error(kind="Race", what="", stack=[vg.Frame(fn="worker", file="printf.c", line=9)])
    assert at(vg.attribute(no_dir, [tmp_path])) == ("printf.c", 9)
