"""What teamd's state dump (``teamdctl TEAM state dump``, JSON) says, in RedLab's terms:
which port carries the traffic (activebackup), which ports are selected into the
aggregator (lacp), and the lacp runner's ports as one end of a LAG for the LACP check
(harness.tech.lacp.check), so a team and the Open vSwitch LAG it faces show side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.tech.lacp.check import EndMember, LagEnd
from harness.tech.lacp.state import NO_SYSTEM, LacpInfo, PortState


@dataclass(frozen=True)
class TeamView:
    runner: str
    active: str | None               # activebackup: the port in use
    selected: frozenset[str]         # lacp: the ports in the selected aggregator
    link_up: frozenset[str]          # ports whose link watch says up

    def carrying(self) -> frozenset[str]:
        """The ports that carry traffic now."""
        if self.runner == "activebackup":
            return frozenset({self.active}) if self.active else frozenset()
        return self.selected & self.link_up


def view(dump: Mapping[str, Any]) -> TeamView:
    ports: Mapping[str, Any] = dump.get("ports") or {}
    runner = str(dump.get("setup", {}).get("runner_name", ""))
    active = (dump.get("runner") or {}).get("active_port") or None
    return TeamView(
        runner=runner, active=active,
        selected=frozenset(p for p, s in ports.items()
                           if (s.get("runner") or {}).get("selected")),
        link_up=frozenset(p for p, s in ports.items()
                          if (s.get("link_watches") or {}).get("up")))


def ready_problem(dump: Mapping[str, Any] | None, members: tuple[str, ...]) -> str | None:
    """Why an activebackup team is not ready yet (None when it is): every member a
    port with link, one of them active."""
    if dump is None:
        return "teamd does not answer"
    seen = view(dump)
    if missing := [m for m in members if m not in (dump.get("ports") or {})]:
        return f"ports {missing} are not in the team"
    if down := [m for m in members if m not in seen.link_up]:
        return f"ports {down} have no link"
    if seen.active not in members:
        return f"no active port (teamd says {seen.active!r})"
    return None


def lag_end(dump: Mapping[str, Any] | None, label: str) -> LagEnd:
    """The lacp runner's ports as one end of a LAG (check.verdict compares the ends)."""
    if dump is None:
        return LagEnd(label, (), (f"{label}: teamd does not answer",))
    members = []
    for name, port in sorted((dump.get("ports") or {}).items()):
        runner = port.get("runner") or {}
        aggregator = runner.get("aggregator") or {}
        members.append(EndMember(
            name=name, aggregate=f"agg {aggregator.get('id', '-')}"
                                 + (", selected" if runner.get("selected") else ""),
            in_aggregate=bool(runner.get("selected")),
            actor=_info(runner.get("actor_lacpdu_info")),
            partner=_info(runner.get("partner_lacpdu_info")),
            status=str(runner.get("state", ""))))
    problems = []
    if not members:
        problems.append(f"{label}: no ports")
    ids = {m.aggregate for m in members if m.in_aggregate}
    if len(ids) > 1:
        problems.append(f"{label}: selected ports in {len(ids)} aggregators")
    if any(m.partner is None or m.partner.system == NO_SYSTEM for m in members):
        problems.append(f"{label}: a port has heard no partner")
    return LagEnd(label, tuple(members), tuple(problems))


def _info(raw: Mapping[str, Any] | None) -> LacpInfo | None:
    if not raw:
        return None
    return LacpInfo(system=str(raw.get("system", NO_SYSTEM)).lower(),
                    system_priority=int(raw.get("system_priority", 0)),
                    key=int(raw.get("key", 0)), port=int(raw.get("port", 0)),
                    port_priority=int(raw.get("port_priority", 0)),
                    state=PortState(int(raw.get("state", 0))))
