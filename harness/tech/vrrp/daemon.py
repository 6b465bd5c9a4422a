"""One router's keepalived, run in the foreground for the length of a lab.

Each router runs its own keepalived in the foreground (:class:`Keepalived`), started in
its namespace by the caller (``Lab.popen``), VRRP subsystem only, with its own
configuration, pid files, console log and notify FIFO in one folder
(:class:`~harness.tech.vrrp.config.RunFiles`); keepalived 2.2 has no configuration keyword
for pid files, so they are given on the command line, and two or three daemons share one
machine without meeting.  Its state changes come from the notify FIFO
(:mod:`harness.tech.vrrp.notify`), stamped on the clock of the traffic samples.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import timeouts
from harness.errors import LabError
from harness.journal import Journal, is_alive, process_start_time
from harness.tech.vrrp.config import RunFiles, check_config, command, render_config
from harness.tech.vrrp.notify import NotifyFifo, StateChange
from harness.tech.vrrp.options import VrrpOptions

log = logging.getLogger(__name__)

# spawn(argv, stdout=..., stderr=...) starts argv in the router's namespace and journals it,
# e.g. functools.partial(lab.popen, "r1").
Spawn = Callable[..., "subprocess.Popen[bytes]"]


class Keepalived:
    """One router's keepalived: ``with Keepalived(...) as k: k.wait_for_state("MASTER")``."""

    def __init__(self, router: str, options: VrrpOptions, folder: Path, spawn: Spawn,
                 netns: str | None = None, journal: Journal | None = None,
                 on_change: Callable[[StateChange], None] | None = None) -> None:
        self.router, self.options, self.spawn = router, options, spawn
        self.netns, self.journal, self.on_change = netns, journal, on_change
        self.files = RunFiles.in_folder(folder.resolve())
        self.proc: subprocess.Popen[bytes] | None = None
        self._terminated_ns: int | None = None  # when terminate() was sent
        self._changes: list[StateChange] = []
        self._lock = threading.Lock()
        self._fifo = NotifyFifo(self.files.fifo, router, self.files.notify_log, self._record)

    def _record(self, change: StateChange) -> None:
        with self._lock:
            self._changes.append(change)
        if self.on_change is not None:
            self.on_change(change)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> subprocess.Popen[bytes]:
        """Check the configuration, start the daemon, return once its VRRP process runs.
        Also the restart after a crash (``DaemonCrash(..., restart=k.start)``): the notify
        reader and the lists of changes carry on."""
        self.spawn_daemon()
        return self.wait_running()

    def spawn_daemon(self) -> None:
        """:meth:`start` without its wait: the lab starts every router's keepalived, then
        waits for them all (:meth:`wait_running`)."""
        if self.proc is not None and self.proc.poll() is None:
            raise LabError(f"keepalived in {self.router} is already running",
                           "stop it (or crash it) before starting it again")
        self.files.folder.mkdir(parents=True, exist_ok=True)
        text = render_config(self.router, self.options, self.files.fifo)
        # checked once: a restart (after a crash or a reboot) runs the same file, and a
        # starved lab's second check took longer than keepalived's own start
        if not self.files.conf.is_file() or self.files.conf.read_text() != text:
            self.files.conf.write_text(text)
            check_config(self.files.conf, self.netns)
        for stale in (self.files.pid, self.files.vrrp_pid):
            stale.unlink(missing_ok=True)  # keepalived refuses to start over a live pid file
        self._fifo.start()
        self._terminated_ns = None
        with open(self.files.log, "ab") as log_file:  # the daemon keeps its own copy
            self.proc = self.spawn(command(self.files), stdout=log_file,
                                   stderr=subprocess.STDOUT)

    def wait_running(self) -> subprocess.Popen[bytes]:
        """Return once the VRRP process of the keepalived :meth:`spawn_daemon` started runs
        (journaled: it outlives a parent killed hard)."""
        assert self.proc is not None, "spawn_daemon() first"
        child = timeouts.wait_for(f"keepalived's VRRP process in {self.router}",
                                  self._vrrp_child, timeouts.KEEPALIVED_START)
        if self.journal is not None:  # gone with its parent normally; the journal makes sure
            self.journal.record_process(child, f"keepalived VRRP child in {self.router}")
        return self.proc

    def _vrrp_child(self) -> int | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"keepalived in {self.router} exited with {self.proc.returncode}"
                           " at start", f"read {self.files.log}")
        return self.vrrp_pid()

    def vrrp_pid(self) -> int | None:
        """The VRRP child's pid, while it runs."""
        try:
            pid = int(self.files.vrrp_pid.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_alive(pid, process_start_time(pid)) else None

    def pids(self) -> list[int]:
        """Parent first, then the VRRP child: the order to freeze them in."""
        found = [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []
        child = self.vrrp_pid()
        return found + ([child] if child else [])

    def terminate(self) -> None:
        """SIGTERM, without waiting (``stop`` waits and cleans up)."""
        if self.proc is not None and self.proc.poll() is None:
            self._terminated_ns = time.time_ns()
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = timeouts.PROCESS_EXIT) -> int | None:
        """SIGTERM, then SIGKILL to both processes once keepalived has said goodbye, or
        after ``timeout``.  Returns the parent's exit status.

        On SIGTERM keepalived's VRRP process sends priority 0, drops its virtual addresses,
        notifies STOP, and only then idles a second before it exits "to increase the
        chances of an IGMP leave group being sent" (``vrrp_terminate_phase1``,
        keepalived's vrrp_daemon.c).  A lab being torn down has no use for that leave, so
        once the STOP notification is read the daemon is killed: the goodbye a peer sees
        is the same, and a trial's teardown is a second shorter."""
        status = None
        try:
            if self.proc is not None:
                child = self.vrrp_pid()
                if self.proc.poll() is None and self._terminated_ns is None:
                    self.terminate()
                asked_ns = self._terminated_ns or 0
                try:
                    if child:  # a VRRP process to say goodbye: wait for it, not the idle
                        self._said_goodbye(asked_ns, timeout)
                    else:
                        self.proc.wait(timeout=timeout)
                except LabError:
                    log.warning("keepalived in %s did not stop within %g s of SIGTERM:"
                                " killing it", self.router, timeout)
                except subprocess.TimeoutExpired:
                    log.warning("keepalived in %s ignored SIGTERM for %g s: killing it",
                                self.router, timeout)
                if child and is_alive(child, process_start_time(child)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                if self.proc.poll() is None:
                    self.proc.kill()
                status = self.proc.wait(timeout=timeout)
        finally:
            self._terminated_ns = None
            self._fifo.stop()
        return status

    def _said_goodbye(self, asked_ns: int, timeout: float) -> None:
        """Until the STOP notification that follows the SIGTERM at ``asked_ns`` is read
        (keepalived's goodbye is done), or the daemon is gone."""
        proc = self.proc
        assert proc is not None, "stop() asks this of a daemon it started"

        def done() -> bool:
            return proc.poll() is not None or any(
                c.state == "STOP" and c.t_ns >= asked_ns for c in self.changes)
        timeouts.wait_for(f"keepalived in {self.router} to notify STOP", done, timeout)

    def __enter__(self) -> Keepalived:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------
    @property
    def changes(self) -> list[StateChange]:
        with self._lock:
            return list(self._changes)

    @property
    def state(self) -> str | None:
        """The last MASTER/BACKUP/FAULT/STOP notified, None before the first."""
        states = [c.state for c in self.changes if c.state in ("MASTER", "BACKUP", "FAULT",
                                                                "STOP")]
        return states[-1] if states else None

    def wait_for_state(self, state: str, timeout: float, after_ns: int = 0) -> StateChange:
        """The first change to ``state`` read at or after ``after_ns``."""
        def found() -> StateChange | None:
            return next((c for c in self.changes if c.state == state and c.t_ns >= after_ns),
                        None)
        return timeouts.wait_for(f"{self.router} to become {state}", found, timeout)


def virtual_addresses_held(ipr: Any, options: VrrpOptions) -> set[str]:
    """Which of the virtual addresses ``ipr``'s namespace holds now (any interface: with
    use_vmac they sit on the vrrp.<VRID> macvlan)."""
    wanted = {str(a.ip) for a in options.virtual_ipaddress}
    held = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()}
    return wanted & held

