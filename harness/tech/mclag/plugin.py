"""MC-LAG as a lab technology: each leaf's bridge built around its bonds and the peer
link, RedLab's emulated control plane (harness.tech.mclag.agent) started on each leaf
and awaited until the pair has elected a primary and a secondary, its actions as events
on the trial's clock, and the summary columns that say what the pair did.

The leaves' bonds are ordinary kernel bonds (harness.tech.bond builds them, with the
pair's shared ``ad_actor_system``); LACP between them and each dual-homed server is
checked as one logical aggregate (harness.tech.lacp), after the agents are up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import LabError
from harness.tech.base import Daemon, Technology, Watcher
from harness.tech.bond.options import OPTIONS, netlink_value
from harness.tech.bond.status import status_text
from harness.tech.lacp.linux import linux_lacp
from harness.tech.mclag.agent import AGENT_RT_PRIORITY
from harness.tech.mclag.options import McLagPair

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.summary import TrialRecord
    from harness.topology.model import Topology

log = logging.getLogger(__name__)
DAEMON = "mclagd"
EVENT_POLL_S = 0.05
AGGREGATOR_POLL_S = 0.05


def pair_of(topo: Topology) -> McLagPair | None:
    found = topo.declared("mclag")
    return found[0] if found else None


class McLag(Technology):
    """The MC-LAG pair of the topology: bridges, control-plane agents, events."""

    name = "mclag"

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.pair: McLagPair = pair_of(lab.topo)  # type: ignore[assignment]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._watcher: AgentEvents | None = None
        self._aggregators: list[ServerAggregators] = []

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

    def start(self) -> None:
        if self.lab.workdir is None:
            raise LabError("a topology with MC-LAG needs a folder for its agents' files",
                           "pass workdir= to Lab (the runner gives the trial folder)")
        for leaf in self.pair.leaves:
            self._start_agent(leaf.node)
        self.wait_elected()

    def _folder(self, node: str) -> Path:
        assert self.lab.workdir is not None
        return (self.lab.workdir / "mclag" / node).resolve()

    def _config(self, node: str) -> dict[str, Any]:
        leaf, peer = self.pair.leaf(node), self.pair.peer_of(node)
        assert leaf is not None
        ipr = self.lab.ipr(node)
        bridge = ipr.get_links(ipr.link_lookup(ifname=self.pair.bridge)[0])[0]
        folder, o = self._folder(node), self.pair.options
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
            "events": str(folder / "events.jsonl"), "status": str(folder / "status.json"),
        }

    def _start_agent(self, node: str) -> subprocess.Popen[bytes]:
        folder = self._folder(node)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.json"
        config.write_text(json.dumps(self._config(node), indent=2))
        (folder / "status.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.tech.mclag.agent", str(config)]
        chrt = shutil.which("chrt")
        if chrt:  # real-time from its first instruction (see agent.AGENT_RT_PRIORITY):
            # a leaf rebooted under traffic took 7 s to import its Python without it
            argv = [chrt, "--fifo", str(AGENT_RT_PRIORITY), *argv]
        with open(folder / "agent.log", "ab") as out:
            proc = self.lab.popen(node, argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs[node] = proc
        return proc

    def status(self, node: str) -> dict[str, Any]:
        """The agent's last status file ({} before its first)."""
        try:
            return json.loads((self._folder(node) / "status.json").read_text())
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
                                   f"read {self._folder(node) / 'agent.log'}")
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

    def rebooted(self, node: str) -> None:
        """A leaf back from the dead starts from its configuration: the shared system id
        on its bonds (a revert it made is lost with its RAM) and a new agent, which
        installs split horizon and MAC entries again once it hears its peer."""
        leaf = self.pair.leaf(node)
        if leaf is None:
            return
        ipr = self.lab.ipr(node)
        shared = netlink_value(OPTIONS["ad_actor_system"],
                               leaf.system_id or self.pair.options.system_id)
        for bond in leaf.dual_homed.values():
            ipr.link("set", index=ipr.link_lookup(ifname=bond)[0], kind="bond",
                     bond_ad_actor_system=shared)
        proc = self.procs.get(node)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=timeouts.PROCESS_EXIT)
        self._start_agent(node)

    def watchers(self, events: EventLog) -> list[Watcher]:
        self._watcher = AgentEvents(self, events)
        self._aggregators = [ServerAggregators(self.lab, server, events)
                             for server in self.pair.servers()]
        return [self._watcher, *self._aggregators]

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        if self._watcher is not None:
            self._watcher.poll()  # what the agents wrote since the last poll
        return {"roles_after": self.roles(),
                "options": self.pair.options.model_dump(mode="json"),
                "servers": self.pair.servers()}

    @staticmethod
    def columns(trial: TrialRecord) -> Mapping[str, Any]:
        """What the pair did about the first failure before its repair, on the trial's
        clock (a leaf's death counted from when its agent fell silent): when a leaf
        noticed it over the heartbeats (beside the window the timers predict: the last
        heartbeat came up to one interval before the failure, so a path is declared
        down between peer_timeout - heartbeat and peer_timeout after it), when a policy
        acted, and how long each dual-homed server's bond stood split into two
        aggregators."""
        facts = trial.facts.get("mclag")
        if not facts:
            return {}
        options = facts["options"]
        cut = trial.failure
        # A dying leaf's agent stops sending when the harness freezes it, before its links
        # go down: its peer's timeout runs from there. As for VRRP, the failure counts
        # from the middle of the freezing call and reactions from its start (the call's
        # length, in trial.json, is the uncertainty).
        silenced = trial.facts["failures"][0].get("silenced_ns") if cut else None
        failure_ns = sum(silenced) // 2 if silenced else cut["t_ns"] if cut else 0
        since_ns = silenced[0] if silenced else failure_ns
        restore = trial.first("restore")
        until_ns = restore["t_ns"] if restore else trial.end_ns
        # what the pair did about the failure, not about its repair
        after = [e for e in trial.events if cut and since_ns <= e["t_ns"] < until_ns]

        def since_cut(kinds: tuple[str, ...]) -> tuple[float, str]:
            hit = next((e for e in after if e["kind"] in kinds), None)
            if hit is None or cut is None:
                return math.nan, ""
            return round((hit["t_ns"] - failure_ns) / 1e6, 3), f"{hit['node']} {hit['kind']}"

        detect_ms, detected = since_cut(DETECTIONS)
        action_ms, action = since_cut(POLICY_ACTIONS)
        row: dict[str, Any] = {
            "mclag_roles_after": ";".join(f"{k}:{v}" for k, v in facts["roles_after"].items()),
            "mclag_detect_ms": detect_ms, "mclag_detected": detected,
            "mclag_detect_predicted_min_ms": options["peer_timeout_ms"] - options["heartbeat_ms"],
            "mclag_detect_predicted_max_ms": options["peer_timeout_ms"],
            "mclag_action_ms": action_ms, "mclag_action": action,
        }
        for server in facts["servers"]:
            row[f"split_{server}_ms"] = _longest_split_ms(trial, server)
        return row


DETECTIONS = ("mclag_peer_link_down", "mclag_keepalive_down", "mclag_peer_lost")
POLICY_ACTIONS = ("mclag_ports_shut_down", "mclag_system_id_reverted", "mclag_role")


def _longest_split_ms(trial: TrialRecord, server: str) -> float:
    """The longest time ``server``'s bond had members up in two or more aggregators
    (0 when it never split)."""
    longest, since = 0.0, None
    for event in trial.events:
        if event["kind"] != "mclag_server_aggregators" or event["node"] != server:
            continue
        split = str(event["detail"]).partition(" -> ")[2].count("agg ") > 1
        if split and since is None:
            since = event["t_ns"]
        elif not split and since is not None:
            longest, since = max(longest, (event["t_ns"] - since) / 1e6), None
    if since is not None:
        longest = max(longest, (trial.end_ns - since) / 1e6)
    return round(longest, 3)


class AgentEvents(Watcher):
    """Copies what the agents write to their events files into the trial's events, on
    the agents' own timestamps (the same wall clock as the probe's)."""

    def __init__(self, mclag: McLag, events: EventLog) -> None:
        super().__init__("mclag-events", EVENT_POLL_S)
        self.mclag, self.events = mclag, events
        self.since_ns = time.time_ns()
        self._offsets: dict[str, int] = {}

    def poll(self) -> None:
        for leaf in self.mclag.pair.leaves:
            path = self.mclag._folder(leaf.node) / "events.jsonl"
            start = self._offsets.get(leaf.node, 0)
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
                complete = data[:data.rfind(b"\n") + 1]  # a line being written waits
                self._offsets[leaf.node] = start + len(complete)
                for line in complete.splitlines():
                    with contextlib.suppress(ValueError, KeyError):
                        event = json.loads(line)
                        if int(event["t_ns"]) >= self.since_ns:
                            self.events.add(f"mclag_{event['kind']}", leaf.node,
                                            _detail(event.get("detail")),
                                            t_ns=int(event["t_ns"]))


class ServerAggregators(Watcher):
    """How a dual-homed server's bond groups its members into aggregators, read from its
    kernel: one aggregator while the pair presents one system, two when a leaf falls back
    to its own system id (a dual-active split)."""

    def __init__(self, lab: Lab, server: str, events: EventLog) -> None:
        super().__init__(f"mclag-aggregators-{server}", AGGREGATOR_POLL_S)
        self.lab, self.server, self.events = lab, server, events
        self.bond = lab.topo.bond(server).name
        self.seen = self._read()

    def _read(self) -> dict[int | None, tuple[str, ...]]:
        side = linux_lacp(status_text(self.lab.pid(self.server), self.bond), self.bond)
        groups: dict[int | None, list[str]] = {}
        for member in side.members.values():
            if member.mii_up:
                groups.setdefault(member.aggregator_id, []).append(member.name)
        return {agg: tuple(sorted(names)) for agg, names in groups.items()}

    def poll(self) -> None:
        now = self._read()
        if now != self.seen:
            self.events.add("mclag_server_aggregators", self.server,
                            f"{_groups(self.seen)} -> {_groups(now)}")
            self.seen = now


def _detail(detail: Any) -> str:
    """An agent event's detail as one line: ``key=value`` pairs for a mapping."""
    if isinstance(detail, Mapping):
        return ", ".join(f"{k}={v}" for k, v in detail.items())
    return "" if detail is None else str(detail)


def _groups(groups: Mapping[int | None, tuple[str, ...]]) -> str:
    return "; ".join(f"agg {agg}: {','.join(names)}"
                     for agg, names in sorted(groups.items(), key=str)) or "none"


def _cables(topo: Topology, node: str) -> set[tuple[str, str, str]]:
    """(node's interface, far node, far interface) for every cable of ``node``."""
    found = set()
    for link in topo.links:
        if link.a == node:
            found.add((link.a_intf, link.b, link.b_intf))
        if link.b == node:
            found.add((link.b_intf, link.a, link.a_intf))
    return found
