"""The team driver as a lab technology: each team's teamd started once the cables exist
(it creates the team device and takes the ports), bring-up waiting until the team is
ready (activebackup: every port with link, one active; lacp: the ports selected with the
Open vSwitch LAG they face, both ends' LACP table checked as for a bond), a watcher per
team recording which ports carry the traffic during a trial, and the summary columns
that say when teamd moved it.  No prediction: teamd's ethtool link watch reacts to the
carrier event itself, then waits delay_down; how long it takes beyond that is what the
trials measure (see the README's team section for the figures)."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.tech.base import Daemon, Technology, Watcher
from harness.tech.lacp import check
from harness.tech.lacp import ovs as lacp_ovs
from harness.tech.team import state as team_state
from harness.tech.team.config import TECH, Team, teamd_config
from harness.tech.team.daemon import Teamd
from harness.topology.model import Topology

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.summary import TrialRecord

log = logging.getLogger(__name__)
TEAM_POLL_S = 0.05  # each poll runs teamdctl: the resolution of team_failover_detected_ms


class Teams(Technology):
    """Every team (teamd) of the topology."""

    name = "team"
    kernel_features = ("team",)

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.daemons_by_key: dict[str, Teamd] = {}
        self.ready: dict[str, dict[str, Any]] = {}   # key -> state dump once ready
        self.tables: dict[str, str] = {}             # key -> LACP table (lacp runner)
        self._watchers: list[TeamWatcher] = []

    @staticmethod
    def teams(topo: Topology) -> list[Team]:
        return topo.declared(TECH)

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(cls.teams(topo))

    @classmethod
    def check(cls, topo: Topology) -> list[str]:
        problems = []
        for team in cls.teams(topo):
            problems += team.problems()
            node = topo.nodes.get(team.node)
            if node is None or node.kind != "host":
                problems.append(f"team {team.node}:{team.name}: {team.node!r} is not a"
                                " declared host")
                continue
            for member in team.members:
                if _far(topo, team.node, member) is None:
                    problems.append(f"team {team.node}:{team.name}: member {member!r} is"
                                    " not cabled")
            if team.runner == "lacp" and cls._faced_lag(topo, team) is None:
                problems.append(f"team {team.node}:{team.name}: the lacp runner needs its"
                                " members cabled to one Open vSwitch LAG")
        return problems

    @classmethod
    def declared_daemons(cls, topo: Topology) -> dict[str, tuple[str, ...]]:
        return {team.node: ("teamd",) for team in cls.teams(topo)}

    @staticmethod
    def _faced_lag(topo: Topology, team: Team) -> tuple[str, str, dict[str, str]] | None:
        """(switch, LAG, member -> switch port) of the one LAG the team is cabled to."""
        ends = {m: _far(topo, team.node, m) for m in team.members}
        lags = {(lag.switch, lag.name) for lag in topo.lags for m, end in ends.items()
                if end and end[0] == lag.switch and end[1] in lag.ports}
        if len(lags) != 1:
            return None
        (switch, lag), = lags
        return switch, lag, {m: end[1] for m, end in ends.items() if end}

    # -- life cycle ----------------------------------------------------------------------
    def build(self) -> None:
        """Each teamd creates its team device and takes the ports (down first: the team
        driver refuses a port that is up); the device comes up before addressing."""
        if self.lab.workdir is None:
            raise LabError("a topology with a team needs a folder for teamd's files",
                           "pass workdir= to Lab (the runner gives the trial folder)")
        for team in self.teams(self.lab.topo):
            ipr = self.lab.ipr(team.node)
            for member in team.members:
                # A bond's members fall silent on IPv6 (the kernel skips IFF_SLAVE
                # devices); a team's ports do not: given the team's MAC address, a
                # standby port sent its MLD and DAD frames with it, the switch learned
                # the server behind the standby port, and traffic to the server was
                # dropped there for up to 3.8 s, until the server spoke on its active
                # port again (seen in 4 of 5 trials, before traffic started).
                self.lab.sysctl(team.node, f"net.ipv6.conf.{member}.disable_ipv6", "1")
                ipr.link("set", index=ipr.link_lookup(ifname=member)[0], state="down")
            daemon = Teamd(team, self.lab.workdir / "teamd" / team.node,
                           functools.partial(self.lab.popen, team.node))
            self.daemons_by_key[_key(team)] = daemon
            daemon.start()
            ipr.link("set", index=ipr.link_lookup(ifname=team.name)[0], state="up")

    def start(self) -> None:
        for team in self.teams(self.lab.topo):
            daemon = self.daemons_by_key[_key(team)]
            if team.runner == "lacp":
                self.tables[_key(team)] = self._negotiated(team, daemon).table
            else:
                self._wait_active(team, daemon)
            self.ready[_key(team)] = daemon.state() or {}

    def _wait_active(self, team: Team, daemon: Teamd) -> None:
        last: list[str | None] = [None]

        def ready() -> bool:
            last[0] = team_state.ready_problem(daemon.state(), team.members)
            return last[0] is None

        try:
            timeouts.wait_for(f"team {daemon.where} to be ready", ready,
                              timeouts.TEAM_READY, 0.2)
        except LabError:
            raise LabError(f"team {daemon.where} (activebackup) is not ready: {last[0]}",
                           f"read {daemon.log} and `teamdctl {team.name} state` in"
                           f" {team.node}") from None

    def _negotiated(self, team: Team, daemon: Teamd) -> check.Verdict:
        switch, lag, ports = self._faced_lag(self.lab.topo, team)  # type: ignore[misc]
        lab = self.lab

        def sides() -> tuple[check.LagEnd, lacp_ovs.OvsLacp]:
            return (team_state.lag_end(daemon.state(), f"teamd {team.name}"),
                    lacp_ovs.read_ovs(lab.ifname(switch, lag)))

        return check.wait_negotiated(sides, timeouts.LACP_NEGOTIATED + 2.0, links={
            m: lab.ifname(switch, p) for m, p in ports.items()}, give_up=check.hopeless)

    def stop(self) -> None:
        for key, daemon in reversed(self.daemons_by_key.items()):
            try:
                daemon.stop()
            except Exception as exc:  # the journal still kills what is left
                log.warning("stopping teamd %s: %s", key, exc)

    # -- what the lab and the runner ask -----------------------------------------------
    def state(self) -> dict[str, Any]:
        topo = self.lab.topo
        return {"teams": {
            _key(t): {**_facts(self.ready.get(_key(t))), "requested": teamd_config(t),
                      "cabled_to": {m: ":".join(_far(topo, t.node, m) or ("?", "?"))
                                    for m in t.members}}
            for t in self.teams(topo)},
            "team_lacp_negotiated": {k: v.splitlines() for k, v in self.tables.items()}}

    def daemons(self, node: str) -> list[Daemon]:
        return [Daemon("teamd", node, functools.partial(_running, d), d.pids, d.start)
                for d in self.daemons_by_key.values() if d.team.node == node]

    def rebooted(self, node: str) -> None:
        """A server back from the dead: its teamd starts afresh and takes its team over."""
        for daemon in self.daemons_by_key.values():
            if daemon.team.node == node and not daemon.running():
                daemon.start()

    @classmethod
    def aliases(cls, topo: Topology, node: str) -> tuple[str, ...]:
        return ("active",) if any(t.node == node and t.runner == "activebackup"
                                  for t in cls.teams(topo)) else ()

    def interface_alias(self, node: str, alias: str) -> str | None:
        """``active``: the port an activebackup team sends on now."""
        daemon = next((d for d in self.daemons_by_key.values() if d.team.node == node),
                      None)
        if alias != "active" or daemon is None:
            return None
        return team_state.view(daemon.state() or {}).active or ""

    def watchers(self, events: EventLog) -> list[Watcher]:
        self._watchers = [TeamWatcher(d, events) for d in self.daemons_by_key.values()]
        return list(self._watchers)

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        """teamd's own word at the end (teams.json), beside what the watchers saw first."""
        final = {w.key: w.daemon.state() for w in self._watchers}
        (trial_dir / "teams.json").write_text(json.dumps(final, indent=2))
        return {"carrying_before": {w.key: sorted(w.first.carrying()) for w in self._watchers},
                "carrying_after": {k: sorted(team_state.view(s).carrying()) if s else None
                                   for k, s in final.items()}}

    @staticmethod
    def columns(trial: TrialRecord, row: Mapping[str, Any]) -> Mapping[str, Any]:
        from harness.results.summary import call_start_ns

        facts = trial.facts.get(TECH)
        if not facts:
            return {}
        cut = trial.failure
        since = call_start_ns(trial) if cut else trial.end_ns
        moved = next((e for e in trial.events if e["kind"] == "team_ports_changed"
                      and cut and e["t_ns"] >= since), None)
        return {
            "team_ports_before": _joined(facts["carrying_before"]),
            "team_ports_after": _joined(facts["carrying_after"]),
            # the failure -> the first poll that saw teamd move the traffic (50 ms polls)
            "team_failover_detected_ms": (round((moved["t_ns"] - cut["t_ns"]) / 1e6, 3)
                                          if moved and cut else math.nan),
        }


    @staticmethod
    def phrase(row: Mapping[str, Any]) -> str | None:
        if "team_ports_before" not in row:
            return None
        return (f"team ports {row['team_ports_before']} -> {row['team_ports_after']},"
                f" moved {row['team_failover_detected_ms']} ms after the failure")


class TeamWatcher(Watcher):
    """Records each change of the ports that carry a team's traffic, as teamd says."""

    def __init__(self, daemon: Teamd, events: EventLog) -> None:
        super().__init__(f"team-watch-{daemon.where}", TEAM_POLL_S)
        self.daemon, self.events, self.key = daemon, events, daemon.where
        self.first = self.view = team_state.view(daemon.state() or {})

    def poll(self) -> None:
        dump = self.daemon.state()
        if dump is None:
            return  # teamd gone (a device death): nothing to say until it is back
        view = team_state.view(dump)
        if view.carrying() != self.view.carrying():
            self.events.add("team_ports_changed", self.daemon.team.node,
                            f"{_names(self.view.carrying())} -> {_names(view.carrying())}")
        self.view = view


def _far(topo: Topology, node: str, intf: str) -> tuple[str, str] | None:
    try:
        return topo.far_end(node, intf)
    except ConfigError:
        return None


def _key(team: Team) -> str:
    return f"{team.node}:{team.name}"


def _facts(dump: Mapping[str, Any] | None) -> dict[str, Any]:
    if not dump:
        return {}
    seen = team_state.view(dump)
    return {"runner": seen.runner, "active_port": seen.active,
            "selected": sorted(seen.selected), "link_up": sorted(seen.link_up)}


def _running(daemon: Teamd) -> Any:
    return daemon.proc if daemon.running() else None


def _names(ports: frozenset[str]) -> str:
    return ",".join(sorted(ports)) if ports else "none"


def _joined(by_team: Mapping[str, Any]) -> str:
    return ";".join(f"{k}:{'+'.join(v) if v else 'none'}" for k, v in by_team.items())
