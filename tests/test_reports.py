"""The report writers: every format, for a passing grade, a failing one
(hostile bytes in the transcript, a valgrind leak) and a failed build.

The HTML is also rendered in headless Chromium (a screenshot and the DOM),
so a page that only parses but does not draw is caught."""

from __future__ import annotations

import copy
import html.parser
import json
import os
import signal
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from grading.chatgrade import model
from grading.chatgrade.reports import (gradescope, html as html_report, junit, markdown, safe_line,
                                       terminal, write_atomic)
from harness.transcript import Event
from harness.valgrind import Error, Frame, LeakSummary, OpenFd, Report

HOSTILE = b"<script>alert('x')</script> & \x00\x01\x1b[31m\xff\xfe bye\r\n"
CHROMIUM = "/usr/bin/chromium"


# --------------------------------------------------------------------------
# Sample grades, shaped as grading/chatgrade/model.py says
# --------------------------------------------------------------------------

def _check(name: str, outcome: str = "passed", **extra) -> dict:
    return {"nodeid": f"scenarios/chat/{name.replace(' ', '_')}.scn::x[tcp_chat]", "name": name,
            "outcome": outcome, "duration": 0.25, "failure": None, "transcript": [],
            "valgrind": None, "source": [], **extra}


def _item(id_: str, category: str, max_score: float, status: str = "passed",
          score: float | None = None, **extra) -> dict:
    return {"id": id_, "name": f"the rule {id_} holds", "category": category,
            "score": max_score if score is None else score, "max_score": max_score,
            "status": status, "output": "", "deductions": [], "checks": [_check(f"{id_} check")], **extra}


def _grade(items: list[dict], **extra) -> dict:
    g = {"version": model.VERSION, "submission": "alice", "path": "/srv/alice",
         "assignment": "tcp_chat", "title": "Threaded TCP chat", "status": "graded",
         "score": round(sum(i["score"] for i in items), 2),
         "max_score": round(sum(i["max_score"] for i in items), 2),
         "started": "2026-11-27T01:40:00+00:00", "execution_time": 31.2,
         "notes": ["isolation: network namespace per scenario"],
         "build": {"ok": True, "system": "make", "log": "gcc -Wall -o tcp_chat_server server.c\n",
                   "warnings": [], "programs": {"tcp_chat_server": True, "tcp_chat_client": True},
                   "duration": 2.1},
         "categories": model.categories(items), "items": items}
    g.update(extra)
    return g


def _transcript(extra_lines: int = 0) -> list[dict]:
    """A relay scenario's timeline in which client b receives hostile bytes."""
    evs = [Event(0.001, "server", "start", detail="tcp_chat_server 0"),
           Event(0.004, "harness", "note", detail="server listening on port 40000")]
    t = 0.01
    for name in ("a", "b", "c"):
        t += 0.002
        evs.append(Event(t, name, "connect", detail=f"from port {41000 + ord(name)} to 40000"))
    evs.append(Event(t + 0.001, "script", "step", detail="line 3: a says hello"))
    evs.append(Event(t + 0.002, "a", "send", b"hello everyone, this is a fairly long line of chat\n"))
    evs.append(Event(t + 0.003, "c", "recv", b"hello everyone, this is a fairly long line of chat\n"))
    t += 0.003
    for n in range(extra_lines):
        t += 0.001
        evs.append(Event(t, "a", "send", f"line {n}\n".encode()))
        evs.append(Event(t + 0.0005, "c", "recv", f"line {n}\n".encode()))
    t += 0.01
    evs.append(Event(t, "script", "step", detail="line 5: b receives \"hello\""))
    evs.append(Event(t + 0.001, "b", "recv", HOSTILE))
    evs.append(Event(t + 0.002, "server", "stderr", b"warning: <client 5> & friends\n"))
    evs.append(Event(t + 0.003, "b", "close", detail="closed by the server"))
    evs.append(Event(t + 0.004, "server", "exit", detail="status 0"))
    return [e.to_dict() for e in evs]


def _leak_report() -> dict:
    own = Frame(fn="handle_client", file="server.c", line=42, dir="/srv/alice")
    malloc = Frame(fn="malloc", file="vg_replace_malloc.c", line=381, obj="/usr/libexec/valgrind/x.so")
    rep = Report(
        tool="memcheck", complete=True,
        leaks=LeakSummary(definitely_bytes=48, definitely_blocks=1),
        leak_records=[Error(kind="Leak_DefinitelyLost",
                            what="48 bytes in 1 blocks are definitely lost in loss record 3 of 9",
                            stack=[malloc, own], leaked_bytes=48, leaked_blocks=1)],
        open_fds=[OpenFd(fd=5, description="Open AF_INET socket 5: 127.0.0.1:40000 <-> 127.0.0.1:41097",
                         kind="socket", stack=[Frame(fn="accept", obj="/lib/libc.so.6"),
                                               Frame(fn="main", file="server.c", line=88)])])
    return rep.to_dict()


def passing_grade() -> dict:
    items = [_item("build", "build", 5), _item("relay", "relay", 6), _item("no-echo", "relay", 4),
             _item("quit", "lifecycle", 5)]
    return _grade(items)


def failing_grade(extra_lines: int = 0) -> dict:
    relay = _item("relay", "relay", 6, "failed", 0,
                  output="client b did not receive a's line <hello> & got bytes instead")
    relay["checks"] = [_check("a message reaches every other member", "passed"),
                       _check("b gets the line", "failed",
                              failure={"step": "line 5: b receives \"hello\"\n  (every member gets it)",
                                       "expected": "hello everyone, this is a fairly long line of chat\n",
                                       "actual": HOSTILE.decode("utf-8", "backslashreplace"),
                                       "hint": "relay whole lines: keep reading until '\\n' <before> writing"},
                              transcript=_transcript(extra_lines))]
    leak = _item("memcheck", "memory", 10, "passed", 7,
                 deductions=[{"reason": "definitely lost 48 B", "points": 3.0}],
                 output="valgrind found a leak")
    leak["checks"] = [_check("the server under memcheck", "passed", valgrind=_leak_report(),
                             source=[{"file": "server.c", "line": 42, "fn": "handle_client",
                                      "what": "48 bytes definitely lost",
                                      "excerpt": "  41 |     char *buf =\n> 42 |     buf = malloc(48); /* <leak> */\n"
                                                 "  43 |     if (n < 0 && x > 1) return;"}])]
    items = [_item("build", "build", 5, "passed", 4.5,
                   deductions=[{"reason": "1 compiler warning(s)", "points": 0.5}]),
             relay, _item("no-echo", "relay", 4),
             _item("quit", "lifecycle", 5, "skipped", 0, output="skipped: the client was not built"),
             leak]
    g = _grade(items, execution_time=12.6)
    g["build"]["warnings"] = ["server.c:12:5: warning: unused variable 'n' [-Wunused-variable]"]
    g["build"]["log"] += "server.c:12:5: warning: unused variable 'n' [-Wunused-variable]\n"
    return g


def build_failed_grade() -> dict:
    skipped = "skipped: tcp_chat_server was not built (see the build log)"
    items = [_item("build", "build", 5, "failed", 0, output="built with make: tcp_chat_server MISSING")]
    items[0]["checks"] = []
    items += [_item(i, c, p, "skipped", 0, output=skipped, checks=[])
              for i, c, p in (("relay", "relay", 6), ("no-echo", "relay", 4), ("quit", "lifecycle", 5))]
    g = _grade(items, status="build_failed")
    g["build"].update(ok=False, programs={"tcp_chat_server": False, "tcp_chat_client": False},
                      log="server.c:3:10: fatal error: pthread.hh: No such file or directory\n"
                          "    3 | #include <pthread.hh>\ncompilation terminated.\n")
    return g


GRADES = {"passing": passing_grade, "failing": failing_grade, "build_failed": build_failed_grade}


@pytest.fixture(params=sorted(GRADES))
def grade(request) -> dict:
    return GRADES[request.param]()


# --------------------------------------------------------------------------
# Gradescope
# --------------------------------------------------------------------------

def test_results_json_schema(grade):
    r = gradescope.to_results_json(grade)
    json.loads(json.dumps(r))
    assert isinstance(r["score"], float) and isinstance(r["max_score"], float)
    assert isinstance(r["execution_time"], int) and isinstance(r["output"], str)
    assert r["stdout_visibility"] == "visible"
    assert r["tests"], "at least one test"
    for t in r["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output", "tags", "visibility"}
        assert t["status"] in ("passed", "failed") and t["visibility"] == "visible"
        assert isinstance(t["name"], str) and isinstance(t["output"], str) and isinstance(t["tags"], list)
        assert isinstance(t["score"], float) and t["score"] <= t["max_score"]
    assert sum(t["score"] for t in r["tests"]) == pytest.approx(r["score"])
    assert sum(t["max_score"] for t in r["tests"]) == pytest.approx(r["max_score"])
    assert len(r["tests"]) >= len(grade["items"])


def test_results_json_failure_output():
    r = gradescope.to_results_json(failing_grade())
    relay = next(t for t in r["tests"] if t["name"].startswith("relay:"))
    assert relay["status"] == "failed" and relay["tags"] == ["relay"]
    out = relay["output"]
    assert "Expected: hello everyone" in out and "Actual: <script>" in out and "Hint:" in out and "Transcript" in out
    assert "\x00" not in out and "\x1b" not in out and "\\x00" in out and "\\xff" in out
    memcheck = next(t for t in r["tests"] if t["name"].startswith("memcheck:"))
    assert memcheck["status"] == "passed" and memcheck["score"] == 7.0
    assert "Leak_DefinitelyLost" in memcheck["output"] and "server.c:42 in handle_client" in memcheck["output"]
    assert "Compiler warnings: 1" in r["output"] and "memory" in r["output"]


def test_results_json_build_failed_lists_everything_with_the_reason():
    r = gradescope.to_results_json(build_failed_grade())
    assert r["score"] == 0 and all(t["score"] == 0 and t["status"] == "failed" for t in r["tests"])
    build = r["tests"][0]
    assert "fatal error: pthread.hh" in build["output"] and "build failed" in build["output"].lower()
    assert all("was not built" in t["output"] for t in r["tests"][1:])


def test_results_json_without_a_build_item_adds_one():
    g = build_failed_grade()
    g["items"] = g["items"][1:]
    g["max_score"] = 20.0
    r = gradescope.to_results_json(g)
    assert r["tests"][0]["name"] == "Build" and "pthread.hh" in r["tests"][0]["output"]
    assert sum(t["max_score"] for t in r["tests"]) == pytest.approx(20.0)


# --------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------

def test_junit_parses_and_carries_points(grade):
    root = ET.fromstring(junit.to_junit_xml(grade).encode())
    suite = root.find("testsuite")
    assert suite.get("name") == "alice/tcp_chat"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert float(props["score"]) == grade["score"] and float(props["max_score"]) == grade["max_score"]
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == len(grade["items"])
    for case, item in zip(cases, grade["items"]):
        assert case.get("classname") == item["category"]
        p = {x.get("name"): float(x.get("value")) for x in case.find("properties")}
        assert p == {"score": item["score"], "max_score": item["max_score"]}
        assert (case.find("failure") is not None) == (item["status"] == "failed")
        assert (case.find("skipped") is not None) == (item["status"] == "skipped")
    assert int(suite.get("failures")) == sum(i["status"] == "failed" for i in grade["items"])


def test_junit_survives_any_bytes():
    g = failing_grade()
    g["items"][1]["output"] = "".join(map(chr, range(0, 0x20))) + "\ud800\ufffe<&>"
    g["items"][1]["name"] = "nul\x00 in a name"
    text = junit.to_junit_xml(g)
    root = ET.fromstring(text.encode())
    failure = root.find(".//testcase[@classname='relay']/failure")
    assert "\\x00" in failure.text and "<script>" in failure.text and "&" in failure.text
    assert "b gets the line" in failure.text and "line 5" in failure.text


# --------------------------------------------------------------------------
# Markdown and terminal
# --------------------------------------------------------------------------

def test_markdown_shows_the_failure():
    md = markdown.to_markdown(failing_grade())
    assert md.startswith("# chatgrade: alice: tcp_chat")
    assert "**Score: 15.5 / 30**" in md
    assert "| relay | 4 | 10 |" in md and "| 2 | FAIL | relay: the rule relay holds | relay | 0/6 |" in md
    assert "**Expected**" in md and "hello everyone, this is a fairly long line of chat" in md
    assert "**Actual**" in md and "\\x00\\x01\\x1b[31m\\xff\\xfe bye\\r" in md
    assert "\x1b" not in md and "\x00" not in md
    assert "**Transcript**" in md and "unused variable 'n'" in md
    assert "Leak_DefinitelyLost" in md and "buf = malloc(48)" in md
    assert "SKIP" in md and "the client was not built" in md
    assert "line \\<hello\\> \\& got bytes" in md     # prose: no raw tag for a PR comment to hide


def test_output_that_restates_the_failure_is_not_repeated():
    g = failing_grade()
    relay = g["items"][1]
    f = relay["checks"][1]["failure"]
    relay["output"] = "\n".join(f"{k}: {v}" for k, v in f.items())   # as grade.py writes it
    relay["checks"].append(copy.deepcopy(relay["checks"][1]))
    relay["checks"][-1]["name"] = "b gets the line again"
    md = markdown.to_markdown(g)
    assert md.count("relay whole lines") == 1 and "2 checks failed:" in md and "- b gets the line again" in md
    assert html_report.to_html(g).count("relay whole lines") == 1
    assert gradescope.to_results_json(g)["tests"][1]["output"].count("relay whole lines") == 1
    assert junit.to_junit_xml(g).count("relay whole lines") == 1


def test_markdown_build_failed_and_passing():
    md = markdown.to_markdown(build_failed_grade())
    assert "## Build log" in md and "pthread.hh" in md and "build failed" in md.lower()
    md = markdown.to_markdown(passing_grade())
    assert "FAIL" not in md and "## Lost points" not in md and "**Score: 20 / 20**" in md


def test_fence_outgrows_backticks():
    assert markdown.fence("a ```` b").startswith("`````\n")


def test_terminal_lines_and_colour(monkeypatch):
    check = _check("relay \x1b[2J works", "failed", duration=1.234)
    assert terminal.check_line(check, color=False) == "FAIL  relay \\x1b[2J works (1.23s)"
    assert "\x1b[31mFAIL" in terminal.check_line(check, color=True)

    class Tty:
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert terminal.use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not terminal.use_color(Tty())
    assert "\x1b" not in terminal.check_line(check)        # NO_COLOR set: never colour
    monkeypatch.delenv("NO_COLOR")
    assert not terminal.use_color(open(os.devnull, "w"))


def test_terminal_summary_table():
    table = terminal.summary_table(failing_grade(), color=False)
    assert "\x1b" not in table
    lines = table.splitlines()
    assert any(line.split()[:4] == ["relay", "4", "/", "10"] for line in lines)
    assert any(line.split()[:4] == ["Total", "15.5", "/", "30"] for line in lines)
    assert any("FAIL relay (0/6): expected hello everyone, this is" in line and "got <script>" in line
               for line in lines)
    assert any("-PTS memcheck (7/10): -3: definitely lost 48 B" in line for line in lines)
    assert "Lost points" not in terminal.summary_table(passing_grade(), color=False)


def test_safe_line_shortens_in_the_middle():
    s = safe_line("x" * 100 + "\n", 20)
    assert len(s) == 20 and s.endswith("\\n") and "..." in s


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Walker(html.parser.HTMLParser):
    """Checks that every element is closed, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def walk(page: str) -> _Walker:
    w = _Walker()
    w.feed(page)
    w.close()
    assert not w.stack, f"unclosed: {w.stack}"
    return w


def test_html_is_well_formed_and_escaped(grade):
    page = html_report.to_html(grade)
    w = walk(page)
    assert "script" not in w.tags and "link" not in w.tags and "img" not in w.tags
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert 'id="summary"' in page and "\x00" not in page and "\x1b" not in page
    if grade["status"] == "build_failed":
        assert "pthread.hh" in page and "The build failed" in page


def test_html_failure_has_timeline_and_valgrind():
    page = html_report.to_html(failing_grade())
    w = walk(page)
    assert w.tags.count("svg") == 1
    assert "<script>" not in page and "&lt;script&gt;alert(" in page
    text = "".join(w.text)
    assert "Expected" in text and "Actual" in text and "relay whole lines" in text
    assert "FAILED AT" in text                       # the failing step is marked
    assert "server.c:42 in handle_client" in text and "buf = malloc(48);" in text
    assert "unused variable" in text


def test_html_timeline_caps_events():
    page = html_report.to_html(failing_grade(extra_lines=300))
    w = walk(page)
    text = "".join(w.text)
    shown, total = html_report.MAX_EVENTS, len(failing_grade(extra_lines=300)["items"][1]["checks"][1]["transcript"])
    assert f"{total - shown} earlier events are left out" in text
    assert f"{total - shown} earlier events not shown" in text
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count("<g>") == shown


def test_timeline_lanes():
    many = [Event(i * 0.01, f"client{i}", "send", b"hi\n").to_dict() for i in range(20)]
    svg = html_report.timeline_svg([Event(0, "server", "start").to_dict()] + many)
    assert ">server<" in svg and "14 others" in svg and "client19: " in svg


def test_write_atomic(tmp_path):
    path = tmp_path / "report.html"
    write_atomic(path, "one")
    write_atomic(path, "two \u00e9")
    assert path.read_text(encoding="utf-8") == "two \u00e9"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------
# Chromium: the page draws
# --------------------------------------------------------------------------

def _chromium(args: list[str], profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish in {timeout}s: {' '.join(cmd)}")
    finally:
        try:                        # its helpers (zygote, renderers) must not outlive it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def png_size_and_colours(path: Path, rows: int = 600) -> tuple[int, int, int]:
    """Width, height, and the number of distinct colours in the top ROWS rows
    of an 8-bit RGB/RGBA PNG (stdlib only: inflate and unfilter)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, [], 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat.append(body)
        pos += 12 + length
    stride = width * bpp
    raw = zlib.decompressobj().decompress(b"".join(idat), (stride + 1) * rows)
    prev, colours = bytearray(stride), set()
    for r in range(min(rows, len(raw) // (stride + 1))):
        ftype, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 7))
        prev = line
    return width, height, len(colours)


def test_html_renders_in_chromium(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the HTML report is checked in headless Chromium. "
                    "Install it with `apt-get install chromium` (scripts/setup.sh does).")
    page = tmp_path / "report.html"
    write_atomic(page, html_report.to_html(failing_grade()))
    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                  Path(tempfile.mkdtemp(dir=tmp_path, prefix="profile-")))
    assert shot.exists(), f"no screenshot (exit {r.returncode}): {r.stderr[-2000:]}"
    assert shot.stat().st_size > 20000, "the screenshot is nearly empty"
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (1200, 2000)
    assert colours >= 8, f"the page drew only {colours} colour(s)"
    r = _chromium(["--dump-dom", page.as_uri()], Path(tempfile.mkdtemp(dir=tmp_path, prefix="profile-")))
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert 'id="summary"' in dom and "15.5" in dom and "<svg" in dom
    assert "<script>" not in dom and "&lt;script&gt;" in dom


def test_the_same_valgrind_finding_is_shown_once():
    g = failing_grade()
    leak = g["items"][4]
    leak["checks"].append({**copy.deepcopy(leak["checks"][0]), "name": "the server under memcheck, SIGTERM"})
    assert markdown.to_markdown(g).count("**Valgrind**") == 1
    assert html_report.to_html(g).count("Valgrind (memcheck)") == 1
