"""keepalived's state changes on the harness's clock, read from its notify FIFO.

keepalived writes a line such as ``INSTANCE "VI_1" MASTER 200`` to the FIFO
(``vrrp_notify_fifo``) as it changes state, after it has added or removed the virtual
addresses.  A harness thread waits on the FIFO and stamps each read with
``time.time_ns()``, the clock of the traffic samples.  The stamp is when the harness read
the line, so it is late by the pipe wake-up (tens of microseconds on an idle machine,
up to a scheduler slice or a GIL hand-over, a few ms, under load); lines that arrive in
one read share one stamp.  A notify script would cost a fork and exec per change (ms);
keepalived never blocks on the FIFO (it opens it non-blocking), so a stalled reader
loses lines rather than delaying VRRP.  Every line is also kept with its stamp in
``notify.log`` beside the configuration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import timeouts
from harness.errors import LabError

log = logging.getLogger(__name__)

NOTIFY_LINE = re.compile(r'^(INSTANCE|GROUP)\s+"([^"]*)"\s+([A-Z_]+)(?:\s+(\d+))?\s*$')


@dataclass(frozen=True)
class StateChange:
    """One notification: ``state`` is MASTER, BACKUP, FAULT, STOP, or keepalived's
    MASTER_PRIORITY/BACKUP_PRIORITY/MASTER_RX_LOWER_PRI; ``t_ns`` when the harness read it."""

    t_ns: int
    router: str
    instance: str
    state: str
    priority: int | None


def parse_notify(line: str, router: str, t_ns: int) -> StateChange | None:
    """``INSTANCE "VI_1" MASTER 100`` -> a StateChange; None for anything else."""
    m = NOTIFY_LINE.match(line.strip())
    if not m:
        return None
    return StateChange(t_ns, router, m[2], m[3], int(m[4]) if m[4] else None)


class NotifyFifo:
    """Reads keepalived's notify FIFO in a thread and stamps each read on the wall clock."""

    def __init__(self, path: Path, router: str, raw_log: Path,
                 sink: Callable[[StateChange], None]) -> None:
        self.path, self.router, self.raw_log, self.sink = path, router, raw_log, sink
        self._fd = -1
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Idempotent: across a keepalived restart the same reader goes on (no line lost)."""
        if self._thread is not None:
            return
        if self.path.exists() and not stat.S_ISFIFO(self.path.stat().st_mode):
            raise LabError(f"{self.path} exists and is not a FIFO", "remove it")
        if not self.path.exists():
            os.mkfifo(self.path, 0o600)
        # Read-write: the harness is a writer too, so the FIFO never reads end-of-file
        # while keepalived restarts, and opening never blocks.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"vrrp-notify-{self.router}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        with selectors.DefaultSelector() as sel, open(self.raw_log, "a") as raw:
            sel.register(self._fd, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in sel.select()}
                t_ns = time.time_ns()  # first thing after waking: the stamp
                if self._fd in ready:
                    with contextlib.suppress(BlockingIOError):
                        pending += os.read(self._fd, 65536)
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace")
                        raw.write(f"{t_ns} {text}\n")
                        change = parse_notify(text, self.router, t_ns)
                        if change is None:
                            log.warning("%s: unexpected notify line %r", self.router, text)
                        else:
                            self.sink(change)
                    raw.flush()
                if self._wake_r in ready:
                    return

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=timeouts.PROCESS_EXIT)
            self._thread = None
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1
        self.path.unlink(missing_ok=True)
