"""Run a program under valgrind (memcheck, helgrind, DRD) and read its report.

Self-contained: no import from the rest of the harness.  The caller spawns
the process (harness/procs.py does that); this module builds the command
prefix, parses what valgrind wrote, and points each error at the student's
own source line.

What valgrind writes, and where:

- XML (``--xml-file``): errors, leak records, fatal signal, status.  Protocol
  4 (valgrind <= 3.22) or 5 (3.23+, adds the core errors FdNotClosed,
  FdBadClose, FdBadUse when ``--track-fds`` is on).
- Text (``--log-file``): under protocol 4 the ``FILE DESCRIPTORS: N open (M
  std) at exit.`` list is NOT in the XML, only in the text log; and the
  "where opened" stacks of those fds land in the XML as bare top-level
  ``<stack>`` elements, in the same order as the non-inherited log entries
  (measured with 3.19.0).  We pair them back up.

We judge from the report, never from valgrind's exit status: no
``--error-exitcode``, so the program's own exit status is preserved.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]


class Tool(str, enum.Enum):
    MEMCHECK = "memcheck"
    HELGRIND = "helgrind"
    DRD = "drd"

    def __str__(self) -> str:
        return self.value


# Deadline multipliers for callers: a scenario that needs 2 s natively gets
# 2 * TIMEOUT_SCALE[tool] under valgrind. The thread checkers serialise all
# threads and instrument every access, hence the larger factor. The chat
# references pass their valgrind scenarios well within these; a failing
# submission waits out every scaled deadline, so larger factors only cost
# the grading of a class minutes.
TIMEOUT_SCALE: dict[Tool, float] = {
    Tool.MEMCHECK: 5.0,
    Tool.HELGRIND: 10.0,
    Tool.DRD: 10.0,
}

SUPPRESSIONS_DIR = Path(__file__).resolve().parent / "suppressions"

# Error kinds, for callers that classify (not exhaustive: unknown kinds are
# kept verbatim).
MEMCHECK_LEAK_KINDS = (
    "Leak_DefinitelyLost",
    "Leak_IndirectlyLost",
    "Leak_PossiblyLost",
    "Leak_StillReachable",
)
HELGRIND_KINDS = (
    "Race", "UnlockUnlocked", "UnlockForeign", "UnlockBogus", "PthAPIerror",
    "LockOrder", "Misc",
)
DRD_KINDS = (
    "ConflictingAccess", "MutexErr", "CondErr", "CondDestrErr", "CondRaceErr",
    "CondWaitErr", "SemaphoreErr", "BarrierErr", "RwlockErr", "HoldtimeErr",
    "GenericErr", "InvalidThreadId", "UnimpHgClReq", "UnimpDrdClReq",
)
FD_KINDS = ("FdNotClosed", "FdBadClose", "FdBadUse")  # protocol 5 core errors
STD_FDS = frozenset({0, 1, 2})


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def default_suppressions(tool: Union[Tool, str]) -> list[Path]:
    """Our suppression files for TOOL (``<tool>-*.supp``), sorted."""
    tool = Tool(tool)
    return sorted(SUPPRESSIONS_DIR.glob(f"{tool.value}-*.supp"))


def valgrind_argv(
    tool: Union[Tool, str],
    argv: Sequence[PathLike],
    xml_path: PathLike,
    log_path: PathLike,
    suppressions: Optional[Iterable[PathLike]] = None,
    extra: Sequence[str] = (),
    valgrind: str = "valgrind",
) -> list[str]:
    """The full command: valgrind, its options, then ARGV.

    SUPPRESSIONS None means our files for the tool (default_suppressions);
    pass [] for none beyond valgrind's own default.supp.  EXTRA options go
    last before ARGV, so they can override ours.  Paths are made absolute:
    valgrind resolves them against the program's cwd, which may differ.
    """
    tool = Tool(tool)
    if suppressions is None:
        suppressions = default_suppressions(tool)
    cmd = [
        valgrind,
        f"--tool={tool.value}",
        "--xml=yes",
        f"--xml-file={os.path.abspath(xml_path)}",
        f"--log-file={os.path.abspath(log_path)}",
        "--child-silent-after-fork=yes",
        "--num-callers=30",
    ]
    if tool is Tool.MEMCHECK:
        cmd += [
            "--leak-check=full",
            "--show-leak-kinds=all",
            "--errors-for-leak-kinds=definite,indirect",
            "--track-fds=yes",
        ]
    elif tool is Tool.HELGRIND:
        cmd += ["--history-level=full"]
    cmd += [f"--suppressions={os.path.abspath(s)}" for s in suppressions]
    cmd += list(extra)
    cmd += [os.fspath(a) for a in argv]
    return cmd


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

@dataclass
class Frame:
    fn: Optional[str] = None
    file: Optional[str] = None
    line: Optional[int] = None
    obj: Optional[str] = None
    dir: Optional[str] = None
    ip: Optional[str] = None

    @property
    def path(self) -> Optional[str]:
        """dir/file when both are known, else file."""
        if self.file and self.dir:
            return os.path.join(self.dir, self.file)
        return self.file

    def location(self) -> str:
        """``file.c:42 in fn``, or the object when there is no debug info."""
        where = f"{self.file}:{self.line}" if self.file else (self.obj or self.ip or "?")
        return f"{where} in {self.fn}" if self.fn else where


Stack = list[Frame]


@dataclass
class Error:
    kind: str
    what: str
    stack: Stack = field(default_factory=list)
    auxwhat: list[str] = field(default_factory=list)
    auxstacks: list[Stack] = field(default_factory=list)
    count: int = 1
    unique: Optional[str] = None
    tid: Optional[int] = None
    leaked_bytes: Optional[int] = None   # leak records: direct bytes only
    leaked_blocks: Optional[int] = None
    fd: Optional[int] = None             # protocol 5 fd errors
    path: Optional[str] = None

    @property
    def is_leak(self) -> bool:
        return self.kind.startswith("Leak_")


@dataclass
class LeakSummary:
    definitely_bytes: int = 0
    definitely_blocks: int = 0
    indirectly_bytes: int = 0
    indirectly_blocks: int = 0
    possibly_bytes: int = 0
    possibly_blocks: int = 0
    reachable_bytes: int = 0
    reachable_blocks: int = 0

    @property
    def lost_bytes(self) -> int:
        """What the handout forbids: definitely plus indirectly lost."""
        return self.definitely_bytes + self.indirectly_bytes


_LEAK_FIELDS = {
    "Leak_DefinitelyLost": "definitely",
    "Leak_IndirectlyLost": "indirectly",
    "Leak_PossiblyLost": "possibly",
    "Leak_StillReachable": "reachable",
}


@dataclass
class OpenFd:
    fd: int
    description: str           # valgrind's line, e.g. "Open AF_INET socket 5: ..."
    path: Optional[str] = None  # file path, or socket address text
    kind: str = "file"          # file | socket | unknown
    inherited: bool = False
    stack: Stack = field(default_factory=list)  # where opened

    # attribute() accepts anything with .stack and .auxstacks
    @property
    def auxstacks(self) -> list[Stack]:
        return []


@dataclass
class FatalSignal:
    signo: Optional[int] = None
    signame: Optional[str] = None
    sicode: Optional[int] = None
    event: Optional[str] = None
    siaddr: Optional[str] = None
    tid: Optional[int] = None
    stack: Stack = field(default_factory=list)

    @property
    def auxstacks(self) -> list[Stack]:
        return []


@dataclass
class Report:
    tool: str
    errors: list[Error] = field(default_factory=list)        # not leaks, not open fds
    leaks: LeakSummary = field(default_factory=LeakSummary)
    leak_records: list[Error] = field(default_factory=list)  # one per loss record
    open_fds: list[OpenFd] = field(default_factory=list)     # the program's own, at exit
    ignored_fds: list[OpenFd] = field(default_factory=list)  # std, inherited, valgrind's own
    fatal_signal: Optional[FatalSignal] = None
    pid: Optional[int] = None
    ppid: Optional[int] = None
    protocol: Optional[int] = None
    complete: bool = False
    suppressed: dict[str, int] = field(default_factory=dict)  # supp name -> count

    @property
    def clean(self) -> bool:
        """No errors, nothing definitely/indirectly lost, no fd left open, no crash."""
        return (not self.errors and self.leaks.lost_bytes == 0
                and not self.open_fds and self.fatal_signal is None)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["clean"] = self.clean
        d["leaks"]["lost_bytes"] = self.leaks.lost_bytes
        return d


# --------------------------------------------------------------------------
# XML parsing
# --------------------------------------------------------------------------

# Characters XML 1.0 forbids; a program's argv can put them in <arg>.
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DIRECT = re.compile(r"\((\d[\d,]*) direct, (\d[\d,]*) indirect\)")


def _int(text: Optional[str], base: int = 10) -> Optional[int]:
    if text is None:
        return None
    try:
        return int(text.strip().replace(",", ""), base)
    except ValueError:
        return None


def _text(el: ET.Element, tag: str) -> Optional[str]:
    child = el.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _stack(el: ET.Element) -> Stack:
    return [
        Frame(fn=_text(f, "fn"), file=_text(f, "file"), line=_int(_text(f, "line")),
              obj=_text(f, "obj"), dir=_text(f, "dir"), ip=_text(f, "ip"))
        for f in el.findall("frame")
    ]


def _what(el: ET.Element, tag: str) -> Optional[str]:
    """<what>TEXT</what> or <xwhat><text>TEXT</text>...</xwhat> (tag = what/auxwhat)."""
    if el.tag == tag:
        return (el.text or "").strip()
    if el.tag == "x" + tag:
        return (_text(el, "text") or "").strip()
    return None


def _error(el: ET.Element) -> Error:
    err = Error(kind=_text(el, "kind") or "Unknown", what="",
                unique=_text(el, "unique"), tid=_int(_text(el, "tid")),
                fd=_int(_text(el, "fd")), path=_text(el, "path"))
    # The first <stack> belongs to <what>; each later one to the <auxwhat>
    # (or DRD's <other_segment_*>) just before it.
    seen_main = False
    for child in el:
        what = _what(child, "what")
        if what is not None:
            err.what = what
            if child.tag == "xwhat":
                err.leaked_bytes = _int(_text(child, "leakedbytes"))
                err.leaked_blocks = _int(_text(child, "leakedblocks"))
                m = _DIRECT.search(what)
                if m:  # "49 (16 direct, 33 indirect) bytes": count only direct
                    err.leaked_bytes = _int(m.group(1))
            continue
        aux = _what(child, "auxwhat")
        if aux is not None:
            err.auxwhat.append(aux)
            continue
        if child.tag == "stack":
            if not seen_main:
                err.stack, seen_main = _stack(child), True
            else:
                err.auxstacks.append(_stack(child))
        elif child.tag in ("other_segment_start", "other_segment_end"):
            inner = child.find("stack")
            if inner is not None:
                err.auxwhat.append(child.tag.replace("_", " "))
                err.auxstacks.append(_stack(inner))
    return err


def _fatal(el: ET.Element) -> FatalSignal:
    st = el.find("stack")
    return FatalSignal(signo=_int(_text(el, "signo")), signame=_text(el, "signame"),
                       sicode=_int(_text(el, "sicode")), event=_text(el, "event"),
                       siaddr=_text(el, "siaddr"), tid=_int(_text(el, "tid")),
                       stack=_stack(st) if st is not None else [])


@dataclass
class _XmlResult:
    report: Report
    fd_errors: list[Error]   # protocol 5 FdNotClosed
    bare_stacks: list[Stack]  # protocol 4 (3.19): where-opened stacks of open fds


def _parse_xml(text: str, tool: str = "") -> _XmlResult:
    report = Report(tool=tool)
    fd_errors: list[Error] = []
    bare_stacks: list[Stack] = []
    counts: dict[str, int] = {}
    finished = closed = False

    parser = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    try:
        parser.feed(_BAD_XML_CHARS.sub("", text))
        parser.close()
    except ET.ParseError:
        pass  # truncated (killed) or garbage at the end: keep what parsed
    try:
        for event, el in parser.read_events():
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 0 and el.tag == "valgrindoutput":
                closed = True
            if depth != 1:
                continue
            tag = el.tag
            if tag == "protocolversion":
                report.protocol = _int(el.text)
            elif tag in ("protocoltool", "tool") and el.text:
                report.tool = el.text.strip()
            elif tag == "pid":
                report.pid = _int(el.text)
            elif tag == "ppid":
                report.ppid = _int(el.text)
            elif tag == "status":
                finished = finished or _text(el, "state") == "FINISHED"
            elif tag == "error":
                err = _error(el)
                if err.kind == "FdNotClosed":
                    fd_errors.append(err)
                elif err.is_leak:
                    report.leak_records.append(err)
                else:
                    report.errors.append(err)
            elif tag == "fatal_signal":
                report.fatal_signal = _fatal(el)
            elif tag == "stack":
                bare_stacks.append(_stack(el))
            elif tag == "errorcounts":
                for pair in el.findall("pair"):
                    u, c = _text(pair, "unique"), _int(_text(pair, "count"))
                    if u is not None and c is not None:
                        counts[u] = c
            elif tag == "suppcounts":
                for pair in el.findall("pair"):
                    n, c = _text(pair, "name"), _int(_text(pair, "count"))
                    if n is not None and c is not None:
                        report.suppressed[n] = c
            el.clear()
    except ET.ParseError:
        pass
    for err in report.errors:
        if err.unique in counts:
            err.count = counts[err.unique]
    report.leaks = _summarise_leaks(report.leak_records)
    report.complete = finished and closed
    return _XmlResult(report, fd_errors, bare_stacks)


def _summarise_leaks(records: Iterable[Error]) -> LeakSummary:
    s = LeakSummary()
    for r in records:
        name = _LEAK_FIELDS.get(r.kind)
        if name is None:
            continue
        setattr(s, f"{name}_bytes", getattr(s, f"{name}_bytes") + (r.leaked_bytes or 0))
        setattr(s, f"{name}_blocks", getattr(s, f"{name}_blocks") + (r.leaked_blocks or 0))
    return s


# --------------------------------------------------------------------------
# Text log: FILE DESCRIPTORS (protocol 4)
# --------------------------------------------------------------------------

_LOG_PREFIX = re.compile(r"^(?:==|--|\*\*)\d+(?:==|--|\*\*) ?")
_FD_HEADER = re.compile(r"FILE DESCRIPTORS: (\d+) open(?: \((\d+) std\))? at exit\.")
_FD_FILE = re.compile(r"Open file descriptor (\d+):\s*(.*)$")
_FD_SOCKET = re.compile(r"Open (?:(\S+) )?socket (\d+):\s*(.*)$")
_TEXT_FRAME = re.compile(
    r"^\s*(?:at|by) (0x[0-9A-Fa-f]+): (.*?)(?: \((?:in )?([^():]+?)(?::(\d+))?\))?$")


def _text_frame(m: re.Match) -> Frame:
    ip, fn, loc, line = m.group(1), m.group(2), m.group(3), m.group(4)
    if line is not None:
        return Frame(fn=fn, file=loc, line=int(line), ip=ip)
    return Frame(fn=fn if fn != "???" else None, obj=loc, ip=ip)


def parse_fd_log(text: str) -> list[OpenFd]:
    """The ``FILE DESCRIPTORS`` section of a valgrind text log (3.19 style).

    Each entry: a header line, then either ``<inherited from parent>`` or a
    stack (text mode only: in XML mode the stack goes to the XML instead).
    """
    fds: list[OpenFd] = []
    in_section = False
    cur: Optional[OpenFd] = None
    for raw in text.splitlines():
        line = _LOG_PREFIX.sub("", raw)
        if _FD_HEADER.search(line):
            in_section, cur = True, None
            fds = []  # a later section (another exit) supersedes
            continue
        if not in_section:
            continue
        m = _FD_FILE.match(line)
        s = None if m else _FD_SOCKET.match(line)
        if m:
            cur = OpenFd(fd=int(m.group(1)), description=line.strip(),
                         path=m.group(2).strip() or None,
                         kind="file" if m.group(2).strip() else "unknown")
            fds.append(cur)
        elif s:
            cur = OpenFd(fd=int(s.group(2)), description=line.strip(),
                         path=s.group(3).strip() or None, kind="socket")
            fds.append(cur)
        elif cur is not None and "<inherited from parent>" in line:
            cur.inherited = True
        elif cur is not None and (f := _TEXT_FRAME.match(line)):
            cur.stack.append(_text_frame(f))
        elif line.strip() == "" and cur is None and fds:
            in_section = False
        elif line.strip() == "":
            cur = None
        elif not line.startswith(" "):
            in_section, cur = False, None
    return fds


def _fd_from_error(err: Error) -> OpenFd:
    text = err.what
    kind = "socket" if " socket " in text else ("file" if err.path else "unknown")
    path = err.path
    if path is None:
        m = _FD_SOCKET.search(text) or _FD_FILE.search(text)
        if m:
            path = m.groups()[-1].strip() or None
    inherited = (not err.stack) or any("inherited" in a for a in err.auxwhat + [text])
    return OpenFd(fd=err.fd if err.fd is not None else -1, description=text,
                  path=path, kind=kind, inherited=inherited, stack=err.stack)


# --------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------

def _same_file(a: str, b: PathLike) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def parse_report(
    xml_text: str,
    log_text: str = "",
    tool: Union[Tool, str] = "",
    exclude_paths: Iterable[PathLike] = (),
) -> Report:
    """Build a Report from valgrind's XML and (optionally) its text log.

    Never raises on truncated or garbled input; ``complete`` says whether
    valgrind finished writing.  EXCLUDE_PATHS: files valgrind itself holds
    open (its log and XML files), not to be blamed on the program.
    """
    res = _parse_xml(xml_text or "", str(tool))
    report = res.report
    if res.fd_errors:  # protocol 5: fds are errors in the XML
        fds = [_fd_from_error(e) for e in res.fd_errors]
    else:
        fds = parse_fd_log(log_text or "")
        # 3.19 with --xml: the stacks are bare <stack>s in the XML, in the
        # order of the log entries that are not inherited.
        owned = [f for f in fds if not f.inherited and not f.stack]
        if owned and len(owned) == len(res.bare_stacks):
            for f, st in zip(owned, res.bare_stacks):
                f.stack = st
    excluded = [os.fspath(p) for p in exclude_paths]
    for f in fds:
        own_log = f.path is not None and any(_same_file(f.path, p) for p in excluded)
        if f.fd in STD_FDS or f.inherited or own_log:
            report.ignored_fds.append(f)
        else:
            report.open_fds.append(f)
    report.open_fds.sort(key=lambda f: f.fd)
    return report


def _read(path: Optional[PathLike]) -> str:
    if path is None:
        return ""
    # The report lies in the program's box, which the program could have
    # replaced with a link or a FIFO: read it as the untrusted file it is.
    from .sandbox import read_untrusted
    data = read_untrusted(path, cap=64 << 20)
    return data.decode("utf-8", errors="replace") if data else ""


def load_report(
    xml_path: PathLike,
    log_path: Optional[PathLike] = None,
    tool: Union[Tool, str] = "",
) -> Report:
    """parse_report on the files valgrind_argv() named; missing files give an
    empty, incomplete report (valgrind never started or was killed early)."""
    exclude = [xml_path] + ([log_path] if log_path is not None else [])
    return parse_report(_read(xml_path), _read(log_path), tool, exclude)


# --------------------------------------------------------------------------
# Attribution and rendering
# --------------------------------------------------------------------------

def _frame_file(frame: Frame, dirs: list[Path]) -> Optional[Path]:
    """The frame's source file if it lies inside one of DIRS."""
    if not frame.file:
        return None
    # With a compile directory we trust it: glibc's printf.c must not match a
    # student file of the same name.  Without one, look in the source dirs.
    if frame.dir:
        candidates = [Path(frame.dir) / frame.file]
    else:
        candidates = [d / frame.file for d in dirs]
    for c in candidates:
        try:
            real = c.resolve()
        except (OSError, RuntimeError):
            continue
        if any(real == d or d in real.parents for d in dirs) and real.is_file():
            return real
    return None


def attribute(error, source_dirs: Iterable[PathLike]) -> Optional[Frame]:
    """The first frame (main stack, then auxiliary stacks) whose file lies in
    one of SOURCE_DIRS: the student's own line.  ERROR is an Error, OpenFd or
    FatalSignal.  The returned Frame is a copy with ``dir``/``file`` pointing
    at the resolved file."""
    dirs = []
    for d in source_dirs:
        try:
            dirs.append(Path(d).resolve())
        except (OSError, RuntimeError):
            pass
    for stack in [error.stack, *error.auxstacks]:
        for frame in stack:
            real = _frame_file(frame, dirs)
            if real is not None:
                return dataclasses.replace(frame, dir=str(real.parent), file=real.name)
    return None


def source_excerpt(frame: Frame, context: int = 2) -> Optional[str]:
    """A few numbered lines around FRAME's line, the line itself marked with
    ``>``; None when the file or line is unavailable."""
    if not frame.path or not frame.line:
        return None
    from .sandbox import read_untrusted
    data = read_untrusted(frame.path, cap=4 << 20)
    if data is None:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not 1 <= frame.line <= len(lines):
        return None
    lo, hi = max(1, frame.line - context), min(len(lines), frame.line + context)
    width = len(str(hi))
    return "\n".join(
        f"{'>' if n == frame.line else ' '} {n:>{width}} | {lines[n - 1]}"
        for n in range(lo, hi + 1))


def _where(item, source_dirs: Sequence[PathLike]) -> str:
    frame = attribute(item, source_dirs) if source_dirs else None
    if frame is None:
        frame = next((f for f in item.stack if f.file), item.stack[0] if item.stack else None)
    return frame.location() if frame else "(no stack)"


def summarise(report: Report, source_dirs: Sequence[PathLike] = ()) -> str:
    """A few human-readable lines: verdict, then each finding and where."""
    l = report.leaks
    head = f"{report.tool or 'valgrind'}: {len(report.errors)} error(s)"
    if report.tool in ("", Tool.MEMCHECK.value):
        head += (f"; definitely lost {l.definitely_bytes} B in {l.definitely_blocks} blocks,"
                 f" indirectly lost {l.indirectly_bytes} B in {l.indirectly_blocks},"
                 f" possibly lost {l.possibly_bytes} B in {l.possibly_blocks},"
                 f" still reachable {l.reachable_bytes} B in {l.reachable_blocks}"
                 f"; {len(report.open_fds)} fd(s) open at exit")
    out = [head]
    if not report.complete:
        out.append("  (report incomplete: the program was killed before valgrind finished)")
    if report.fatal_signal:
        fs = report.fatal_signal
        out.append(f"  fatal signal {fs.signame or fs.signo} at {_where(fs, source_dirs)}")
    for e in report.errors:
        times = f" (x{e.count})" if e.count > 1 else ""
        out.append(f"  {e.kind}{times}: {e.what} at {_where(e, source_dirs)}")
    for e in report.leak_records:
        if e.kind in ("Leak_DefinitelyLost", "Leak_IndirectlyLost"):
            out.append(f"  {e.kind}: {e.what} at {_where(e, source_dirs)}")
    for f in report.open_fds:
        out.append(f"  {f.description} opened at {_where(f, source_dirs)}")
    return "\n".join(out)
