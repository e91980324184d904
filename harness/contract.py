"""Assignment contracts: the data that says what a submission must do.

A contract is a TOML file (grading/contracts/<id>.toml). The harness reads
every protocol detail from it - program names, argv templates, framing, the
relay format, the quit word, notices to ignore - so a course changes a file,
not Python, to grade its own variant of the assignment.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "grading" / "contracts"

TRANSPORTS = ("tcp", "udp", "none")
FRAMINGS = ("line", "nul", "datagram")
ECHO = ("forbidden", "allowed", "required")
THREADS = ("per-client", "one", "any")


class ContractError(ValueError):
    """A contract file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ProgramSpec:
    program: str
    argv: tuple[str, ...]
    # Take the program from the reference build instead of the submission
    # (select_chat is graded with the reference tcp_chat_client).
    from_reference: bool = False

    def render(self, **values) -> list[str]:
        """The argv (without the program) with {placeholders} filled in."""
        try:
            return [a.format(**values) for a in self.argv]
        except KeyError as e:
            raise ContractError(f"argv of {self.program} uses unknown placeholder {e}") from None


@dataclass(frozen=True)
class ServerSpec(ProgramSpec):
    port: int | None = None          # None: the harness chooses and passes it
    threads: str = "any"


@dataclass(frozen=True)
class ClientSpec(ProgramSpec):
    send_format: str = "{msg}"
    quit: str = ""                   # a client-side quit word ("" = the protocol's)
    exits_on_server_close: bool = True


@dataclass(frozen=True)
class Protocol:
    framing: str = "line"
    strip_cr: bool = True
    relay: str = r"(?P<msg>.*)"
    echo: str = "forbidden"
    quit: str = "quit"
    quit_closes: bool = True
    notices: tuple[str, ...] = ()
    handshake: tuple[str, ...] = ()
    join: str | None = None
    empty_relayed: bool = False
    max_message: int = 1000
    slow_reader_bound: float = 5.0

    @property
    def terminator(self) -> bytes:
        return {"line": b"\n", "nul": b"\0", "datagram": b""}[self.framing]

    def frame(self, message: bytes) -> bytes:
        """The bytes a raw client sends for one message."""
        return message + self.terminator

    def relay_regex(self) -> re.Pattern[bytes]:
        return re.compile(self.relay.encode("latin-1"), re.DOTALL)

    def notice_regexes(self) -> list[re.Pattern[bytes]]:
        return [re.compile(n.encode("latin-1")) for n in self.notices]

    def parse_relayed(self, line: bytes) -> bytes | None:
        """The message a received line carries, or None if it is a notice.

        Raises ValueError when the line is neither a notice nor a relay.
        """
        for n in self.notice_regexes():
            if n.search(line):
                return None
        m = self.relay_regex().fullmatch(line)
        if m is None:
            raise ValueError(f"line does not match the relay format {self.relay!r}")
        return m.group("msg")


@dataclass(frozen=True)
class CounterSpec(ProgramSpec):
    line: str = ""
    total: str = ""
    runs: tuple[tuple[int, int], ...] = ()
    race_run: tuple[int, int] = (4, 200)
    # A lost update or a print outside the lock shows only when two threads
    # run at the same instant: the output checks repeat this run (up to
    # stress_repeats times, until one run shows a mistake).
    stress_run: tuple[int, int] | None = None
    stress_repeats: int = 0


@dataclass(frozen=True)
class Contract:
    id: str
    title: str
    transport: str
    path: Path
    server: ServerSpec | None = None
    client: ClientSpec | None = None
    protocol: Protocol = field(default_factory=Protocol)
    capacity: int = 100
    refuses_beyond_limit: bool = False
    counter: CounterSpec | None = None
    rules: dict[str, str] = field(default_factory=dict)   # rule id -> the handout's sentence

    @property
    def programs(self) -> list[ProgramSpec]:
        """Programs the submission itself must build."""
        return [p for p in (self.server, self.client, self.counter)
                if p is not None and not p.from_reference]

    @property
    def quit_word(self) -> str:
        return self.protocol.quit


def _get(table: dict, key: str, kind, default, where: str):
    value = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and not isinstance(value, kind):
        raise ContractError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ContractError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _program(table: dict, where: str) -> dict:
    program = _get(table, "program", str, None, where)
    if not program:
        raise ContractError(f"{where}.program is required")
    argv = _get(table, "argv", list, [], where)
    if not all(isinstance(a, str) for a in argv):
        raise ContractError(f"{where}.argv must be a list of strings")
    return dict(program=program, argv=tuple(argv),
                from_reference=_get(table, "from_reference", bool, False, where))


def load(path: str | Path) -> Contract:
    """Read and validate one contract file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ContractError(f"cannot read contract {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ContractError(f"{path}: {e}") from None
    where = path.name
    transport = _choice(_get(data, "transport", str, "tcp", where), TRANSPORTS, f"{where}.transport")
    server = client = counter = None
    if "server" in data:
        t = data["server"]
        port = t.get("port", "argument")
        if port == "argument":
            port = None
        elif not isinstance(port, int) or not 0 < port < 65536:
            raise ContractError(f"{where}.server.port: 'argument' or a port number, got {port!r}")
        server = ServerSpec(**_program(t, f"{where}.server"), port=port,
                            threads=_choice(_get(t, "threads", str, "any", where), THREADS,
                                            f"{where}.server.threads"))
    if "client" in data:
        t = data["client"]
        client = ClientSpec(**_program(t, f"{where}.client"),
                            send_format=_get(t, "send_format", str, "{msg}", where),
                            quit=_get(t, "quit", str, "", where),
                            exits_on_server_close=_get(t, "exits_on_server_close", bool, True, where))
    if "program" in data:
        t = data["program"]
        runs = tuple(tuple(r) for r in _get(t, "runs", list, [], where))
        counter = CounterSpec(**_program(t, f"{where}.program"),
                              line=_get(t, "line", str, "", where),
                              total=_get(t, "total", str, "", where),
                              runs=runs, race_run=tuple(_get(t, "race_run", list, [4, 200], where)),
                              stress_run=tuple(_get(t, "stress_run", list, [], where)) or None,
                              stress_repeats=_get(t, "stress_repeats", int, 0, where))
    p = data.get("protocol", {})
    w = f"{where}.protocol"
    protocol = Protocol(
        framing=_choice(_get(p, "framing", str, "line", w), FRAMINGS, f"{w}.framing"),
        strip_cr=_get(p, "strip_cr", bool, True, w),
        relay=_get(p, "relay", str, r"(?P<msg>.*)", w),
        echo=_choice(_get(p, "echo", str, "forbidden", w), ECHO, f"{w}.echo"),
        quit=_get(p, "quit", str, "quit", w),
        quit_closes=_get(p, "quit_closes", bool, True, w),
        notices=tuple(_get(p, "notices", list, [], w)),
        handshake=tuple(_get(p, "handshake", list, [], w)),
        join=_get(p, "join", str, None, w),
        empty_relayed=_get(p, "empty_relayed", bool, False, w),
        max_message=_get(p, "max_message", int, 1000, w),
        slow_reader_bound=_get(p, "slow_reader_bound", float, 5.0, w),
    )
    try:
        if "msg" not in protocol.relay_regex().groupindex:
            raise ContractError(f"{w}.relay must have a group named msg")
        protocol.notice_regexes()
    except re.error as e:
        raise ContractError(f"{w}: bad regex: {e}") from None
    if transport != "none" and server is None:
        raise ContractError(f"{where}: a {transport} contract needs a [server] table")
    if transport == "none" and counter is None:
        raise ContractError(f"{where}: a contract without transport needs a [program] table")
    cap = data.get("capacity", {})
    return Contract(
        id=_get(data, "id", str, path.stem, where),
        title=_get(data, "title", str, path.stem, where),
        transport=transport, path=path, server=server, client=client,
        protocol=protocol, counter=counter,
        capacity=_get(cap, "clients", int, 100, f"{where}.capacity"),
        refuses_beyond_limit=_get(cap, "refuses_beyond_limit", bool, False, f"{where}.capacity"),
        rules={str(k): str(v) for k, v in data.get("rules", {}).items()},
    )


def by_id(contract_id: str, directory: Path = CONTRACTS_DIR) -> Contract:
    """The contract named contract_id in the contracts folder."""
    path = directory / f"{contract_id}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise ContractError(f"unknown assignment {contract_id!r} (known: {known})")
    return load(path)


def all_contracts(directory: Path = CONTRACTS_DIR) -> list[Contract]:
    return [load(p) for p in sorted(directory.glob("*.toml"))]
