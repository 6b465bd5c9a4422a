"""A team as the topology declares it, checked before anything exists, and the teamd
configuration (JSON, teamd.conf(5)) it becomes.

The options keep teamd.conf's own names: ``runner`` (``activebackup`` or ``lacp``), the
ethtool link watch's ``delay_up`` and ``delay_down`` (ms a port's carrier must stay up or
down before teamd acts on it; the watch itself is event-driven, not polled), the lacp
runner's ``active`` and ``fast_rate`` and its ``tx_hash``, the activebackup runner's
``hwaddr_policy``.  A topology adds a team with :func:`add_team`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.naming import check_ifname

TECH = "team"  # the key of its declarations in Topology.declarations
RUNNERS = ("activebackup", "lacp")
TX_HASH = ("eth", "vlan", "ipv4", "ipv6", "ip", "l3", "tcp", "udp", "sctp", "l4")
HWADDR_POLICIES = ("same_all", "by_active", "only_active")


@dataclass(frozen=True)
class Team:
    node: str
    name: str
    members: tuple[str, ...]
    runner: str = "activebackup"
    delay_up: int = 0
    delay_down: int = 0
    active: bool = True               # lacp: send LACPDUs unasked
    fast_rate: bool = True            # lacp: ask the partner for one every second
    tx_hash: tuple[str, ...] = ("eth", "ipv4", "ipv6", "l4")  # lacp: the flow hash
    hwaddr_policy: str = "same_all"   # activebackup: whose MAC address the ports show
    extra: dict[str, Any] = field(default_factory=dict)  # unknown options: an error

    def problems(self) -> list[str]:
        where = f"team {self.node}:{self.name}"
        found = [f"{where}: unknown option {k!r} (teamd.conf names: runner, delay_up,"
                 " delay_down, active, fast_rate, tx_hash, hwaddr_policy)"
                 for k in self.extra]
        if self.runner not in RUNNERS:
            found.append(f"{where}: runner {self.runner!r} is not one of {', '.join(RUNNERS)}")
        if len(self.members) < 1 or len(set(self.members)) != len(self.members):
            found.append(f"{where}: members {list(self.members)} (give each port once)")
        for name in ("delay_up", "delay_down"):
            if not 0 <= getattr(self, name) <= 60000:
                found.append(f"{where}: {name}={getattr(self, name)} (0 to 60000 ms)")
        if bad := [h for h in self.tx_hash if h not in TX_HASH]:
            found.append(f"{where}: tx_hash {bad} (known: {', '.join(TX_HASH)})")
        if self.hwaddr_policy not in HWADDR_POLICIES:
            found.append(f"{where}: hwaddr_policy {self.hwaddr_policy!r} (one of"
                         f" {', '.join(HWADDR_POLICIES)})")
        try:
            check_ifname(self.name)
        except ValueError as exc:
            found.append(f"{where}: {exc}")
        return found


def add_team(topo: Any, node: str, name: str, members: list[str], **options: Any) -> Team:
    """Declare a team on ``node`` (``topo.declare``); its options are checked with the
    rest of the topology (Teams.check)."""
    known = {k: v for k, v in options.items() if k in Team.__dataclass_fields__}
    extra = {k: v for k, v in options.items() if k not in known}
    if "tx_hash" in known:
        known["tx_hash"] = tuple(known["tx_hash"])
    return topo.declare(TECH, Team(node, name, tuple(members), extra=extra, **known))


def teamd_config(team: Team) -> dict[str, Any]:
    """The JSON teamd reads (-f): the device, its runner, the ethtool link watch with
    the team's delays, and every port."""
    runner: dict[str, Any] = {"name": team.runner}
    if team.runner == "lacp":
        runner.update(active=team.active, fast_rate=team.fast_rate,
                      tx_hash=list(team.tx_hash))
    else:
        runner["hwaddr_policy"] = team.hwaddr_policy
    return {"device": team.name, "runner": runner,
            "link_watch": {"name": "ethtool", "delay_up": team.delay_up,
                           "delay_down": team.delay_down},
            "ports": {member: {} for member in team.members}}
