"""MC-LAG as a lab technology: each leaf's bridge built around its bonds and the peer
link, RedLab's emulated control plane (harness.tech.mclag.agent) started on each leaf
and awaited until the pair has elected a primary and a secondary, its actions as events
on the trial's clock, and the summary columns that say what the pair did.

The leaves' bonds are ordinary kernel bonds (harness.tech.bond builds them, with the
pair's shared ``ad_actor_system``); LACP between them and each dual-homed server is
checked as one logical aggregate (harness.tech.lacp), after the agents are up.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import LabError
from harness.tech.base import Daemon, Sweep, Technology, Watcher
from harness.tech.bond.options import OPTIONS, netlink_value
from harness.tech.mclag import fdb, summary
from harness.tech.mclag.agent import STARTUP_RT_PRIORITY
from harness.tech.mclag.options import McLagPair
from harness.tech.mclag.watchers import AGGREGATOR_POLL_S, AgentEvents, ServerAggregators

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology

log = logging.getLogger(__name__)
DAEMON = "mclagd"


def pair_of(topo: Topology) -> McLagPair | None:
    found = topo.declared("mclag")
    return found[0] if found else None


class McLag(Technology):
    """The MC-LAG pair of the topology: bridges, control-plane agents, events."""

    name = "mclag"
    kernel_features = ("bonding", "flower")

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.pair: McLagPair = pair_of(lab.topo)  # type: ignore[assignment]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._watcher: AgentEvents | None = None
        self._aggregators: Sweep | None = None

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return pair_of(topo) is not None

    @classmethod
    def check(cls, topo: Topology) -> list[str]:
        pairs = topo.declared("mclag")
        if len(pairs) != 1:
            return [f"{len(pairs)} MC-LAG pairs declared; a topology has one"]
        pair: McLagPair = pairs[0]
        problems = []
        a, b = pair.leaves
        for leaf in pair.leaves:
            node = topo.nodes.get(leaf.node)
            if node is None or node.kind != "host":
                problems.append(f"MC-LAG leaf {leaf.node!r} is not a declared host (a leaf"
                                " is a namespace whose bridge the pair builds)")
                continue
            for server, bond in leaf.dual_homed.items():
                mine = [x for x in topo.bonds if x.node == leaf.node and x.name == bond]
                if not mine or mine[0].settings.mode != "802.3ad":
                    problems.append(f"MC-LAG leaf {leaf.node}: {bond} (for {server}) is not"
                                    " an 802.3ad bond of that leaf")
        if (a.peer_link, b.node, b.peer_link) not in _cables(topo, a.node):
            problems.append(f"MC-LAG: no peer link cable {a.node}:{a.peer_link} -"
                            f" {b.node}:{b.peer_link}")
        if (a.keepalive or b.keepalive) and (a.keepalive, b.node, b.keepalive) not in _cables(
                topo, a.node):
            problems.append(f"MC-LAG: no keepalive cable {a.node}:{a.keepalive} -"
                            f" {b.node}:{b.keepalive}")
        if set(a.dual_homed) != set(b.dual_homed):
            problems.append("MC-LAG: the leaves list different dual-homed servers ("
                            f"{', '.join(sorted(a.dual_homed))} / "
                            f"{', '.join(sorted(b.dual_homed))})")
        return problems

    @classmethod
    def declared_daemons(cls, topo: Topology) -> dict[str, tuple[str, ...]]:
        pair = pair_of(topo)
        return {leaf.node: (DAEMON,) for leaf in pair.leaves} if pair else {}

    # -- life cycle ----------------------------------------------------------------------
    def build(self) -> None:
        """Each leaf's bridge: its bonds, orphan ports and peer link as ports, learning
        off on the peer link (the control plane syncs MAC addresses instead)."""
        for leaf in self.pair.leaves:
            ipr = self.lab.ipr(leaf.node)
            ipr.link("add", ifname=self.pair.bridge, kind="bridge", br_stp_state=0)
            bridge = ipr.link_lookup(ifname=self.pair.bridge)[0]
            for port in leaf.ports:
                index = ipr.link_lookup(ifname=port)[0]
                ipr.link("set", index=index, master=bridge)
                ipr.link("set", index=index, state="up")
            ipr.brport("set", index=ipr.link_lookup(ifname=leaf.peer_link)[0], learning=0)
            if leaf.keepalive:
                ipr.link("set", index=ipr.link_lookup(ifname=leaf.keepalive)[0], state="up")
            ipr.link("set", index=bridge, state="up")

    def launch(self) -> None:
        if self.lab.workdir is None:
            raise LabError("a topology with MC-LAG needs a folder for its agents' files",
                           "pass workdir= to Lab (the runner gives the trial folder)")
        for leaf in self.pair.leaves:
            # at normal priority while they import: no traffic runs yet, and at a real-time
            # one the two imports held the guest's one CPU for 4.7 s between them, the
            # routers' keepalived with it (the agents take AGENT_RT_PRIORITY once started)
            self._start_agent(leaf.node, realtime_import=False)

    def start(self) -> None:
        self.wait_elected()

    def folder(self, node: str) -> Path:
        assert self.lab.workdir is not None
        return (self.lab.workdir / "mclag" / node).resolve()

    def _config(self, node: str, held: Sequence[str] = ()) -> dict[str, Any]:
        leaf, peer = self.pair.leaf(node), self.pair.peer_of(node)
        assert leaf is not None
        ipr = self.lab.ipr(node)
        bridge = ipr.get_links(ipr.link_lookup(ifname=self.pair.bridge)[0])[0]
        folder, o = self.folder(node), self.pair.options
        return {
            "leaf": node, "peer": peer.node, "bridge": self.pair.bridge,
            "peer_link": leaf.peer_link, "keepalive": leaf.keepalive,
            "system_id": leaf.system_id or o.system_id,
            "own_system_id": bridge.get_attr("IFLA_ADDRESS"),
            "role_priority": leaf.role_priority,
            "dual_homed": dict(leaf.dual_homed),
            "members": {bond: list(self.lab.topo.bond(node, bond).members)
                        for bond in leaf.dual_homed.values()},
            "orphans": list(leaf.orphans),
            "heartbeat_ms": o.heartbeat_ms, "peer_timeout_ms": o.peer_timeout_ms,
            "peer_link_policy": o.peer_link_policy,
            "dual_active_policy": o.dual_active_policy,
            "held": list(held), "delay_restore_ms": o.delay_restore_ms,
            "events": str(folder / "events.jsonl"), "status": str(folder / "status.json"),
        }

    def _start_agent(self, node: str, held: Sequence[str] = (),
                     realtime_import: bool = True) -> subprocess.Popen[bytes]:
        """``held``: ports down since a reboot, for the agent to bring up (delay restore);
        ``realtime_import``: at STARTUP_RT_PRIORITY from its first instruction."""
        folder = self.folder(node)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.json"
        config.write_text(json.dumps(self._config(node, held), indent=2))
        (folder / "status.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.tech.mclag.agent", str(config)]
        chrt = shutil.which("chrt")
        if chrt and realtime_import:  # real-time from its first instruction, but below
            # the running agents and the probe until its imports are done (it then takes
            # AGENT_RT_PRIORITY):
            # without it a leaf rebooted under traffic took 7 s to import its Python, and
            # at their priority its import held the one CPU of User-mode Linux for 2.2 s,
            # the running peer's heartbeats with it
            argv = [chrt, "--fifo", str(STARTUP_RT_PRIORITY), *argv]
        with open(folder / "agent.log", "ab") as out:
            proc = self.lab.popen(node, argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs[node] = proc
        return proc

    def status(self, node: str) -> dict[str, Any]:
        """The agent's last status file ({} before its first)."""
        try:
            return json.loads((self.folder(node) / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def roles(self) -> dict[str, str | None]:
        return {leaf.node: self.status(leaf.node).get("role") for leaf in self.pair.leaves}

    def wait_elected(self) -> None:
        """One primary and one secondary, each hearing the other: otherwise an error with
        both agents' status."""
        def elected() -> bool:
            for node, proc in self.procs.items():
                if proc.poll() is not None:
                    raise LabError(f"the MC-LAG agent on {node} exited with"
                                   f" {proc.returncode}",
                                   f"read {self.folder(node) / 'agent.log'}")
            statuses = [self.status(leaf.node) for leaf in self.pair.leaves]
            return (sorted(s.get("role") or "" for s in statuses) == ["primary", "secondary"]
                    and all(s.get("peer_alive") for s in statuses))

        budget = timeouts.MCLAG_ELECTED + 3 * self.pair.options.peer_timeout_ms / 1000
        try:
            timeouts.wait_for("the MC-LAG pair to elect a primary", elected, budget)
        except LabError as exc:
            if "exited" in exc.problem:
                raise
            raise LabError(f"the MC-LAG pair elected no primary/secondary: {self.roles()}",
                           "read agent.log and status.json under mclag/ in the trial"
                           " folder") from exc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for node, proc in self.procs.items():
            try:
                proc.wait(timeout=timeouts.PROCESS_EXIT)
            except subprocess.TimeoutExpired:
                log.warning("the MC-LAG agent on %s ignored SIGTERM: killing it", node)
                proc.kill()
                proc.wait(timeout=timeouts.PROCESS_EXIT)

    # -- what the lab and the runner ask -----------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"mclag": {"options": self.pair.options.model_dump(mode="json"),
                          "agents": {leaf.node: self.status(leaf.node)
                                     for leaf in self.pair.leaves}}}

    def daemons(self, node: str) -> list[Daemon]:
        if self.pair.leaf(node) is None:
            return []

        def running() -> subprocess.Popen[bytes] | None:
            proc = self.procs.get(node)
            return proc if proc is not None and proc.poll() is None else None

        def pids() -> list[int]:
            proc = running()
            return [proc.pid] if proc else []

        return [Daemon(DAEMON, node, running, pids, lambda: self._start_agent(node))]

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """A failure the pair must notice races the heartbeats."""
        pair = pair_of(topo)
        if pair is None or step.action == "degrade":
            return None
        return float(pair.options.heartbeat_ms)

    def held_after_reboot(self, node: str) -> list[str]:
        """A leaf's dual-homed member ports: its agent brings them up (delay restore)."""
        leaf = self.pair.leaf(node)
        if leaf is None:
            return []
        return sorted(port for bond in leaf.dual_homed.values()
                      for port in self.lab.topo.bond(node, bond).members)

    def rebooted(self, node: str) -> None:
        """A leaf back from the dead starts from its configuration, as after a real
        reboot: no static MAC entries (lost with its RAM: until its agent runs, frames
        for its peer's MACs flood, as on a fresh switch), the shared system id on its
        bonds (a revert it made is lost too), and a new agent, which installs split
        horizon and MAC entries again once it hears its peer and brings the dual-homed
        ports the harness held down back up after the delay restore."""
        leaf = self.pair.leaf(node)
        if leaf is None:
            return
        ipr = self.lab.ipr(node)
        bridge = ipr.link_lookup(ifname=self.pair.bridge)[0]
        fdb.remove_static(ipr, bridge, [ipr.link_lookup(ifname=port)[0] for port in (
            leaf.peer_link, *leaf.dual_homed.values())])
        shared = netlink_value(OPTIONS["ad_actor_system"],
                               leaf.system_id or self.pair.options.system_id)
        for bond in leaf.dual_homed.values():
            ipr.link("set", index=ipr.link_lookup(ifname=bond)[0], kind="bond",
                     bond_ad_actor_system=shared)
        proc = self.procs.get(node)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=timeouts.PROCESS_EXIT)
        self._start_agent(node, held=self.held_after_reboot(node))

    def watchers(self, events: EventLog) -> list[Watcher]:
        self._watcher = AgentEvents(self, events)
        self._aggregators = Sweep("mclag-aggregators", AGGREGATOR_POLL_S, [
            ServerAggregators(self.lab, server, events) for server in self.pair.servers()])
        return [self._watcher, self._aggregators]

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        if self._watcher is not None:
            self._watcher.poll()  # what the agents wrote since the last poll
        gap_ns = self._aggregators.longest_gap_ns if self._aggregators is not None else 0
        return {"roles_after": self.roles(),
                # how late a server's split may have been seen to start or end
                "aggregators_read_every_ms": round(gap_ns / 1e6, 1),
                "options": self.pair.options.model_dump(mode="json"),
                "servers": self.pair.servers(),
                "inter_leaf": sorted(f"{leaf.node}:{intf}" for leaf in self.pair.leaves
                                     for intf in (leaf.peer_link, leaf.keepalive) if intf)}

    @staticmethod
    def columns(trial: TrialRecord, row: Mapping[str, Any]) -> Mapping[str, Any]:
        return summary.columns(trial, row)

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """The window behind the mclag_predicted_* columns, as the generic one too."""
        return summary.window(trial)



def _cables(topo: Topology, node: str) -> set[tuple[str, str, str]]:
    """(node's interface, far node, far interface) for every cable of ``node``."""
    found = set()
    for link in topo.links:
        if link.a == node:
            found.add((link.a_intf, link.b, link.b_intf))
        if link.b == node:
            found.add((link.b_intf, link.a, link.a_intf))
    return found
