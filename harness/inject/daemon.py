"""A daemon crash: one process (and everything it forked) dies without a goodbye.

SIGKILL alone is not enough for daemons that fork workers. keepalived's VRRP child gets
its parent's death as a signal (PR_SET_PDEATHSIG) and may send a priority-0 advert on its
way out, and a supervising parent respawns a killed child. So the whole tree is first
frozen with SIGSTOP, parents before children (a stopped process runs no code, so cannot
fork, respawn or say goodbye), and only then killed with SIGKILL, which also ends stopped
processes. Processes are pinned by their start time: a pid reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.inject.base import Reversible, bracket, lab_netns, netns_id
from harness.journal import (
    is_alive,
    process_name,
    process_parent,
    process_start_time,
    process_state,
)

if TYPE_CHECKING:
    from harness.lab.running import Lab

ProcessRef = subprocess.Popen[bytes] | int
Restart = Callable[[], ProcessRef]


@dataclass(frozen=True)
class Pinned:
    """A process known by pid *and* start time, with its Popen when we are its parent."""

    pid: int
    start: int | None
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def of(cls, ref: ProcessRef) -> Pinned:
        if isinstance(ref, subprocess.Popen):
            return cls(ref.pid, process_start_time(ref.pid), ref)
        return cls(ref, process_start_time(ref))

    def alive(self) -> bool:
        return is_alive(self.pid, self.start) and _state(self.pid) != "Z"

    def name(self) -> str:
        return process_name(self.pid)


def _state(pid: int) -> str:
    return process_state(pid) or "gone"


def _children_of(pids: Iterable[int]) -> dict[int, list[int]]:
    """Each pid's children, from /proc/<pid>/task/*/children (every thread's, where the
    kernel has CONFIG_PROC_CHILDREN): a few reads, where scanning all of /proc reads every
    process's stat, over a second inside a loaded User-mode Linux. Without those files,
    the scan."""
    kids: dict[int, list[int]] = {}
    for pid in pids:
        files = list(Path(f"/proc/{pid}/task").glob("*/children"))
        if not files and Path(f"/proc/{pid}").exists():
            return _children_by_parent()
        for path in files:
            with contextlib.suppress(OSError, ValueError):
                kids.setdefault(pid, []).extend(int(k) for k in path.read_text().split())
    return kids


def _children_by_parent() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        ppid = process_parent(proc.name)
        if ppid is not None:
            kids.setdefault(ppid, []).append(int(proc.name))
    return kids


def freeze(roots: Iterable[Pinned]) -> list[Pinned]:
    """SIGSTOP ``roots`` and all their descendants; returns them once all are stopped."""
    stopped: dict[int, Pinned] = {}
    pending = [p for p in roots if p.alive()]
    while pending:
        for proc in pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
            stopped[proc.pid] = proc
        # A process may have forked before its SIGSTOP landed: look again until a scan
        # finds no new descendant.
        kids = _children_of(stopped)
        pending = [Pinned(kid, process_start_time(kid)) for pid in list(stopped)
                   for kid in kids.get(pid, ()) if kid not in stopped]
    timeouts.wait_for("the crashed processes to stop",
                      lambda: all(_state(p.pid) in ("T", "t", "Z", "X", "gone")
                                  for p in stopped.values()),
                      timeouts.PROCESS_EXIT, interval=0.001)
    return list(stopped.values())


def kill(frozen: Iterable[Pinned]) -> None:
    """SIGKILL frozen processes and wait until each is gone or a zombie."""
    procs = list(frozen)
    for proc in procs:
        if is_alive(proc.pid, proc.start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)

    def all_dead() -> bool:
        # A zombie counts as dead. Only a Popen is reaped here: reaping a bare pid would
        # steal the exit status from whoever holds its Popen (it would read 0, not -9).
        for proc in procs:
            if proc.popen is not None:
                proc.popen.poll()
        return not any(p.alive() for p in procs)

    timeouts.wait_for("the crashed processes to exit", all_dead, timeouts.PROCESS_EXIT,
                      interval=0.005)


def check_in_node(lab: Lab, node: str, procs: Iterable[Pinned]) -> None:
    """Refuse a process that is dead already or lives in another node's namespace."""
    want = netns_id(lab_netns(lab, node))
    for proc in procs:
        if not proc.alive():
            raise LabError(f"cannot crash process {proc.pid} in {node}: it is not running",
                           "the daemon exited before the failure; read its log")
        try:
            where = os.readlink(f"/proc/{proc.pid}/ns/net")
        except OSError:
            continue  # it died just now; kill() copes
        if where != want:
            raise ConfigError(f"process {proc.pid} ({proc.name()}) is not in {node}'s network"
                              " namespace", "pass a process started with lab.popen"
                              f"({node!r}, ...)")


@dataclass
class DaemonCrash(Reversible):
    """SIGKILL ``proc`` and its children in ``node``; the node itself stays up.

    ``restore()`` calls ``restart`` (if given) and adopts the process it returns, so the
    crash can be applied again; without it restore only records the time.
    """

    lab: Lab
    node: str
    proc: ProcessRef
    restart: Restart | None = None
    _what: str = field(init=False, default="")
    _crashed: Pinned | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        pinned = Pinned.of(self.proc)
        self._what = f"{pinned.name()}[{pinned.pid}]"

    def describe(self) -> str:
        again = "restarted on restore" if self.restart else "not restarted"
        return f"daemon_crash {self.node}: {self._what} killed with SIGKILL ({again})"

    def apply(self) -> int:
        """Returns when the daemon stopped: between its SIGSTOP and every process of its
        tree seen stopped (it ran no code after that), the middle of the two."""
        pinned = Pinned.of(self.proc)
        check_in_node(self.lab, self.node, [pinned])
        frozen: list[Pinned] = []
        stopped = bracket(lambda: frozen.extend(freeze([pinned])))
        self._crashed = pinned
        kill(frozen)
        return self._event([stopped])

    def restore(self) -> int:
        """Restart once per crash: a second restore (cleanup after a scenario step) is a no-op."""
        crashed, self._crashed = self._crashed, None
        if self.restart is None or crashed is None or crashed.alive():
            return self._event([])
        restart = self.restart
        started: list[ProcessRef] = []
        call = bracket(lambda: started.append(restart()))
        self.proc = started[0]
        pinned = Pinned.of(self.proc)
        self._what = f"{pinned.name()}[{pinned.pid}]"
        return self._event([call])
