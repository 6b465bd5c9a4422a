"""LACP as a Linux 802.3ad bond sees it: ``/proc/net/bonding/<bond>``, parsed.

:func:`linux_lacp` turns the bond's status file into a :class:`LinuxLacp`;
:func:`read_linux` reads it from the namespace of a process; :func:`distributing` and
:class:`Membership` say which members carry traffic, :func:`negotiated` whether all do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import LabError
from harness.tech.lacp.state import (
    NEGOTIATED,
    NO_SYSTEM,
    STALE,
    Aggregator,
    LacpInfo,
    PortState,
    int_or_none,
    int_or_zero,
)


@dataclass(frozen=True)
class LinuxMember:
    name: str
    mii_up: bool
    aggregator_id: int | None
    actor_churn: str | None
    partner_churn: str | None
    # None when the file was read without CAP_NET_ADMIN: the kernel then omits the details.
    actor: LacpInfo | None
    partner: LacpInfo | None


@dataclass(frozen=True)
class LinuxLacp:
    bond: str
    mode: str
    lacp_active: bool | None   # "LACP active" (kernel >= 5.15); None if not printed
    lacp_rate: str | None      # fast / slow
    ad_select: str | None
    system_priority: int | None
    system_mac: str | None
    aggregator: Aggregator | None
    members: dict[str, LinuxMember] = field(default_factory=dict)


@dataclass
class _RawMember:
    name: str
    fields: dict[str, str] = field(default_factory=dict)
    pdus: dict[str, dict[str, str]] = field(default_factory=dict)  # "actor"/"partner"


def linux_lacp(text: str, bond: str = "") -> LinuxLacp:
    """Parse ``/proc/net/bonding/<bond>`` of an 802.3ad bond."""
    top: dict[str, str] = {}
    agg: dict[str, str] = {}
    members: list[_RawMember] = []
    block: dict[str, str] | None = None   # the indented block being read
    for raw in text.splitlines():
        line = raw.strip()
        if line == "Active Aggregator Info:":
            block = agg
            continue
        if line.startswith("details ") and line.endswith(" lacp pdu:") and members:
            block = members[-1].pdus.setdefault(line.split()[1], {})
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if raw[:1] not in (" ", "\t"):
            block = None
        if key == "Slave Interface":
            members.append(_RawMember(value.strip()))
        elif block is not None:
            block[key.strip()] = value.strip()
        else:
            (members[-1].fields if members else top)[key.strip()] = value.strip()
    if "802.3ad" not in top.get("Bonding Mode", ""):
        raise LabError(f"bond {bond or '?'} is not in 802.3ad mode"
                       f" ({top.get('Bonding Mode', 'no Bonding Mode line')})",
                       "LACP state exists only for mode 802.3ad bonds")
    aggregator = None
    if agg.get("Aggregator ID", "").isdigit():
        aggregator = Aggregator(int(agg["Aggregator ID"]),
                                int_or_zero(agg.get("Number of ports")),
                                int_or_zero(agg.get("Actor Key")),
                                int_or_zero(agg.get("Partner Key")),
                                agg.get("Partner Mac Address", NO_SYSTEM).lower())
    active = top.get("LACP active")
    return LinuxLacp(
        bond=bond, mode=top["Bonding Mode"],
        lacp_active=None if active is None else active == "on",
        lacp_rate=top.get("LACP rate"),
        ad_select=top.get("Aggregator selection policy (ad_select)"),
        system_priority=int_or_none(top.get("System priority")),
        system_mac=(top.get("System MAC address") or "").lower() or None,
        aggregator=aggregator, members={m.name: _linux_member(m) for m in members})


def _linux_member(raw: _RawMember) -> LinuxMember:
    f = raw.fields
    return LinuxMember(
        name=raw.name, mii_up=f.get("MII Status") == "up",
        aggregator_id=int_or_none(f.get("Aggregator ID")),
        actor_churn=f.get("Actor Churn State"), partner_churn=f.get("Partner Churn State"),
        actor=_linux_pdu(raw.pdus.get("actor")), partner=_linux_pdu(raw.pdus.get("partner")))


def _linux_pdu(block: dict[str, str] | None) -> LacpInfo | None:
    if not block or "port state" not in block:
        return None
    return LacpInfo(system=block.get("system mac address", NO_SYSTEM).lower(),
                    system_priority=int_or_zero(block.get("system priority")),
                    # The kernel prints the partner's key as "oper key".
                    key=int_or_zero(block.get("port key", block.get("oper key"))),
                    port=int_or_zero(block.get("port number")),
                    port_priority=int_or_zero(block.get("port priority")),
                    state=PortState(int_or_zero(block["port state"]) & 0xFF))


def distributing(side: LinuxLacp) -> frozenset[str]:
    """The members that carry traffic: link up, in the active aggregator, actor
    distributing.  (A member whose link went down keeps its last LACP state in the status
    file until the link returns, so the MII status decides first.)"""
    active = side.aggregator.id if side.aggregator else None
    return frozenset(m.name for m in side.members.values()
                     if m.mii_up and m.aggregator_id == active and m.actor is not None
                     and PortState.DISTRIBUTING in m.actor.state)


def negotiated(side: LinuxLacp) -> bool:
    """Every member distributing, its actor in sync, collecting and distributing, and
    its partner heard (not defaulted, not expired); True when the file lacks the details
    to judge (read without CAP_NET_ADMIN): a hint for a wait, never a verdict."""
    if any(m.actor is None for m in side.members.values()):
        return True
    return bool(side.members) and distributing(side) == set(side.members) and all(
        m.actor is not None and NEGOTIATED in m.actor.state and not m.actor.state & STALE
        for m in side.members.values())


class Membership:
    """The members distributing, over successive reads of one bond's status file.

    A member whose link went down keeps the LACP state it had until the state machine
    resets it, at its first tick (100 ms) after the link returns. In between the file
    shows it up, in the active aggregator and distributing, while the kernel holds it as
    a backup that sends nothing (UML 6.1: actor state 63 for 0.1 s, then 71, 199 and 7,
    and 63 again once negotiated 2.5 s later; tests/data/lacp/linux-member-return.txt).
    So a member seen down counts again only after a read that shows it not distributing.
    """

    def __init__(self) -> None:
        self._returning: set[str] = set()

    def update(self, side: LinuxLacp) -> frozenset[str]:
        for member in side.members.values():
            if not member.mii_up:
                self._returning.add(member.name)
            elif member.actor is None or PortState.DISTRIBUTING not in member.actor.state:
                self._returning.discard(member.name)
        return distributing(side) - self._returning


def read_linux(bond: str, pid: int | str = "self") -> LinuxLacp:
    """The LACP state of ``bond`` in the network namespace of process ``pid``."""
    path = Path(f"/proc/{pid}/net/bonding/{bond}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc.strerror}",
                       "is the bond there, and is the process in its namespace alive?"
                       ) from None
    return linux_lacp(text, bond)
