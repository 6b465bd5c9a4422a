"""VRRP as a lab technology: the keepalived of every router that the topology gives VRRP,
one daemon per router, started, checked and stopped with the lab; its state changes as
events on the trial's clock, and its summary columns (takeover beside the master down
interval, harness.measure.vrrp_timing) and the window that holds the takeover
(vrrp.prediction).

Bring-up ends only once VRRP has elected: exactly one router MASTER and every other
BACKUP, as each daemon's own notifications say (checked, not assumed, like LACP).  A
router that dies (``device_down``) loses its daemon without a goodbye and, on a real box,
everything in RAM: when it comes back the harness removes the virtual addresses the
killed daemon left on its interfaces and starts keepalived afresh, as a reboot would.
A crashed daemon (``daemon_crash``) is restarted as it is: the box stayed up, and so did
whatever addresses the daemon held.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import LabError
from harness.measure import vrrp_timing
from harness.tech.base import Daemon, Technology
from harness.tech.vrrp.daemon import Keepalived
from harness.tech.vrrp.notify import StateChange
from harness.tech.vrrp.options import master_down_interval, router_sysctls, vrrp_options
from harness.tech.vrrp.prediction import predict

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology

log = logging.getLogger(__name__)


class VrrpRouters(Technology):
    """The keepalived of every router that the topology gives VRRP."""

    name = "vrrp"

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.daemons_by_node: dict[str, Keepalived] = {}
        self._last_notice: dict[str, str] = {}

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(topo.vrrp)

    @classmethod
    def declared_daemons(cls, topo: Topology) -> dict[str, tuple[str, ...]]:
        return {v.node: ("keepalived",) for v in topo.vrrp}

    def _changed(self, change: StateChange) -> None:
        # keepalived repeats some notices (MASTER_RX_LOWER_PRI at every advert heard in
        # split brain): events keep the first of a run, notify.log keeps every one.
        detail = f"{change.state} {change.priority or ''}".strip()
        if self._last_notice.get(change.router) != detail and self.lab.events is not None:
            self._last_notice[change.router] = detail
            self.lab.events.add("vrrp_state", change.router, detail, t_ns=change.t_ns)

    def launch(self) -> None:
        """Start every router's keepalived, its files under ``<trial>/keepalived/<router>``
        (the election runs while the other technologies settle)."""
        if self.lab.workdir is None:
            raise LabError("a topology with VRRP needs a folder for keepalived's files",
                           "pass workdir= to Lab (the runner gives the trial folder)")
        folder = self.lab.workdir / "keepalived"
        for decl in self.lab.topo.vrrp:
            options = vrrp_options(decl.options)
            for key, value in router_sysctls(options).items():
                self.lab.sysctl(decl.node, key, value)
            daemon = Keepalived(
                decl.node, options, folder / decl.node,
                functools.partial(self.lab.popen, decl.node), netns=self.lab.netns(decl.node),
                journal=self.lab.journal, on_change=self._changed)
            self.daemons_by_node[decl.node] = daemon
            daemon.spawn_daemon()

    def start(self) -> None:
        """Return once every keepalived runs its VRRP process and VRRP has elected a
        master."""
        for daemon in self.daemons_by_node.values():
            daemon.wait_running()
        self.wait_elected()

    def wait_elected(self) -> str:
        """Return the master once VRRP has elected (:func:`election_over`), else an error
        with each router's state."""
        longest_s = max(_down_ns(d) for d in self.daemons_by_node.values()) / 1e9
        try:
            return timeouts.wait_for(
                "VRRP to elect one master",
                lambda: election_over(self.daemons_by_node, time.time_ns()),
                timeouts.VRRP_ELECTED + 3 * longest_s)
        except LabError as exc:
            raise LabError(f"VRRP elected no single master: {self.describe()}",
                           "read keepalived.log beside each router's keepalived.conf in the"
                           " trial folder") from exc

    def states(self) -> dict[str, str | None]:
        return {node: daemon.state for node, daemon in self.daemons_by_node.items()}

    def describe(self) -> str:
        return ", ".join(f"{node} {state or 'no state yet'}"
                         for node, state in self.states().items())

    def daemons(self, node: str) -> list[Daemon]:
        """``node``'s keepalived (its pids: parent, then VRRP child), if it runs one."""
        daemon = self.daemons_by_node.get(node)
        if daemon is None:
            return []
        return [Daemon("keepalived", node, lambda: _running(daemon), daemon.pids,
                       daemon.start)]

    def state(self) -> dict[str, Any]:
        """Each router's options as keepalived was given them: what the summary's
        prediction (master down interval) is computed from."""
        return {"vrrp": {node: d.options.model_dump(mode="json")
                         for node, d in self.daemons_by_node.items()}}

    @staticmethod
    def columns(trial: TrialRecord, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """Takeover, prediction, dual-master time and fail-back (vrrp_timing), with the
        takeover counted from when a dead box's keepalived froze, a few ms before its
        links went down: the backup's master-down timer runs from its last advert."""
        from harness.results.summary import call_start_ns

        options = trial.lab.get("vrrp")
        if not options:
            return {}
        cut, restore = trial.failure, trial.first("restore")
        silenced = trial.facts["failures"][0]["silenced_ns"] if cut else None
        failure_ns, since_ns = ((sum(silenced) // 2, silenced[0]) if silenced
                                else (cut["t_ns"] if cut else None, call_start_ns(trial)))
        return vrrp_timing.vrrp_columns(
            trial.events, {node: vrrp_options(o) for node, o in options.items()},
            trial.t0_ns, failure_ns, since_ns, restore["t_ns"] if restore else None,
            trial.end_ns)

    @staticmethod
    def phrase(row: Mapping[str, Any]) -> str | None:
        if "vrrp_master_before" not in row:
            return None
        dual = (f", two masters for {row['vrrp_dual_master_ms']} ms"
                if row["vrrp_masters_max"] > 1 else "")
        return (f"VRRP master {row['vrrp_master_before']} -> {row['vrrp_new_master'] or 'none'}"
                f" after {row['vrrp_takeover_ms']} ms (master down interval"
                f" {row['vrrp_master_down_ms']} ms){dual}, {row['vrrp_master_after']} at the end")

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """A master's death, crash, lost link or silenced adverts race the backup's
        advert clock."""
        if not topo.vrrp or step.action == "degrade":
            return None
        return 1000 * max(vrrp_options(v.options).advert_int for v in topo.vrrp)

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """The master down interval's window on the takeover (vrrp.prediction), from the
        columns above."""
        return predict(trial, row)

    def rebooted(self, node: str) -> None:
        """A router back from the dead: what the killed daemon held is gone, as after a
        power cycle, and keepalived starts again."""
        daemon = self.daemons_by_node.get(node)
        if daemon is None:
            return
        ipr = self.lab.ipr(node)
        for address in daemon.options.virtual_ipaddress:
            iface = ipaddress.ip_interface(address.address)
            for held in ipr.get_addr(address=str(iface.ip)):
                ipr.addr("del", index=held["index"], address=str(iface.ip),
                         prefixlen=iface.network.prefixlen)
        daemon.start()

    def stop(self) -> None:
        # All told at once: stopped one by one, each would hand the gateway to the next
        # (a priority-0 advert) and the teardown would read as failovers.
        for daemon in self.daemons_by_node.values():
            daemon.terminate()
        for node, daemon in reversed(self.daemons_by_node.items()):
            try:
                daemon.stop()
            except Exception as exc:  # the journal still kills what is left
                log.warning("stopping keepalived in %s: %s", node, exc)


def election_over(daemons: Mapping[str, Keepalived], now_ns: int) -> str | None:
    """The master, once VRRP has elected: one router MASTER, every other BACKUP, and no
    backup can still object.  A backup that does not hear the master says so only when
    its master down timer runs out, and it set that timer when it started (its first
    notification, "BACKUP (init)"), so the election is over once every backup's timer
    has run out since then, one advert_int allowed on top, and nothing changed for an
    advert_int (a preempted master steps down on the first advert it hears).  None
    before that."""
    states = {node: d.state for node, d in daemons.items()}
    masters = [node for node, state in states.items() if state == "MASTER"]
    if len(masters) != 1 or any(s != "BACKUP" for n, s in states.items() if n != masters[0]):
        return None
    changes = {node: d.changes for node, d in daemons.items()}  # one copy each
    for node, d in daemons.items():
        if node != masters[0] and now_ns - changes[node][0].t_ns < _down_ns(d) + _advert_ns(d):
            return None
    last_ns = max(c.t_ns for node_changes in changes.values() for c in node_changes)
    if now_ns - last_ns < max(_advert_ns(d) for d in daemons.values()):
        return None
    return masters[0]


def _down_ns(daemon: Keepalived) -> int:
    o = daemon.options
    return int(1e9 * master_down_interval(o.priority, o.advert_int, o.version))


def _advert_ns(daemon: Keepalived) -> int:
    return int(1e9 * daemon.options.advert_int)


def _running(daemon: Keepalived) -> Any:
    """The daemon's process while it runs (we are its parent), else None."""
    return daemon.proc if daemon.proc is not None and daemon.proc.poll() is None else None
