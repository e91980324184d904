"""The scenario script language: checks an instructor writes without Python.

A script is a header of `key: value` lines, then one step per line:

    title: a message reaches every other member, never its sender
    rule: relay
    assignments: tcp_chat select_chat udp_chat

    server start
    client a b c connect
    a send "hello"
    b expect "hello"
    c expect "hello"
    a expect nothing 300ms

scenarios/README.md documents every step; STEPS below is the grammar, one
entry per step, so the documentation test can check the two agree.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from .clients import SETTLE_WITHIN, CheckFailed, ProgramClient, RawClient
from .contract import Contract

HEADER_KEYS = {"title", "rule", "assignments", "requires", "tool", "points", "timeout", "server"}

# Features a scenario may require of a contract; it is skipped (and says
# why) for a contract without them.
REQUIREMENTS = {
    "tcp": lambda c: c.transport == "tcp",
    "udp": lambda c: c.transport == "udp",
    "quit": lambda c: bool(c.protocol.quit),
    "quit-closes": lambda c: bool(c.protocol.quit) and c.protocol.quit_closes,
    # A client the submission writes (select_chat borrows the reference's).
    "client": lambda c: c.client is not None and not c.client.from_reference,
    "client-exits-on-server-close": lambda c: (c.client is not None and not c.client.from_reference
                                               and c.client.exits_on_server_close),
    "echo-forbidden": lambda c: c.protocol.echo == "forbidden",
    "echo-required": lambda c: c.protocol.echo == "required",
    "strip-cr": lambda c: c.protocol.strip_cr,
    "empty-not-relayed": lambda c: not c.protocol.empty_relayed,
    "one-thread": lambda c: c.server is not None and c.server.threads == "one",
    "thread-per-client": lambda c: c.server is not None and c.server.threads == "per-client",
    "refuses-beyond-limit": lambda c: c.refuses_beyond_limit,
    "line-framing": lambda c: c.protocol.framing == "line",
}

# The grammar: step pattern -> handler name. NAME is a participant, MSG a
# message expression, DUR a duration.
STEPS = {
    "server start": "server_start",
    "server stop [SIGINT|SIGTERM]": "server_stop",
    "server exit STATUS": "server_exit",
    "server alive": "server_alive",
    "server clean": "server_clean",
    "server threads [at most|at least] N": "server_threads",
    "client NAME... connect": "client_connect",
    "client NAME... connect unconfirmed": "client_connect",
    "client NAME... connect silently": "client_connect",
    "program NAME start [pty]": "program_start",
    "NAME send MSG": "send",
    "NAME send raw MSG... [gap DUR]": "send_raw",
    "NAME expect MSG [within DUR]": "expect",
    "NAME expect eventually MSG [within DUR]": "expect_eventually",
    "NAME expect nothing [DUR]": "expect_nothing",
    "NAME expect no echo [DUR]": "expect_no_echo",
    "NAME closed [within DUR]": "closed",
    "NAME close": "close",
    "NAME reset": "reset",
    "NAME stop reading": "stop_reading",
    "NAME end input": "end_input",
    "NAME exit STATUS [within DUR]": "exit",
    "repeat N": "repeat",
}


class ScriptError(ValueError):
    """The script itself is wrong (a syntax error, an unknown step)."""

    def __init__(self, path, lineno: int, text: str):
        super().__init__(f"{path}:{lineno}: {text}")


_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"'}


def unescape(text: str) -> bytes:
    r"""A quoted string's bytes: \n \r \t \0 \\ \" and \xHH escapes."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
                continue
        out += ch.encode("utf-8")
        i += 1
    return bytes(out)


@dataclass
class Token:
    text: str
    quoted: bool


def tokenize(line: str) -> list[Token]:
    tokens = []
    pos = 0
    line = line.rstrip()
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(Token(m.group(1), True))
        elif m.group(2).startswith("#"):
            break
        else:
            tokens.append(Token(m.group(2), False))
    return tokens


def duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 300ms or 2s")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


@dataclass
class Step:
    lineno: int
    source: str
    action: str
    names: list[str] = field(default_factory=list)
    args: dict = field(default_factory=dict)
    body: list["Step"] = field(default_factory=list)


@dataclass
class Script:
    path: Path
    header: dict[str, str]
    steps: list[Step]

    @property
    def title(self) -> str:
        return self.header.get("title", self.path.stem)

    @property
    def rules(self) -> list[str]:
        return self.header.get("rule", "").split()

    @property
    def requires(self) -> list[str]:
        return self.header.get("requires", "").split()

    @property
    def assignments(self) -> list[str]:
        return self.header.get("assignments", "").split()

    @property
    def tool(self) -> str | None:
        return self.header.get("tool") or None

    def applies_to(self, contract: Contract) -> tuple[bool, str]:
        """Whether this script checks `contract`, and if not, why."""
        if self.assignments and contract.id not in self.assignments and "*" not in self.assignments:
            return False, f"not written for {contract.id}"
        if contract.transport == "none":
            return False, "a chat scenario; this assignment has no server"
        for req in self.requires:
            if not REQUIREMENTS[req](contract):
                return False, f"needs '{req}', which the {contract.id} contract does not have"
        return True, ""


def _message(tokens: list[Token], path, lineno, single: bool = False) -> tuple[bytes, list[Token]]:
    """Parse MSG: `quit`, or "str" [* N] ["str" [* N]]...; returns the rest.
    `single`: one "str" [* N] only (each is its own write in send raw)."""
    if tokens and not tokens[0].quoted and tokens[0].text == "quit":
        return b"\x00QUIT", tokens[1:]   # resolved against the contract at run time
    out = b""
    seen = False
    while tokens and tokens[0].quoted:
        part = unescape(tokens[0].text)
        tokens = tokens[1:]
        if len(tokens) >= 2 and not tokens[0].quoted and tokens[0].text == "*":
            if not tokens[1].text.isdigit():
                raise ScriptError(path, lineno, f"'* {tokens[1].text}': repeat count must be a number")
            part *= int(tokens[1].text)
            tokens = tokens[2:]
        out += part
        seen = True
        if single:
            break
    if not seen:
        raise ScriptError(path, lineno, 'expected a message in double quotes, or quit')
    return out, tokens


def parse_step(tokens: list[Token], path, lineno: int, source: str) -> Step:
    words = [t.text for t in tokens]
    bad = lambda why: ScriptError(path, lineno, f"{why}: {source.strip()!r}")  # noqa: E731
    step = lambda action, **kw: Step(lineno, source.strip(), action, **kw)  # noqa: E731
    if words[0] == "server" and len(words) >= 2:
        verb, rest = words[1], words[2:]
        if verb == "start" and not rest:
            return step("server_start")
        if verb == "stop" and len(rest) <= 1:
            sig = rest[0] if rest else "SIGTERM"
            if sig not in ("SIGINT", "SIGTERM"):
                raise bad("server stop takes SIGINT or SIGTERM")
            return step("server_stop", args={"signal": getattr(signal, sig)})
        if verb == "exit" and len(rest) == 1 and rest[0].isdigit():
            return step("server_exit", args={"status": int(rest[0])})
        if verb == "alive" and not rest:
            return step("server_alive")
        if verb == "clean" and not rest:
            return step("server_clean")
        if verb == "threads" and rest:
            how = "exactly"
            if rest[:2] in (["at", "most"], ["at", "least"]):
                how, rest = " ".join(rest[:2]), rest[2:]
            if len(rest) == 1 and rest[0].isdigit():
                return step("server_threads", args={"how": how, "n": int(rest[0])})
        raise bad("unknown server step")
    if words[0] == "client":
        if len(words) >= 3 and "connect" in words:
            i = words.index("connect")
            names, rest = words[1:i], words[i + 1:]
            if names and rest in ([], ["unconfirmed"], ["silently"]):
                return step("client_connect", names=names,
                            args={"confirm": not rest, "silent": rest == ["silently"]})
        raise bad("expected: client NAME... connect")
    if words[0] == "program":
        if len(words) in (3, 4) and words[2] == "start" and words[3:] in ([], ["pty"]):
            return step("program_start", names=[words[1]], args={"pty": words[3:] == ["pty"]})
        raise bad("expected: program NAME start [pty]")
    if len(words) < 2:
        raise bad("unknown step")
    name, verb, rest = words[0], words[1], tokens[2:]
    if verb == "send":
        if rest and not rest[0].quoted and rest[0].text == "raw":
            rest = rest[1:]
            chunks, gap = [], 0.0
            while rest and rest[0].quoted:
                msg, rest = _message(rest, path, lineno, single=True)
                chunks.append(msg)
            if len(rest) == 2 and rest[0].text == "gap":
                gap, rest = duration(rest[1].text), []
            if not chunks or rest:
                raise bad("expected: NAME send raw \"bytes\"... [gap DUR]")
            return step("send_raw", names=[name], args={"chunks": chunks, "gap": gap})
        msg, rest = _message(rest, path, lineno)
        if rest:
            raise bad("unexpected words after the message")
        return step("send", names=[name], args={"message": msg})
    if verb == "expect":
        if [t.text for t in rest[:2]] == ["no", "echo"] and not rest[0].quoted:
            dur = duration(rest[2].text) if len(rest) == 3 else 0.3
            if len(rest) > 3:
                raise bad("expected: NAME expect no echo [DUR]")
            return step("expect_no_echo", names=[name], args={"duration": dur})
        if rest and not rest[0].quoted and rest[0].text == "nothing":
            dur = 0.3
            if len(rest) == 2:
                dur = duration(rest[1].text)
            elif len(rest) != 1:
                raise bad("expected: NAME expect nothing [DUR]")
            return step("expect_nothing", names=[name], args={"duration": dur})
        action = "expect"
        if rest and not rest[0].quoted and rest[0].text == "eventually":
            action, rest = "expect_eventually", rest[1:]
        msg, rest = _message(rest, path, lineno)
        within = 2.0
        if len(rest) == 2 and rest[0].text == "within":
            within, rest = duration(rest[1].text), []
        if rest:
            raise bad("expected: NAME expect [eventually] MSG [within DUR]")
        return step(action, names=[name], args={"message": msg, "within": within})
    plain = {("closed",): "closed", ("close",): "close", ("reset",): "reset",
             ("stop", "reading"): "stop_reading", ("end", "input"): "end_input"}
    key = tuple(words[1:])
    if key in plain:
        return step(plain[key], names=[name], args={"within": 2.0})
    if verb == "closed" and len(words) == 4 and words[2] == "within":
        return step("closed", names=[name], args={"within": duration(words[3])})
    if verb == "exit" and len(words) >= 3 and words[2].isdigit():
        within = 3.0
        if len(words) == 5 and words[3] == "within":
            within = duration(words[4])
        elif len(words) != 3:
            raise bad("expected: NAME exit STATUS [within DUR]")
        return step("exit", names=[name], args={"status": int(words[2]), "within": within})
    raise bad("unknown step (see scenarios/README.md for the steps)")


def parse(path: Path, text: str | None = None) -> Script:
    text = Path(path).read_text() if text is None else text
    header: dict[str, str] = {}
    stack: list[list[Step]] = [[]]
    repeats: list[Step] = []
    in_header = True
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = re.fullmatch(r"([a-z]+):\s*(.*)", stripped)
        if in_header and m and m.group(1) in HEADER_KEYS:
            header[m.group(1)] = m.group(2).strip()
            continue
        if in_header and m:
            raise ScriptError(path, lineno, f"unknown header {m.group(1)!r} "
                              f"(known: {', '.join(sorted(HEADER_KEYS))})")
        in_header = False
        tokens = tokenize(line)
        if not tokens:
            continue
        words = [t.text for t in tokens]
        if words[0] == "repeat" and not tokens[0].quoted:
            if len(words) != 2 or not words[1].isdigit():
                raise ScriptError(path, lineno, "expected: repeat N")
            step = Step(lineno, stripped, "repeat", args={"count": int(words[1])})
            stack[-1].append(step)
            repeats.append(step)
            stack.append(step.body)
            continue
        if words == ["end"]:
            if not repeats:
                raise ScriptError(path, lineno, "'end' without 'repeat'")
            repeats.pop()
            stack.pop()
            continue
        stack[-1].append(parse_step(tokens, path, lineno, line))
    if repeats:
        raise ScriptError(path, repeats[-1].lineno, "'repeat' without 'end'")
    for req in header.get("requires", "").split():
        if req not in REQUIREMENTS:
            raise ScriptError(path, 1, f"unknown requirement {req!r} (known: {', '.join(REQUIREMENTS)})")
    if header.get("server") not in (None, "", "reference", "submission"):
        raise ScriptError(path, 1, "server: reference or submission")
    if header.get("tool") not in (None, "", "memcheck", "helgrind", "drd"):
        raise ScriptError(path, 1, "tool: memcheck, helgrind or drd")
    return Script(Path(path), header, stack[0])


class Runner:
    """Runs a parsed script against a ChatSession."""

    def __init__(self, script: Script, session):
        self.script = script
        self.s = session
        self.contract = session.contract

    def run(self) -> None:
        self._run(self.script.steps, {})

    def _run(self, steps: list[Step], env: dict) -> None:
        for step in steps:
            if step.action == "repeat":
                for i in range(step.args["count"]):
                    self._run(step.body, {**env, "i": i})
                continue
            self.s.transcript.add("script", "step", detail=f"line {step.lineno}: {step.source}")
            try:
                getattr(self, step.action)(step, env)
            except CheckFailed as e:
                where = f"line {step.lineno}: {step.source}"
                raise CheckFailed(f"{where}\n  ({e.step})", e.expected, e.actual, e.hint) from None

    # -- helpers ---------------------------------------------------------
    def _msg(self, raw: bytes, env: dict) -> bytes:
        if raw == b"\x00QUIT":
            return self.contract.protocol.quit.encode()
        if "i" in env:
            raw = raw.replace(b"{i}", str(env["i"]).encode())
        return raw

    def _names(self, step: Step, env: dict) -> list[str]:
        return [n.replace("{i}", str(env.get("i", ""))) for n in step.names]

    def _client(self, step: Step, env: dict):
        return self.s[self._names(step, env)[0]]

    # -- steps -------------------------------------------------------------
    def server_start(self, step, env):
        self.s.start_server(reference=self.script.header.get("server") == "reference")

    def server_stop(self, step, env):
        self.s.stop_server(step.args["signal"])

    def server_exit(self, step, env):
        want = step.args["status"]
        if self.s.exit_status != want:
            from .procs import describe_status
            actual = describe_status(self.s.exit_status)
            if self.s.server is not None and self.s.server.outlived_signal:
                actual = f"{self.s.server.outlived_signal}, so {actual}"
            raise CheckFailed("the server's exit status", f"exit {want}", actual,
                              "on SIGINT/SIGTERM the server must clean up and exit 0")

    def server_alive(self, step, env):
        self.s.expect_server_alive()

    def server_clean(self, step, env):
        from . import valgrind
        report = self.s.report
        if report is None:
            raise CheckFailed("the server is clean under valgrind", "a valgrind report",
                              "the server did not run under valgrind (add 'tool: memcheck')")
        # helgrind and DRD judge races alone: how the server ended (a
        # SIGTERM it does not handle) is the shutdown rule's business.
        dirty = not report.clean if self.s.tool == "memcheck" else bool(report.errors)
        if dirty:
            expected = ("no errors, nothing lost, no fds open beyond 0-2, no crash"
                        if self.s.tool == "memcheck" else "no data race or lock misuse reported")
            raise CheckFailed(f"the server is clean under {self.s.tool}", expected,
                              valgrind.summarise(report, self.s.source_dirs))

    def server_threads(self, step, env):
        n, how = step.args["n"], step.args["how"]
        got = self.s.server_threads()
        ok = {"exactly": got == n, "at most": got <= n, "at least": got >= n}[how]
        if not ok:
            raise CheckFailed("the server's thread count", f"{how} {n}", f"{got} threads")

    def client_connect(self, step, env):
        self.s.connect(*self._names(step, env), confirm=step.args["confirm"],
                       silent=step.args["silent"])

    def program_start(self, step, env):
        self.s.spawn_client(self._names(step, env)[0], pty=step.args["pty"])

    def send(self, step, env):
        c = self._client(step, env)
        msg = self._msg(step.args["message"], env)
        # A script's steps happen in the order written: the server has read
        # one client's message (a program, what its user typed) before the
        # next step goes on.
        c.send(msg, settle=True)

    def send_raw(self, step, env):
        c = self._client(step, env)
        if not isinstance(c, RawClient):
            raise CheckFailed(step.source, "a raw client", f"{c.name} is a program client")
        c.send_raw(*[self._msg(m, env) for m in step.args["chunks"]], gap=step.args["gap"],
                   settle=True)

    def expect(self, step, env):
        msg = self._msg(step.args["message"], env)
        alternatives = [c.wire_message(msg) for c in self.s.clients.values()
                        if isinstance(c, ProgramClient)]
        self._client(step, env).expect(msg, within=self.s.within(step.args["within"]),
                                       alternatives=alternatives)

    def expect_eventually(self, step, env):
        msg = self._msg(step.args["message"], env)
        self._client(step, env).expect_eventually(msg, within=self.s.within(step.args["within"]))

    def expect_no_echo(self, step, env):
        self._client(step, env).expect_no_echo(step.args["duration"])

    def expect_nothing(self, step, env):
        self._client(step, env).expect_nothing(step.args["duration"])

    def closed(self, step, env):
        self._client(step, env).expect_closed(self.s.within(step.args["within"]))

    def close(self, step, env):
        c = self._client(step, env)
        if isinstance(c, RawClient):
            c.close(settle=self.s.within(SETTLE_WITHIN))
        else:
            c.close()

    def reset(self, step, env):
        self._client(step, env).reset()

    def stop_reading(self, step, env):
        self._client(step, env).stop_reading()

    def end_input(self, step, env):
        c = self._client(step, env)
        if not isinstance(c, ProgramClient):
            raise CheckFailed(step.source, "a program client", f"{c.name} is a raw client")
        c.end_input()

    def exit(self, step, env):
        c = self._client(step, env)
        if not isinstance(c, ProgramClient):
            raise CheckFailed(step.source, "a program client", f"{c.name} is a raw client")
        c.expect_exit(step.args["status"], within=self.s.within(step.args["within"]))
