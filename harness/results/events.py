"""Timestamped events of one trial, on the wall clock that the probe's packets also use."""

from __future__ import annotations

import csv
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ["t_ns", "t_s", "kind", "node", "detail"]


@dataclass
class EventLog:
    """Appends each event to ``events.csv`` as it happens, so a crash keeps what was seen."""

    path: Path
    t0_ns: int = 0  # traffic start; t_s is relative to it
    events: list[dict[str, object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        with open(self.path, "w", newline="") as fh:
            csv.writer(fh).writerow(COLUMNS)

    def add(self, kind: str, node: str = "", detail: str = "",
            t_ns: int | None = None) -> dict[str, object]:
        t = time.time_ns() if t_ns is None else t_ns
        event = {"t_ns": t, "t_s": round((t - self.t0_ns) / 1e9, 6) if self.t0_ns else "",
                 "kind": kind, "node": node, "detail": detail}
        with self._lock:
            self.events.append(event)
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, COLUMNS).writerow(event)
        return event

    def first(self, kind: str) -> dict[str, object] | None:
        return next((e for e in self.events if e["kind"] == kind), None)

    def sort(self) -> None:
        """Put the events in time order, in memory and in the file. They are appended as
        they are recorded, and a step is recorded once its call has returned: after what a
        watcher saw meanwhile (a bond's member leaving during a slow cut)."""
        with self._lock:
            self.events.sort(key=lambda e: int(e["t_ns"]))
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, COLUMNS)
                writer.writeheader()
                writer.writerows(self.events)
            os.replace(tmp, self.path)  # never a half-written timeline
