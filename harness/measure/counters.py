"""How traffic spread over the members of every bond and LAG: kernel interface counters.

A LAG's capacity argument rests on which member carried which flows, so each trial
snapshots every member's counters (the kernel's, read from /proc/<pid>/net/dev of the
member's own namespace) when traffic starts and when it ends, and keeps the difference.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.lab.running import Lab

COUNTERS = ("tx_bytes", "rx_bytes", "tx_packets", "rx_packets")


@dataclass(frozen=True)
class Group:
    """The members of one aggregate: a host's bond or a switch's LAG."""

    node: str
    name: str
    members: tuple[str, ...]  # interface names as the topology gives them

    @property
    def label(self) -> str:
        return f"{self.node}:{self.name}"


def groups(lab: Lab) -> list[Group]:
    topo = lab.topo
    return ([Group(b.node, b.name, b.members) for b in topo.bonds]
            + [Group(g.switch, g.name, g.ports) for g in topo.lags])


def snapshot(lab: Lab, group: Group) -> dict[str, dict[str, int]]:
    """member -> counter -> value, now (0 for a member that is gone: a device's death
    took it)."""
    return snapshots(lab, [group])[group.label]


def snapshots(lab: Lab, many: list[Group]) -> dict[str, dict[str, dict[str, int]]]:
    """:func:`snapshot` of every group by label, each node's counters read once (a leaf
    switch holds a LAG per server)."""
    read: dict[str, dict[str, dict[str, int]]] = {}
    zero = dict.fromkeys(COUNTERS, 0)
    taken = {}
    for group in many:
        if group.node not in read:
            read[group.node] = net_dev(lab, group.node)
        found = read[group.node]
        taken[group.label] = {member: found.get(lab.ifname(group.node, member), zero)
                              for member in group.members}
    return taken


def net_dev(lab: Lab, node: str) -> dict[str, dict[str, int]]:
    """Every interface's counters in ``node``'s namespace, from ``/proc/<pid>/net/dev``
    (the kernel's dev_get_stats, as IFLA_STATS64): one read for the whole node, where a
    netlink request per member took 6.5 s for a leaf pair of 64 bonds in User-mode Linux.
    A switch is in the root namespace, the harness's own."""
    pid = "self" if lab.netns(node) is None else str(lab.pid(node))
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]  # two header lines
    found = {}
    for line in lines:
        name, _, numbers = line.partition(":")
        values = numbers.split()
        # receive: bytes packets errs drop fifo frame compressed multicast; then transmit
        found[name.strip()] = {"rx_bytes": int(values[0]), "rx_packets": int(values[1]),
                               "tx_bytes": int(values[8]), "tx_packets": int(values[9])}
    return found


@dataclass(frozen=True)
class MemberTraffic:
    group: str
    member: str
    tx_bytes: int
    rx_bytes: int
    tx_packets: int
    rx_packets: int
    tx_share: float  # of the group's tx bytes
    rx_share: float


def difference(group: Group, before: dict[str, dict[str, int]],
               after: dict[str, dict[str, int]]) -> list[MemberTraffic]:
    delta = {m: {k: after[m][k] - before[m][k] for k in COUNTERS} for m in group.members}
    tx = sum(d["tx_bytes"] for d in delta.values()) or 1
    rx = sum(d["rx_bytes"] for d in delta.values()) or 1
    return [MemberTraffic(group.label, m, d["tx_bytes"], d["rx_bytes"], d["tx_packets"],
                          d["rx_packets"], round(d["tx_bytes"] / tx, 4),
                          round(d["rx_bytes"] / rx, 4))
            for m, d in delta.items()]


def write(path: Path, rows: list[MemberTraffic]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "member", "tx_bytes", "rx_bytes", "tx_packets",
                         "rx_packets", "tx_share", "rx_share"])
        for r in rows:
            writer.writerow([r.group, r.member, r.tx_bytes, r.rx_bytes, r.tx_packets,
                             r.rx_packets, r.tx_share, r.rx_share])


def read(path: Path) -> list[MemberTraffic]:
    """What :func:`write` wrote; none where the trial had no bond or LAG (no file)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [MemberTraffic(r["group"], r["member"], int(r["tx_bytes"]), int(r["rx_bytes"]),
                              int(r["tx_packets"]), int(r["rx_packets"]), float(r["tx_share"]),
                              float(r["rx_share"]))
                for r in csv.DictReader(fh)]


def spread(rows: list[MemberTraffic], direction: str) -> str:
    """``eth0 52% / eth1 48%`` for one group's members in ``direction`` (tx or rx)."""
    return " / ".join(f"{r.member} {getattr(r, direction + '_share') * 100:.0f}%"
                      for r in rows)


def members_used(rows: list[MemberTraffic], direction: str, floor: float = 0.05) -> int:
    """How many members carried at least ``floor`` of the group's bytes in ``direction``."""
    return sum(getattr(r, direction + "_share") >= floor for r in rows)
