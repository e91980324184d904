"""The timeline of a scenario: every byte each actor sent and received.

A failure report shows this timeline, so a student sees who sent what and
when, and who got it. Events are kept in memory (capped) and rendered as
text here; the grader renders the same events as a picture in HTML.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

MAX_EVENTS = 20000
MAX_DATA = 8 << 20     # bytes of event data kept in all: a program flooding
                       # its output must not fill the grader's memory
MAX_SHOWN_BYTES = 200  # per event, when rendered as text


@dataclass(frozen=True)
class Event:
    t: float          # seconds since the transcript started
    actor: str        # "server", "a", "client a", "harness"...
    kind: str         # start, exit, send, recv, stdin, stdout, stderr, connect, close, note, step
    data: bytes = b""
    detail: str = ""

    def to_dict(self) -> dict:
        return {"t": round(self.t, 6), "actor": self.actor, "kind": self.kind,
                "data": self.data.decode("utf-8", "backslashreplace"), "detail": self.detail}


def show_bytes(data: bytes, limit: int = MAX_SHOWN_BYTES) -> str:
    """Bytes as a readable Python-like literal, shortened in the middle."""
    text = repr(bytes(data))[2:-1]
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[:limit // 2]}...<{cut} more chars>...{text[-limit // 2:]}"
    return f'"{text}"'


class Transcript:
    """Thread-safe, append-only, capped list of events."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self.dropped = 0
        self._data_kept = 0

    def add(self, actor: str, kind: str, data: bytes = b"", detail: str = "") -> None:
        with self._lock:
            if len(self._events) >= MAX_EVENTS:
                self.dropped += 1
                return
            room = MAX_DATA - self._data_kept
            if len(data) > room:
                detail = (f"{detail}; " if detail else "") + \
                    f"{len(data) - max(room, 0)} of its {len(data)} bytes not kept (transcript full)"
                data = data[:max(room, 0)]
            self._data_kept += len(data)
            self._events.append(Event(time.monotonic() - self.t0, actor, kind, bytes(data), detail))

    def note(self, text: str, actor: str = "harness") -> None:
        self.add(actor, "note", detail=text)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def render(self, last: int | None = None) -> str:
        """The timeline as text, one event per line (the last `last` events)."""
        events = self.events()
        skipped = 0
        if last is not None and len(events) > last:
            skipped = len(events) - last
            events = events[-last:]
        out = []
        if skipped:
            out.append(f"   ... {skipped} earlier events not shown ...")
        for ev in events:
            what = ev.detail
            if ev.data:
                what = (what + " " if what else "") + show_bytes(ev.data)
            out.append(f"{ev.t * 1000:9.1f}ms  {ev.actor:<12} {ev.kind:<8} {what}")
        if self.dropped:
            out.append(f"   ... {self.dropped} later events were not recorded (cap {MAX_EVENTS}) ...")
        return "\n".join(out)
