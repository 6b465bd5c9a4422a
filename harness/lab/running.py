"""A running lab: a validated :class:`Topology` instantiated, its technologies started,
and everything torn down on every path.

``with Lab(topo, run_id, journal) as lab: ...``.  Mininet makes the namespaces and the
veth cables (:mod:`harness.lab.wiring`); then each technology the topology uses
(:mod:`harness.tech.registry`) builds its part, the hosts get their addresses and routes
(:mod:`harness.lab.addressing`), and each technology starts and waits until it is ready
(see :mod:`harness.tech.base` for the order).  The lab itself knows no technology: it
gives them names, netlink sockets, processes in nodes and the run's journal, and loops
over them.  Every root-namespace object is written to the run's journal *before* it is
created; each node's namespace holder and the processes started in nodes as soon as
they exist.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pyroute2 import IPRoute

from harness import timeouts
from harness.errors import LabError
from harness.journal import Journal
from harness.lab import addressing, wiring
from harness.lab.nodes import Holder, netlink_socket
from harness.measure.stopwatch import Stopwatch
from harness.naming import check_ifname, prefixed
from harness.tech.base import Daemon, Technology
from harness.topology.model import Topology

if TYPE_CHECKING:
    from harness.results.events import EventLog

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Technology)


class Lab:
    """A running topology; its technologies in ``techs``, in start order."""

    def __init__(self, topo: Topology, run_id: str, journal: Journal,
                 workdir: Path | None = None, events: EventLog | None = None,
                 on_failure: Callable[[Lab, str], None] | None = None,
                 stopwatch: Stopwatch | None = None) -> None:
        from harness.tech.registry import technologies_for

        self.topo = topo.validate()
        self.run_id = run_id
        self.journal = journal
        # Daemons' configurations and logs (keepalived) go here, kept with the results.
        self.workdir = workdir
        # The trial's timeline: technologies record state changes on it as they happen.
        self.events = events
        # Called with what went wrong when bring-up or the trial fails, before the
        # teardown: a run asked to keep a failed lab for inspection waits there.
        self.on_failure = on_failure
        self.stopwatch = stopwatch or Stopwatch()  # bring-up and teardown, by phase
        self.techs: list[Technology] = [cls(self) for cls in technologies_for(self.topo)]
        self.net: Any = None
        self.holder: Holder | None = None  # the nodes' namespace holder (wiring makes it)
        self._started: list[Technology] = []
        self._mark = journal.mark()
        self._sockets: dict[tuple[int, str | None], IPRoute] = {}
        self._sockets_lock = threading.Lock()

    # -- names ---------------------------------------------------------------------------
    def node_name(self, node: str) -> str:
        """The name Mininet and the kernel know ``node`` by."""
        return prefixed(self.run_id, node) if self.topo.nodes[node].kind == "switch" else node

    def ifname(self, node: str, intf: str) -> str:
        if self.topo.nodes[node].kind == "switch":
            return check_ifname(f"{self.node_name(node)}-{intf}")
        return check_ifname(intf)

    def netns(self, node: str) -> str | None:
        """Path of ``node``'s network namespace for pyroute2; None for the root namespace."""
        if self.topo.nodes[node].kind == "switch":
            return None
        return f"/proc/{self.net.get(node).pid}/ns/net"

    def pid(self, node: str) -> int:
        """A process in ``node``'s namespace (its namespace holder, harness.lab.nodes)."""
        return int(self.net.get(self.node_name(node)).pid)

    def ipr(self, node: str) -> IPRoute:
        """A netlink socket in ``node``'s namespace, kept for the lab's lifetime.

        Sockets are opened from inside the namespace (harness.lab.nodes.netlink_socket)
        and reused; one per thread, because a pyroute2 socket belongs to the thread that
        made it.
        """
        netns = self.netns(node)
        key = (threading.get_ident(), netns)
        with self._sockets_lock:
            if key not in self._sockets:
                self._sockets[key] = netlink_socket(netns) if netns else IPRoute()
            return self._sockets[key]

    def tech(self, kind: type[T]) -> T:
        """The running instance of technology ``kind`` (LabError if the topology has none)."""
        for tech in self.techs:
            if isinstance(tech, kind):
                return tech
        raise LabError(f"topology {self.topo.name} uses no {kind.name}",
                       "pick a scenario whose topology declares it")

    # -- life cycle ----------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException as exc:
            try:
                if (isinstance(exc, Exception) and self.on_failure is not None
                        and self.net is not None):
                    self.on_failure(self, f"bring-up failed ({exc})")
            finally:
                self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        try:
            if isinstance(exc, Exception) and self.on_failure is not None:
                self.on_failure(self, f"the trial failed ({exc})")
        finally:
            self.stop()

    def start(self) -> None:
        clock = self.stopwatch
        with clock.phase("wiring"):
            self.net = wiring.instantiate(self)
            addressing.shape_links(self)
        for tech in self.techs:
            self._started.append(tech)
            with clock.phase(f"build {tech.name}"):
                tech.build()
        with clock.phase("addressing"):
            wiring.keep_root_namespace_out(self)
            addressing.configure(self)
        for tech in self.techs:
            with clock.phase(f"launch {tech.name}"):  # its daemons, not waited for
                tech.launch()
        for tech in self.techs:
            with clock.phase(f"start {tech.name}"):  # its readiness waits
                tech.start()
        # Open every node's socket now: opening one costs tens of ms under UML, which
        # must not land inside a measured failure.
        with clock.phase("netlink sockets"):
            for node in self.topo.nodes:
                self.ipr(node)

    def stop(self) -> None:
        with self.stopwatch.phase("teardown"):
            self._stop()

    def _stop(self) -> None:
        for tech in reversed(self._started):
            try:
                tech.stop()
            except Exception as exc:  # the journal below still removes what is left
                log.warning("stopping %s failed: %s", tech.name, exc)
        self._started.clear()
        with self._sockets_lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as exc:  # the journal below still removes what is left
                log.warning("mininet stop failed: %s", exc)
            self.net = None
        if self.holder is not None:
            self.holder.close()
            self.holder = None
        self.journal.rollback_to(self._mark)

    # -- what failures and the runner ask ------------------------------------------------
    def daemons(self, node: str) -> list[Daemon]:
        """Every daemon that speaks for ``node``, whichever technology runs it."""
        return [d for tech in self.techs for d in tech.daemons(node)]

    def daemon_processes(self, node: str) -> list[int]:
        """The processes that die with ``node`` when the device fails."""
        return [pid for daemon in self.daemons(node) for pid in daemon.pids()]

    def rebooted(self, node: str) -> None:
        """``node`` is back after a device failure: its daemons start again."""
        for tech in self.techs:
            tech.rebooted(node)

    def held_after_reboot(self, node: str) -> list[str]:
        """``node``'s interfaces its technologies keep down when it comes back."""
        return sorted({i for tech in self.techs for i in tech.held_after_reboot(node)})

    def interface(self, node: str, name: str) -> str:
        """A scenario's interface name on ``node``: as given, or what a technology means
        by a symbolic one ("active": a bond's active member now)."""
        for tech in self.techs:
            found = tech.interface_alias(node, name)
            if found is not None:
                return found
        return name

    def write_state(self, path: Path) -> None:
        """Names as instantiated and each technology's state read back, for people (and
        ``redlab summarize``) reading a run folder."""
        state: dict[str, Any] = {
            "run_id": self.run_id,
            "nodes": {n: self.node_name(n) for n in self.topo.nodes},
        }
        for tech in self.techs:
            state.update(tech.state())
        path.write_text(json.dumps(state, indent=2))

    # -- running things inside -----------------------------------------------------------
    def sysctl(self, node: str, key: str, value: str) -> None:
        """Set ``key`` in ``node``'s namespace (net.* sysctls are per namespace)."""
        proc = self.popen(node, ["sysctl", "-q", "-w", f"{key}={value}"])
        _, err = proc.communicate(timeout=timeouts.SYSCTL)
        if proc.returncode != 0:
            raise LabError(f"sysctl {key}={value} failed in {node}: {err.decode().strip()}",
                           "apt-get install procps (scripts/bootstrap setup does it)")

    def popen(self, node: str, argv: Sequence[str], stdout: IO[bytes] | int | None = None,
              stderr: IO[bytes] | int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``node``'s namespace; the journal kills it if we do not."""
        proc = self.net.get(self.node_name(node)).popen(
            list(argv), stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=stderr, stdin=subprocess.DEVNULL)
        self.journal.record_process(proc.pid, f"{argv[0]} in {node}")
        return proc

    def ends(self) -> list[tuple[str, str]]:
        """Every cable end, as (node, interface)."""
        return [end for link in self.topo.links
                for end in ((link.a, link.a_intf), (link.b, link.b_intf))]
