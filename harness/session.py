"""A chat session: one server under test, its clients, and their timeline.

This is what a scenario drives, whether it is a script or Python. It knows
the contract (so the harness never hard-codes the protocol), where the
programs are (a submission's build or the references), and it owns every
process and socket it makes: `close()` leaves nothing running.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import netns, sandbox, valgrind
from .netns import proc_sockets
from .clients import CheckFailed, Hub, ProgramClient, RawClient, Receiver
from .contract import Contract, ProgramSpec
from .procs import Limits, Process, Supervisor, describe_status
from .transcript import Transcript, show_bytes

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_BIN = ROOT / "build" / "impl"
PORT_IN_NAMESPACE = 7000     # any port is free in a private namespace
HOST = "127.0.0.1"


class SetupError(CheckFailed):
    """The scenario could not get going (server missing, never ready...)."""


@dataclass
class Programs:
    """Where to find the programs a contract names."""
    submission: Path
    reference: Path = REFERENCE_BIN

    def path(self, spec: ProgramSpec) -> Path:
        if os.path.isabs(spec.program):
            return Path(spec.program)
        base = self.reference if spec.from_reference else self.submission
        # Absolute: a program under test starts in its own box's folder.
        return Path(os.path.abspath(base / spec.program))


def _listening_ports(pid: int, transport: str) -> list[int]:
    """Every port bound (TCP: listening) in the server's namespace."""
    table = "udp" if transport == "udp" else "tcp"
    return sorted({row.local for row in proc_sockets(pid, table)
                   if table == "udp" or row.state == "0A"})


def _listening(pid: int, port: int, transport: str) -> bool:
    """Whether the server's namespace has a socket bound to `port`
    (a TCP one in LISTEN state). Read from /proc, so readiness costs no
    probe connection, and no probe datagram joins a UDP group."""
    return port in _listening_ports(pid, transport)


class ChatSession:
    def __init__(self, contract: Contract, programs: Programs, *, tool: str | None = None,
                 limits: Limits | None = None, scale: float = 1.0, workdir: Path | None = None,
                 source_dirs: list[Path] = ()):
        self.contract = contract
        self.protocol = contract.protocol
        self.programs = programs
        self.tool = tool                     # valgrind tool for the server, or None
        self.source_dirs = list(source_dirs)  # the submission's sources, for valgrind attribution
        self.scale = scale * (valgrind.TIMEOUT_SCALE[tool] if tool else 1.0)
        self.transcript = Transcript()
        self.supervisor = Supervisor(self.transcript)
        self.hub = Hub()
        self.clients: dict[str, Receiver] = {}
        self.server: Process | None = None
        self.port: int | None = None
        self.exit_status: int | None = None
        self.report: valgrind.Report | None = None
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatgrade-"))
        self._probe = 0
        self._probe_token = secrets.token_hex(3)
        self.isolated = False
        # The programs under test run in a box: this scenario's folder is
        # theirs (cwd, HOME, TMPDIR, valgrind's reports); their binaries and
        # our suppressions are visible read-only; all else of ours is hidden.
        self.sandbox = sandbox.Sandbox(
            box=self.workdir, visible=[programs.submission, valgrind.SUPPRESSIONS_DIR],
            limits=(limits or Limits()).scaled(self.scale))

    def within(self, seconds: float) -> float:
        """A deadline scaled for valgrind's slowdown."""
        return seconds * self.scale

    # -- server ------------------------------------------------------------
    def start_server(self, ready_within: float = 5.0, limits: Limits | None = None,
                     reference: bool = False, ignore_signals: Sequence[int] = ()) -> Process:
        """Start the contract's server and wait until it listens. With
        `reference`, the reference server when there is one: a check of the
        client then judges the client alone, not the submission's server.
        `ignore_signals` start ignored: for a check that must not be decided
        by a race another rule's check judges (scenarios/load/test_capacity.py)."""
        spec = self.contract.server
        exe = self.programs.path(spec)
        ref = self.programs.reference / spec.program
        if reference and not os.path.isabs(spec.program) and ref.exists():
            exe = ref
        if not exe.exists():
            raise SetupError("start the server", f"a program {exe.name}",
                             f"{exe} does not exist (did the build produce it?)")
        if spec.port is not None:
            port = spec.port
        elif self.isolated:
            port = PORT_IN_NAMESPACE
        else:
            port = netns.free_port(socket.SOCK_DGRAM if self.contract.transport == "udp"
                                   else socket.SOCK_STREAM)
        argv = [str(exe), *spec.render(port=port, host=HOST)]
        if self.tool:
            self.xml_path = self.workdir / f"server.{self.tool}.xml"
            self.log_path = self.workdir / f"server.{self.tool}.log"
            argv = valgrind.valgrind_argv(self.tool, argv, self.xml_path, self.log_path)
        self.server = self.supervisor.spawn(
            "server", argv, cwd=self.workdir,
            limits=limits.scaled(self.scale) if limits else None,
            ignore_signals=ignore_signals,
            # Our own reference is not under test and needs no box.
            sandbox=None if exe == ref else self.sandbox)
        deadline = time.monotonic() + self.within(ready_within)
        while not _listening(self.server.pid, port, self.contract.transport):
            if not self.server.alive():
                raise SetupError("start the server", f"listening on port {port}",
                                 f"the server ended first ({self.server.status()})",
                                 "stderr: " + self.server.stderr.text()[-800:])
            if time.monotonic() > deadline:
                others = _listening_ports(self.server.pid, self.contract.transport)
                raise SetupError("start the server", f"listening on port {port} "
                                 f"within {self.within(ready_within):g}s",
                                 f"not listening on {port}" +
                                 (f"; it listens on {', '.join(map(str, others))} instead"
                                  if others else "; it listens on no port at all"))
            time.sleep(0.01)  # poll /proc: the condition is checked, not assumed
        self.port = port
        for sig in ignore_signals:
            self.transcript.note(f"the server was started with {signal.Signals(sig).name} ignored")
        self.transcript.note(f"server listening on port {port}")
        return self.server

    def stop_server(self, signum: int = signal.SIGTERM, within: float = 3.0) -> int:
        """Signal the server and wait for it; its return code."""
        if self.server is None:
            raise SetupError("stop the server", "a running server", "none was started")
        self.exit_status = self.server.stop(signum, grace=self.within(within))
        if self.tool:
            self.report = valgrind.load_report(self.xml_path, self.log_path, self.tool)
        return self.exit_status

    def expect_server_alive(self) -> None:
        if self.server is None or not self.server.alive():
            status = self.server.status() if self.server else "never started"
            raise CheckFailed("the server keeps serving", "running", status,
                              "stderr: " + (self.server.stderr.text()[-800:] if self.server else ""))

    # -- clients -------------------------------------------------------------
    def _new_raw(self, name: str, silent: bool = False, port: int | None = None) -> RawClient:
        if name in self.clients:
            raise SetupError(f"client {name} connects", "a new name", f"{name} already exists")
        c = RawClient(name, self.protocol, self.transcript, self.hub, self.contract.transport)
        port = port or self.port
        try:
            c.connect(HOST, port, timeout=self.within(5))
        except OSError as e:
            raise CheckFailed(f"client {name} connects", f"the server accepts on port {port}",
                              f"connect failed: {e.strerror or e}") from None
        self.clients[name] = c
        if silent:
            return c
        for line in self.protocol.handshake:
            c.send(line.format(name=name).encode())
        if self.contract.transport == "udp":
            join = self.protocol.join if self.protocol.join is not None else ""
            c._send_all(join.encode())
            self.transcript.add(name, "send", join.encode(), detail="(join)")
        return c

    def connect(self, *names: str, confirm: bool = True, silent: bool = False,
                port: int | None = None) -> list[RawClient]:
        """Raw clients join; membership is confirmed by a round trip.
        `silent`: connect only (UDP: send nothing, so not yet a member).
        `port`: talk to this port instead of the server's (a fault proxy
        in front of it, harness/faults.py)."""
        new = [self._new_raw(n, silent, port) for n in names]
        if confirm and not silent:
            self.confirm_members(new)
        return new

    def spawn_client(self, name: str, pty: bool = False, confirm: bool = True) -> ProgramClient:
        """Start the contract's client program as participant `name`."""
        spec = self.contract.client
        if spec is None:
            raise SetupError("start a client program", "a [client] in the contract", "none")
        exe = self.programs.path(spec)
        if not exe.exists():
            raise SetupError(f"start client {name}", f"a program {exe.name}", f"{exe} does not exist")
        argv = [str(exe), *spec.render(port=self.port, host=HOST, name=name)]
        proc = self.supervisor.spawn(name, argv, cwd=self.workdir, pty=pty,
                                     sandbox=None if spec.from_reference else self.sandbox)
        c = ProgramClient(name, self.protocol, self.transcript, proc, spec)
        self.clients[name] = c
        others = [m for m in self.members() if m is not c]
        if confirm and others:
            # The program proves it is connected by sending (a typed probe
            # reaches the others): confirming by a message it must print
            # would judge its receive thread, which has a check of its own.
            self.probe(c, others)
            # Back in its wait before the next step: a client that checks the
            # socket only after its user types would otherwise catch what
            # the next step sends on some runs (still busy with the probe).
            c.settle()
        return c

    def members(self) -> list[Receiver]:
        return [c for c in self.clients.values() if c.eof is None and not c.departed]

    def confirm_members(self, new: list[Receiver]) -> None:
        """Prove the new clients are members: a probe message from another
        member reaches each of them (the protocol has no acknowledgement)."""
        # A new client the server has already closed is refused, not "not a
        # member": said the same way whether the close came before this
        # line or during the probe (a full server closes the 65th at once).
        for m in new:
            if m.eof is not None:
                self._let_a_dying_server_end()
                raise CheckFailed(f"membership of {m.name}", "the server keeps the new client",
                                  f"the connection ended ({m.eof}) as it joined")
        members = self.members()
        if len(members) < 2 or not new:
            return
        old = [m for m in members if m not in new]
        first = old[0] if old else new[0]
        self.probe(first, [m for m in members if m is not first])
        if first in new:
            # `first` proved the others members; one of them proves `first`.
            second = next(m for m in members if m is not first)
            self.probe(second, [m for m in members if m is not second])
        for m in new:
            early = m.pass_over_joining()
            if early:
                self.transcript.add(m.name, "note", detail=(
                    f"passed over {len(early)} piece(s) of a probe received while joining: "
                    f"{', '.join(show_bytes(e.line) for e in early[:3])}"))

    def probe(self, sender: Receiver, receivers: list[Receiver], within: float = 5.0) -> None:
        """Send probe messages from `sender` until the latest one reaches
        every receiver, then remove every probe from their streams.

        One probe is not enough: a TCP connect completes in the kernel's
        backlog before the server accepts it, so a first probe may be
        relayed before a new client is on the list. Messages from one
        sender arrive in order, so once the latest probe has arrived
        everywhere, no earlier one is still on its way.
        """
        deadline = time.monotonic() + self.within(within)
        wait = 0.05
        while True:
            self._probe += 1
            text = f"chatgrade-probe-{self._probe}-{self._probe_token}".encode()
            wire = sender.wire_message(text)
            sender.send(text)
            step_deadline = min(deadline, time.monotonic() + self.within(wait))
            missing = [r for r in receivers
                       if not r.wait_for_probe(wire, step_deadline - time.monotonic())]
            if not missing:
                return
            if time.monotonic() >= deadline or any(r.eof is not None for r in missing):
                r = next((r for r in missing if r.eof is not None), missing[0])
                if r.eof is not None:
                    self._let_a_dying_server_end()
                raise CheckFailed(f"membership of {r.name}: a message from {sender.name} reaches it",
                                  f"{wire!r} within {self.within(within):g}s",
                                  f"the connection ended ({r.eof})" if r.eof else
                                  f"not received; unread: {[m.line for m in r.unread()][:5]}")
            wait = min(wait * 2, 1.0)

    def _let_a_dying_server_end(self, within: float = 1.0) -> None:
        """A connection ended unasked: if the server is crashing, wait (a
        little) until it has ended, so the failure names the crash (the
        plugin puts how the server died first) and not only its symptom."""
        if self.server is not None and self.server.stop_signal_sent is None:
            self.server.wait(self.within(within))

    def __getitem__(self, name: str) -> Receiver:
        try:
            return self.clients[name]
        except KeyError:
            raise SetupError(f"use client {name}", "a client that was connected first",
                             f"no client named {name}") from None

    # -- threads and fds of the server ---------------------------------------
    def server_threads(self) -> int:
        return len(os.listdir(f"/proc/{self.server.program_pid}/task"))

    def server_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.server.program_pid}/fd"))

    # -- teardown --------------------------------------------------------------
    def died_on_its_own(self) -> str | None:
        """How the server ended, if it ended before the harness stopped it
        (a crash after the last step must not pass unnoticed)."""
        if self.server is None or self.server.stop_signal_sent is not None:
            return None
        code = self.server.returncode
        return None if code is None else self.server.status()

    def close(self) -> list[str]:
        """Close every client, stop every process; what had to be killed
        after escaping its process group."""
        self.early_death = self.died_on_its_own()
        for c in self.clients.values():
            if isinstance(c, RawClient):
                c.close()
        self.hub.close()
        escaped = self.supervisor.stop_all(grace=self.within(2))
        code = self.server.returncode if self.server else None
        if self.early_death is None and code is not None and code < 0 and \
                -code not in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            # A crash as its clients left at the end (a race with our SIGTERM:
            # seen when it happens first, which is not every time).
            self.early_death = f"{describe_status(code)}, as the clients left at the end"
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return escaped
