"""Where a trial's wall time goes: named phases, in the order they ran.

Each trial writes its phases to ``timing.json`` in its folder (not an input of the
summary: a run's figures never depend on how long RedLab took), and ``redlab run -v``
logs them.  The speed work of issue 13 starts from this profile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TIMING_FILE = "timing.json"  # in a trial's folder: where its wall time went


UNNAMED = "unnamed"  # the wall time no named phase covers


class Stopwatch:
    """Seconds per named phase; a phase timed twice adds up.  Its wall time runs from its
    creation: what no phase covers is written as the phase ``unnamed``, so that the
    phases add up to ``total_s``, the trial's wall time."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.started = time.monotonic()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def total(self) -> float:
        """The named phases' seconds."""
        return sum(v for k, v in self.phases.items() if k != UNNAMED)

    def describe(self) -> str:
        return ", ".join(f"{name} {s:.2f} s" for name, s in self.phases.items())

    def write(self, path: Path) -> None:
        """timing.json: the phases, the wall time not in any of them, and the wall time."""
        wall = time.monotonic() - self.started
        self.phases[UNNAMED] = max(0.0, wall - self.total())
        path.write_text(json.dumps({"phases_s": {k: round(v, 3) for k, v in
                                                 self.phases.items()},
                                    "total_s": round(wall, 3)}, indent=2))
