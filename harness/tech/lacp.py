"""LACP as each end of a LAG sees it: what the kernel and Open vSwitch print, parsed.

Readers turn what the kernel and Open vSwitch print into dataclasses:
``/proc/net/bonding/<bond>`` (:func:`linux_lacp`), ``ovs-appctl lacp/show <lag>``
(:func:`ovs_lacp`), ``ovs-appctl bond/show <lag>`` (:func:`ovs_bond`) and the datapath
counters of ``ovs-dpctl show`` (:func:`ovs_dp_lookups`).  Whether two ends agree is
:mod:`harness.tech.lacp_check`'s job.

Open vSwitch's kernel datapath inside a freshly booted User-mode Linux guest: ovs-vswitchd
3.1 (Debian 12) dispatches upcalls per CPU, and a datapath it creates before the kernel has
been up 10 s gets no upcall handler (its log says "Overriding n-handler-threads to 0").
Every packet that misses the flow table, every LACPDU among them, is then dropped
(``ovs-dpctl show``: ``lookups: hit:0 missed:N lost:N``); the handler that appears at 10 s
is not given to a datapath that already exists.  The OVS members stay "defaulted", OVS
slows its own LACPDUs to one per 30 s (a defaulted partner asks for slow), and the Linux
bond, 3 s without one, defaults too.  Create the first kernel-datapath bridge after 10 s of
uptime (or delete and re-create it then), or use the userspace datapath
(``datapath_type=netdev``, needs the ``tun`` module for the bridge's internal port).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace
from enum import IntFlag
from pathlib import Path

from harness import timeouts
from harness.errors import LabError

NO_SYSTEM = "00:00:00:00:00:00"


class PortState(IntFlag):
    """Actor/partner state octet of an LACPDU (IEEE 802.1AX-2014, 6.4.2.3)."""

    ACTIVITY = 0x01         # active LACP (else passive)
    TIMEOUT = 0x02          # short timeout: asks the partner for a PDU every second
    AGGREGATION = 0x04      # aggregatable (else individual)
    SYNCHRONIZATION = 0x08  # in the right aggregator, in sync with the partner
    COLLECTING = 0x10
    DISTRIBUTING = 0x20
    DEFAULTED = 0x40        # no PDU received: partner information is the default
    EXPIRED = 0x80          # PDUs stopped: partner information is running out

    @property
    def letters(self) -> str:
        """Eight positions, one per bit in order, a letter when set: ``ASGNCD..``."""
        return "".join(letter if self & bit else "." for bit, letter in _LETTERS)


_LETTERS = tuple(zip(PortState, "ASGNCDFE", strict=True))
LEGEND = ("A activity, S short timeout, G aggregatable, N in sync, C collecting,"
          " D distributing, F defaulted, E expired")
NEGOTIATED = PortState.SYNCHRONIZATION | PortState.COLLECTING | PortState.DISTRIBUTING
STALE = PortState.DEFAULTED | PortState.EXPIRED
# Open vSwitch's words for the bits (lib/lacp.c, ds_put_lacp_state).
_OVS_WORDS = {"activity": PortState.ACTIVITY, "timeout": PortState.TIMEOUT,
              "aggregation": PortState.AGGREGATION,
              "synchronized": PortState.SYNCHRONIZATION,
              "collecting": PortState.COLLECTING, "distributing": PortState.DISTRIBUTING,
              "defaulted": PortState.DEFAULTED, "expired": PortState.EXPIRED}


@dataclass(frozen=True)
class LacpInfo:
    """One port's identity and state as carried in an LACPDU (actor or partner part)."""

    system: str            # system id (MAC), lower case
    system_priority: int
    key: int
    port: int
    port_priority: int
    state: PortState


# -- Linux: /proc/net/bonding/<bond> --------------------------------------------------

@dataclass(frozen=True)
class Aggregator:
    """The bond's "Active Aggregator Info"."""

    id: int
    ports: int
    actor_key: int
    partner_key: int
    partner_mac: str


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
        aggregator = Aggregator(int(agg["Aggregator ID"]), _int(agg.get("Number of ports")),
                                _int(agg.get("Actor Key")), _int(agg.get("Partner Key")),
                                agg.get("Partner Mac Address", NO_SYSTEM).lower())
    active = top.get("LACP active")
    return LinuxLacp(
        bond=bond, mode=top["Bonding Mode"],
        lacp_active=None if active is None else active == "on",
        lacp_rate=top.get("LACP rate"),
        ad_select=top.get("Aggregator selection policy (ad_select)"),
        system_priority=_int_or_none(top.get("System priority")),
        system_mac=(top.get("System MAC address") or "").lower() or None,
        aggregator=aggregator, members={m.name: _linux_member(m) for m in members})


def _linux_member(raw: _RawMember) -> LinuxMember:
    f = raw.fields
    return LinuxMember(
        name=raw.name, mii_up=f.get("MII Status") == "up",
        aggregator_id=_int_or_none(f.get("Aggregator ID")),
        actor_churn=f.get("Actor Churn State"), partner_churn=f.get("Partner Churn State"),
        actor=_linux_pdu(raw.pdus.get("actor")), partner=_linux_pdu(raw.pdus.get("partner")))


def _linux_pdu(block: dict[str, str] | None) -> LacpInfo | None:
    if not block or "port state" not in block:
        return None
    return LacpInfo(system=block.get("system mac address", NO_SYSTEM).lower(),
                    system_priority=_int(block.get("system priority")),
                    # The kernel prints the partner's key as "oper key".
                    key=_int(block.get("port key", block.get("oper key"))),
                    port=_int(block.get("port number")),
                    port_priority=_int(block.get("port priority")),
                    state=PortState(_int(block["port state"]) & 0xFF))


def distributing(side: LinuxLacp) -> frozenset[str]:
    """The members that carry traffic: link up, in the active aggregator, actor
    distributing.  (A member whose link went down keeps its last LACP state in the status
    file until the link returns, so the MII status decides first.)"""
    active = side.aggregator.id if side.aggregator else None
    return frozenset(m.name for m in side.members.values()
                     if m.mii_up and m.aggregator_id == active and m.actor is not None
                     and PortState.DISTRIBUTING in m.actor.state)


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


# -- Open vSwitch: ovs-appctl lacp/show, bond/show, ovs-dpctl show --------------------

@dataclass(frozen=True)
class OvsLacpMember:
    name: str
    status: str        # current / expired / defaulted
    attached: bool
    port_id: int
    port_priority: int
    may_enable: bool
    actor: LacpInfo
    partner: LacpInfo


@dataclass(frozen=True)
class OvsLacp:
    lag: str
    active: bool       # lacp=active (else passive)
    negotiated: bool
    sys_id: str
    sys_priority: int
    key: int | None    # "aggregation key"
    lacp_time: str
    members: dict[str, OvsLacpMember] = field(default_factory=dict)


# "member: p1: current attached" (OVS >= 2.15) or "slave: p1: ..." (older).
_OVS_MEMBER = re.compile(r"^(?:member|slave):\s*(\S+):\s*(\w+)\s*(\w+)?\s*$")
_OVS_HEADER = re.compile(r"^---- (\S+) ----$")


def ovs_lacp(text: str, lag: str | None = None) -> OvsLacp:
    """Parse ``ovs-appctl lacp/show [lag]``: the LAG ``lag``, or the only one shown."""
    sections = _ovs_sections(text)
    name = _pick(sections, lag, "ovs-appctl lacp/show")
    head: dict[str, str] = {}
    members: list[tuple[re.Match[str], dict[str, str]]] = []
    for line in sections[name]:
        if found := _OVS_MEMBER.match(line):
            members.append((found, {}))
            continue
        key, _, value = line.partition(":")
        (members[-1][1] if members else head)[key.strip()] = value.strip()
    status = head.get("status", "").split()
    key = head.get("aggregation key", "none")
    return OvsLacp(lag=name, active="active" in status, negotiated="negotiated" in status,
                   sys_id=head.get("sys_id", NO_SYSTEM).lower(),
                   sys_priority=_int(head.get("sys_priority")),
                   key=int(key) if key.isdigit() else None,
                   lacp_time=head.get("lacp_time", ""),
                   members={m[1]: _ovs_lacp_member(m, f) for m, f in members})


def _ovs_lacp_member(found: re.Match[str], f: dict[str, str]) -> OvsLacpMember:
    def info(side: str) -> LacpInfo:
        words = f.get(f"{side} state", "").split()
        unknown = [w for w in words if w not in _OVS_WORDS]
        if unknown:
            raise LabError(f"unknown LACP state word(s) {unknown} in ovs-appctl lacp/show",
                           "this Open vSwitch prints states harness/tech/lacp.py does not"
                           " know: add them to _OVS_WORDS")
        state = PortState(0)
        for word in words:
            state |= _OVS_WORDS[word]
        return LacpInfo(system=f.get(f"{side} sys_id", NO_SYSTEM).lower(),
                        system_priority=_int(f.get(f"{side} sys_priority")),
                        key=_int(f.get(f"{side} key")), port=_int(f.get(f"{side} port_id")),
                        port_priority=_int(f.get(f"{side} port_priority")), state=state)

    return OvsLacpMember(name=found[1], status=found[2], attached=found[3] == "attached",
                         port_id=_int(f.get("port_id")),
                         port_priority=_int(f.get("port_priority")),
                         may_enable=f.get("may_enable") == "true",
                         actor=info("actor"), partner=info("partner"))


@dataclass(frozen=True)
class OvsBondMember:
    name: str
    enabled: bool
    may_enable: bool
    active: bool


@dataclass(frozen=True)
class OvsBond:
    lag: str
    bond_mode: str
    lacp_status: str          # negotiated / configured / off
    lacp_fallback_ab: bool | None
    detect_mode: str | None   # "bond-detect-mode", when this version prints it
    updelay_ms: int | None
    downdelay_ms: int | None
    active_member: str | None
    members: dict[str, OvsBondMember] = field(default_factory=dict)


_OVS_BOND_MEMBER = re.compile(r"^(?:member|slave)\s+(\S+):\s*(\w+)")


def ovs_bond(text: str, lag: str | None = None) -> OvsBond:
    """Parse ``ovs-appctl bond/show [lag]``."""
    sections = _ovs_sections(text)
    name = _pick(sections, lag, "ovs-appctl bond/show")
    head: dict[str, str] = {}
    members: dict[str, OvsBondMember] = {}
    current = ""
    for line in sections[name]:
        if found := _OVS_BOND_MEMBER.match(line):
            current = found[1]
            members[current] = OvsBondMember(current, found[2] == "enabled", False, False)
        elif current and line in ("active member", "active slave"):
            members[current] = replace(members[current], active=True)
        elif current and line.startswith("may_enable:"):
            members[current] = replace(members[current],
                                       may_enable=line.split(":", 1)[1].strip() == "true")
        elif not current:
            key, _, value = line.partition(":")
            head[key.strip()] = value.strip()
    active = [m.name for m in members.values() if m.active]
    fallback = head.get("lacp_fallback_ab")
    return OvsBond(
        lag=name, bond_mode=head.get("bond_mode", ""), lacp_status=head.get("lacp_status", ""),
        lacp_fallback_ab=None if fallback is None else fallback == "true",
        detect_mode=head.get("bond-detect-mode"),
        updelay_ms=_int_or_none(head.get("updelay", "").removesuffix(" ms")),
        downdelay_ms=_int_or_none(head.get("downdelay", "").removesuffix(" ms")),
        active_member=active[0] if active else None, members=members)


@dataclass(frozen=True)
class DpLookups:
    """A kernel datapath's packet counters: ``lost`` > 0 means upcalls are dropped."""

    datapath: str
    hit: int
    missed: int
    lost: int


def ovs_dp_lookups(text: str) -> dict[str, DpLookups]:
    """Parse the ``lookups:`` line of every datapath in ``ovs-dpctl show``."""
    found: dict[str, DpLookups] = {}
    name = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            name = line.rstrip(":")
        elif m := re.match(r"\s*lookups: hit:(\d+) missed:(\d+) lost:(\d+)", line):
            found[name] = DpLookups(name, int(m[1]), int(m[2]), int(m[3]))
    return found


def _ovs_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if found := _OVS_HEADER.match(line):
            current = sections.setdefault(found[1], [])
        elif line and current is not None:
            current.append(line)
    return sections


def _pick(sections: dict[str, list[str]], lag: str | None, what: str) -> str:
    if lag is not None and lag in sections:
        return lag
    if lag is None and len(sections) == 1:
        return next(iter(sections))
    raise LabError(f"{what} shows {', '.join(sections) or 'no LAG'}, not"
                   f" {lag or 'exactly one LAG'}",
                   "name the LAG (its Port name in ovsdb) and check it has lacp=active or"
                   " passive")


def _int(text: str | None) -> int:
    return int(text) if text and text.strip().isdigit() else 0


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


# -- readers ---------------------------------------------------------------------------

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


def _appctl(*args: str) -> str:
    argv = ["ovs-appctl", f"--timeout={timeouts.OVS_COMMAND:g}", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=timeouts.OVS_COMMAND + 1)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)} failed: {exc}", "is ovs-vswitchd running?") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {done.stderr.strip()}",
                       "is ovs-vswitchd running and the LAG configured with lacp?")
    return done.stdout


def read_ovs(lag: str) -> OvsLacp:
    return ovs_lacp(_appctl("lacp/show", lag), lag)


def read_ovs_bond(lag: str) -> OvsBond:
    return ovs_bond(_appctl("bond/show", lag), lag)



# Either end of a LAG, as read.
LacpSide = LinuxLacp | OvsLacp
