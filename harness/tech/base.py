"""The technology seam: what a redundancy mechanism implements so that the lab, the trial
runner and the results never name it.

A running lab (:class:`harness.lab.running.Lab`) holds one instance of every technology
its topology uses, in the order of :data:`harness.tech.registry.TECHNOLOGIES`, and loops
over them, as Mininet's nodes have a symmetric ``config()``/``terminate()``:

1. ``build()`` once the cables exist, before any address: create and configure (bonds
   enslaved, OVS bridges and LAGs made);
2. the lab addresses the hosts and sets their routes;
3. ``launch()``: start the daemons that converge by themselves (keepalived, the MC-LAG
   agents), without waiting, every technology's before any ``start()``: their timers
   (VRRP's election, three advert intervals and more) then run during the others' waits;
4. ``start()``: bring up and wait until ready (a bond settled, LACP negotiated, VRRP
   elected), or raise a LabError that shows the state;
5. during a trial: ``watchers()`` follow state changes as events on the trial's clock,
   ``before_traffic()``/``after_traffic()`` bracket the measured part;
6. ``stop()`` in reverse order, on every path (the journal removes what is left).

Before any of it, ``used_by(topo)`` says whether a topology has the technology at all,
``check(topo)`` finds mistakes in its part (the loader raises them with the others) and
``declared_daemons(topo)`` names the daemons a scenario may crash.  A technology with no
field of its own in the topology model keeps its declarations in
``Topology.declarations`` (``topo.declare(name, item)``).

Between them: ``state()`` is the read-back for ``lab.json``; ``daemons(node)`` the
processes that speak for a node (killed when the device dies, started again when it
reboots through ``rebooted(node)``, crashed by a ``daemon_crash`` step);
``interface_alias`` resolves a scenario's symbolic interface ("active"); and
``columns(trial, row)`` the summary columns it adds, computed from the trial folder alone
(see harness.results.summary), so ``redlab summarize`` recomputes them; ``row`` holds the
columns computed before it (the probe's, and those of the technologies ahead of it in
the registry), to read rather than compute again.  ``prediction(trial, row)``, asked
once every technology has added its columns, is the window its timers give the figure
the trial's first failure puts to the test (harness.results.prediction chooses among
the technologies that answer).

A new technology is a package under harness/tech/ whose ``plugin.py`` subclasses
:class:`Technology`, one entry in the registry, a topology, scenarios and tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from harness.inject.daemon import ProcessRef
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology


@dataclass
class Daemon:
    """A process that speaks for a node: the one we started (a Popen when we are its
    parent), every pid of its tree now, and how to start it again."""

    name: str                                # as a scenario's daemon_crash step names it
    node: str
    process: Callable[[], ProcessRef | None]  # None when it is not running
    pids: Callable[[], list[int]]            # parent first
    start: Callable[[], ProcessRef]


class Watcher(threading.Thread):
    """Polls a piece of state during the traffic and records its changes as events."""

    def __init__(self, name: str, period_s: float) -> None:
        super().__init__(daemon=True, name=name)
        self.period_s = period_s
        self._halt = threading.Event()

    def poll(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.wait(self.period_s):
            self.poll()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


class Poller(Protocol):
    def poll(self) -> None: ...


class Sweep(Watcher):
    """Polls many pieces of state in turn from one thread (each bond of 64 servers, say).

    A thread each (every 5 ms a bond, every 50 ms a server's aggregators) made 64
    servers over 14,000 reads a second, more than the one CPU of User-mode Linux had,
    and the trial around them took minutes. The next
    sweep starts ``period_s`` after one ends, or twice that sweep's CPU time if longer,
    so the watcher takes at most a third of a CPU; ``longest_gap_ns``, the longest time
    between two reads of one piece, is how late a change may be seen (one piece alone is
    read every ``period_s``, as a Watcher of its own would)."""

    def __init__(self, name: str, period_s: float, pollers: Sequence[Poller]) -> None:
        super().__init__(name, period_s)
        self.pollers = list(pollers)
        self.swept_ns = time.monotonic_ns()
        self.longest_gap_ns = 0

    def poll(self) -> None:
        for poller in self.pollers:
            poller.poll()
        ended = time.monotonic_ns()
        self.longest_gap_ns = max(self.longest_gap_ns, ended - self.swept_ns)
        self.swept_ns = ended

    def run(self) -> None:
        pause, self.swept_ns = self.period_s, time.monotonic_ns()
        while not self._halt.wait(pause):
            # the sweep's own CPU time, not its wall time: a sweep preempted for 100 ms
            # (real-time daemons, a loaded guest) must not lengthen the next pause
            started = time.thread_time()
            self.poll()
            pause = self.pause_after(time.thread_time() - started)

    def pause_after(self, sweep_s: float) -> float:
        return max(self.period_s, 2 * sweep_s)


class Technology:
    """One redundancy mechanism in a running lab. Every hook has a do-nothing default."""

    name: ClassVar[str]
    # the kernel features (harness.lab.capabilities) a lab with this technology needs
    # beyond every lab's, as a scenario's requires: names them
    kernel_features: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        """Whether ``topo`` has anything of this technology."""
        raise NotImplementedError

    @classmethod
    def check(cls, topo: Topology) -> list[str]:
        """Problems in this technology's part of ``topo``, found before anything exists
        (the topology loader raises them with the others)."""
        return []

    @classmethod
    def declared_daemons(cls, topo: Topology) -> dict[str, tuple[str, ...]]:
        """node -> the daemons this technology will run there, by the name a scenario's
        ``daemon_crash`` step gives them."""
        return {}

    # -- life cycle ----------------------------------------------------------------------
    def build(self) -> None:
        """Create and configure, before the hosts are addressed."""

    def launch(self) -> None:
        """Start what runs by itself, once every technology is built and the hosts are
        addressed; no waiting (:meth:`start` waits)."""

    def start(self) -> None:
        """Bring up and wait until ready; raise LabError with the state otherwise."""

    def stop(self) -> None:
        """Stop what :meth:`start` started (the journal removes what is left)."""

    # -- what the lab and the runner ask -----------------------------------------------
    def state(self) -> dict[str, Any]:
        """Read-back state for lab.json: top-level keys this technology owns, JSON values."""
        return {}

    def daemons(self, node: str) -> list[Daemon]:
        return []

    def rebooted(self, node: str) -> None:
        """``node`` is back after a device failure: what ran on it starts afresh."""

    def held_after_reboot(self, node: str) -> list[str]:
        """``node``'s interfaces that stay down when it comes back from a device failure,
        until what this technology runs there brings them up (after :meth:`rebooted`)."""
        return []

    @classmethod
    def aliases(cls, topo: Topology, node: str) -> tuple[str, ...]:
        """The symbolic interface names (``active``) a scenario may give on ``node``,
        resolved by :meth:`interface_alias` while the lab runs."""
        return ()

    def interface_alias(self, node: str, alias: str) -> str | None:
        """The interface a scenario's symbolic name means on ``node`` now, if this
        technology knows the name."""
        return None

    def watchers(self, events: EventLog) -> list[Watcher]:
        return []

    def before_traffic(self, events: EventLog) -> None:
        """Just before the measured traffic starts."""

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        """Once the traffic has ended and the failures are undone; returns facts for
        trial.json (under :attr:`name`) that only the live lab knows."""
        return {}

    @staticmethod
    def columns(trial: TrialRecord, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """Summary columns, from the trial folder alone (empty when it does not apply);
        ``row``: the columns computed so far, read-only."""
        return {}

    @staticmethod
    def phrase(row: Mapping[str, Any]) -> str | None:
        """What it did in the trial of summary ``row``, in a few words for the terminal
        ("active srv:eth0 -> srv:eth1"); None where the row has none of its columns."""
        return None

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """The period of this technology's clock that ``step``'s failure races against
        (the MII check, the advert interval, the LACP tick, the heartbeat): the runner
        waits a random part of the longest before the failures, so that repeated trials
        sample the failure's phase. None: its clock has no say in this failure."""
        return None

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """What this mechanism predicts for the trial's first failure, from the trial
        folder alone: None where the failure is none of its business,
        ``Prediction.unknown(why)`` where it is but no window can be given (every member
        of a bond lost, say); ``row``: every column of the trial."""
        return None
