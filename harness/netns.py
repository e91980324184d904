"""A private network namespace per scenario.

The harness thread that runs a scenario moves itself into a fresh network
namespace (unshare(CLONE_NEWNET)), brings its loopback up, and goes back to
the namespace it came from afterwards. Programs spawned meanwhile, and
sockets the harness opens, live in the new namespace: ports never collide
between parallel scenarios, a contract may fix a port, and nothing a program
under test does can reach any interface but that loopback.

Without the privilege to unshare (not root), scenarios run in the machine's
own namespace on 127.0.0.1 and ports are chosen by binding port 0; the run's
header says so, since a port freed for a server can in principle be taken
by someone else before the server binds it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from contextlib import contextmanager
from typing import NamedTuple

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_available: bool | None = None


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP) + b"\0" * 22)


def available() -> bool:
    """Whether private namespaces work here (tried once, then remembered)."""
    global _available
    if _available is None:
        try:
            with private_namespace():
                pass
            _available = True
        except OSError:
            _available = False
    return _available


def mode_description() -> str:
    if available():
        return "isolation: a private network namespace per scenario (loopback only)"
    return ("isolation: NONE - no permission for network namespaces; scenarios share "
            "127.0.0.1 and use free ports chosen by binding port 0 (a small race remains)")


@contextmanager
def private_namespace():
    """Run the body in a new network namespace with loopback up."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _loopback_up()
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back to the original namespace")
    finally:
        os.close(home)


@contextmanager
def isolated():
    """A private namespace when possible, else the shared one. Yields True
    when isolated."""
    if available():
        with private_namespace():
            yield True
    else:
        yield False


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody uses now on 127.0.0.1 (for programs that cannot take 0)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def interfaces() -> list[str]:
    """Names of the interfaces visible in the current namespace."""
    return [name for _, name in socket.if_nameindex()]


class SocketRow(NamedTuple):
    local: int          # port
    remote: int         # port (0 for a listening or unconnected socket)
    state: str          # as the kernel writes it: "01" established, "0A" listen
    rx_queue: int       # bytes received and not yet read by the program
    drops: int          # UDP: datagrams dropped for want of room


def proc_sockets(pid: int | str, table: str):
    """The sockets of the namespace `pid` lives in ("thread-self": the
    caller's), from /proc/PID/net/TABLE ("tcp" or "udp")."""
    try:
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            rows = [row.split() for row in f]
    except (OSError, StopIteration):
        return
    for fields in rows:
        drops = int(fields[-1]) if table == "udp" else 0
        yield SocketRow(int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16),
                        fields[3], int(fields[4].split(":")[1], 16), drops)
