"""LACP as both ends of a LAG see it, and the check that they agree.

Readers turn what the kernel and Open vSwitch print into dataclasses:
``/proc/net/bonding/<bond>`` (:func:`linux_lacp`), ``ovs-appctl lacp/show <lag>``
(:func:`ovs_lacp`), ``ovs-appctl bond/show <lag>`` (:func:`ovs_bond`) and the datapath
counters of ``ovs-dpctl show`` (:func:`ovs_dp_lookups`).  :func:`check_negotiated` takes
the two ends of one LAG (Linux-OVS, Linux-Linux or OVS-OVS) and says whether every
member is aggregated, both ways, with the other end's identity; on disagreement the
LabError shows both ends' members side by side.

A member is negotiated (IEEE 802.1AX, 6.4) when its actor *and* partner state say
synchronized, collecting and distributing, neither is defaulted or expired, the partner
system id and key it holds are the other end's actor system id and key, and it is in
the end's one aggregator (Linux: the active aggregator; Open vSwitch: attached).

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
from collections.abc import Callable, Mapping
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


# -- checking --------------------------------------------------------------------------

LacpSide = LinuxLacp | OvsLacp


@dataclass(frozen=True)
class EndMember:
    """One member as the check sees it, whichever implementation it came from."""

    name: str
    aggregate: str        # shown in the table: Linux aggregator id, OVS attached/detached
    in_aggregate: bool
    actor: LacpInfo | None
    partner: LacpInfo | None
    status: str = ""      # OVS: current / expired / defaulted


@dataclass(frozen=True)
class LagEnd:
    label: str            # "linux bond0", "ovs lag0"
    members: tuple[EndMember, ...]
    problems: tuple[str, ...] = ()   # end-wide: no active aggregator, LACP not negotiated


def lag_end(side: LacpSide, label: str | None = None) -> LagEnd:
    """The neutral view of one end of a LAG, for :func:`verdict`."""
    label = label or _label(side, "")
    if isinstance(side, LinuxLacp):
        return _linux_end(side, label)
    return _ovs_end(side, label)


def _label(side: LacpSide | LagEnd | None, default: str) -> str:
    if isinstance(side, LinuxLacp):
        return f"linux {side.bond or 'bond'}"
    if isinstance(side, OvsLacp):
        return f"ovs {side.lag}"
    return side.label if isinstance(side, LagEnd) else default


def _linux_end(side: LinuxLacp, label: str) -> LagEnd:
    active = side.aggregator.id if side.aggregator else None
    problems = []
    if active is None:
        problems.append(f"{label}: no active aggregator")
    elif side.aggregator and side.aggregator.ports != len(side.members):
        problems.append(f"{label}: the active aggregator {active} has"
                        f" {side.aggregator.ports} of {len(side.members)} members")
    if any(m.actor is None for m in side.members.values()):
        problems.append(f"{label}: the LACP details are missing: read"
                        f" /proc/net/bonding/{side.bond or '<bond>'} as root")
    members = tuple(EndMember(
        name=m.name, aggregate=(f"agg {m.aggregator_id}" if m.aggregator_id else "agg -")
        + ("" if m.mii_up else ", mii down"),
        in_aggregate=m.mii_up and active is not None and m.aggregator_id == active,
        actor=m.actor, partner=m.partner) for m in side.members.values())
    return LagEnd(label, members, tuple(problems))


def _ovs_end(side: OvsLacp, label: str) -> LagEnd:
    problems = [] if side.negotiated else [f"{label}: LACP status is not negotiated"]
    members = tuple(EndMember(
        name=m.name, aggregate=("attached" if m.attached else "detached")
        + ("" if m.may_enable else ", disabled"),
        in_aggregate=m.attached and m.may_enable, actor=m.actor, partner=m.partner,
        status=m.status) for m in side.members.values())
    return LagEnd(label, members, tuple(problems))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: tuple[str, ...]
    pairs: tuple[tuple[EndMember | None, EndMember | None], ...]   # linked members
    table: str            # both ends side by side, one row per link

    def __bool__(self) -> bool:
        return self.ok


def verdict(a: LacpSide | LagEnd | None, b: LacpSide | LagEnd | None, *,
            links: Mapping[str, str] | None = None) -> Verdict:
    """Whether the two ends of one LAG agree; never raises for a disagreement.

    ``links`` maps a member of ``a`` to the member of ``b`` it is cabled to; without it
    members are paired by the port numbers they exchanged, and those that exchanged
    nothing are paired in name order.
    """
    label_a, label_b = _label(a, "end A"), _label(b, "end B")
    if label_a == label_b:   # e.g. two bonds of one name, in two namespaces
        label_a, label_b = f"{label_a} (end A)", f"{label_b} (end B)"
    end_a, end_b = _as_end(a, label_a), _as_end(b, label_b)
    ends = (end_a, end_b)
    problems = [p for end in ends for p in end.problems]
    pairs = _pair(end_a, end_b, links)
    for left, right in pairs:
        for this, this_end, other, other_end in ((left, end_a, right, end_b),
                                                 (right, end_b, left, end_a)):
            if this is None:
                problems.append(f"{other_end.label} {other.name if other else '?'}: no"
                                f" linked member in {this_end.label}")
                continue
            problems += _member_problems(this, this_end.label, other, other_end.label)
    return Verdict(not problems, tuple(dict.fromkeys(problems)), tuple(pairs),
                   _table(end_a, end_b, pairs))


def check_negotiated(a: LacpSide | LagEnd | None, b: LacpSide | LagEnd | None, *,
                     links: Mapping[str, str] | None = None) -> Verdict:
    """:func:`verdict`, raising LabError with both ends' table when they disagree."""
    result = verdict(a, b, links=links)
    if not result.ok:
        raise LabError(_problem_text("the two ends of the LAG have not negotiated LACP",
                                     result), FIX)
    return result


def wait_negotiated(read_sides: Callable[[], tuple[LacpSide | LagEnd | None,
                                                    LacpSide | LagEnd | None]],
                    timeout_s: float = timeouts.LACP_NEGOTIATED, *,
                    links: Mapping[str, str] | None = None,
                    interval_s: float = 0.2) -> Verdict:
    """Poll ``read_sides()`` until both ends agree; LabError with the last table if not."""
    last: list[Verdict] = []

    def probe() -> Verdict | None:
        result = verdict(*read_sides(), links=links)
        last[:] = [result]
        return result if result.ok else None

    try:
        return timeouts.wait_for("LACP negotiation", probe, timeout_s, interval_s)
    except LabError:
        if not last:
            raise
        raise LabError(_problem_text(f"LACP did not negotiate within {timeout_s:g} s",
                                     last[0]), FIX) from None


FIX = ("read the table: F (defaulted) on a member means it has received no LACPDU; check"
       " that nothing between the ends drops 01:80:c2:00:00:02 frames (a Linux bridge"
       " does), that both ends run LACP (one may be passive, not both), and on Open"
       " vSwitch's kernel datapath that `ovs-dpctl show` counts no lost upcalls (inside"
       " User-mode Linux create the first bridge after 10 s of uptime: see"
       " harness/tech/lacp.py)")


def _as_end(side: LacpSide | LagEnd | None, label: str) -> LagEnd:
    if side is None:
        return LagEnd(label, (), (f"{label}: no LACP state could be read",))
    if isinstance(side, LagEnd):
        return side if side.label == label else replace(side, label=label)
    return lag_end(side, label)


def _pair(a: LagEnd, b: LagEnd, links: Mapping[str, str] | None
          ) -> list[tuple[EndMember | None, EndMember | None]]:
    by_name_b = {m.name: m for m in b.members}
    pairs: list[tuple[EndMember | None, EndMember | None]] = []
    left_a = list(a.members)
    if links:
        for m in a.members:
            if m.name in links:
                pairs.append((m, by_name_b.pop(links[m.name], None)))
                left_a.remove(m)
    else:
        for m in a.members:
            peer = next((n for n in by_name_b.values() if _sees(m, n) or _sees(n, m)), None)
            if peer is not None:
                pairs.append((m, by_name_b.pop(peer.name)))
                left_a.remove(m)
    rest_b = sorted(by_name_b.values(), key=lambda m: m.name)
    for i, m in enumerate(sorted(left_a, key=lambda m: m.name)):
        pairs.append((m, rest_b[i] if i < len(rest_b) else None))
    pairs += [(None, m) for m in rest_b[len(left_a):]]
    return pairs


def _sees(m: EndMember, n: EndMember) -> bool:
    """Whether ``m``'s partner information names ``n`` (system and port)."""
    return (m.partner is not None and n.actor is not None and m.partner.system != NO_SYSTEM
            and m.partner.system == n.actor.system and m.partner.port == n.actor.port)


def _member_problems(m: EndMember, label: str, peer: EndMember | None,
                     peer_label: str) -> list[str]:
    where = f"{label} {m.name}"
    if m.actor is None or m.partner is None:
        return [f"{where}: no LACP details"]
    if m.actor.state & PortState.DEFAULTED:
        # Its partner fields are defaults, so comparing them says nothing more.
        return [f"{where}: defaulted: has received no LACPDU (actor state"
                f" {m.actor.state.letters}, {m.aggregate})"]
    problems = []
    for role, info in (("actor", m.actor), ("partner", m.partner)):
        missing = [f.name.lower() for f in NEGOTIATED if not info.state & f]
        stale = [f.name.lower() for f in STALE if info.state & f]
        if missing or stale:
            problems.append(f"{where}: {role} state {info.state.letters}"
                            + (f" lacks {', '.join(missing)}" if missing else "")
                            + (" and" if missing and stale else "")
                            + (f" is {', '.join(stale)}" if stale else ""))
    if not m.in_aggregate:
        problems.append(f"{where}: not in the LAG's aggregator ({m.aggregate})")
    if peer is not None and peer.actor is not None:
        want = (peer.actor.system, peer.actor.key, peer.actor.port)
        got = (m.partner.system, m.partner.key, m.partner.port)
        if got != want:
            problems.append(f"{where}: partner is {_who(*got)}, but {peer_label} {peer.name}"
                            f" is {_who(*want)}")
    return problems


def _who(system: str, key: int, port: int) -> str:
    return f"{system} key {key} port {port}"


def _problem_text(headline: str, result: Verdict) -> str:
    shown = list(result.problems[:6])
    more = len(result.problems) - len(shown)
    lines = [headline + ":", *(f"  - {p}" for p in shown)]
    if more:
        lines.append(f"  - ... {more} more")
    return "\n".join([*lines, result.table])


def _cells(m: EndMember | None) -> list[str]:
    if m is None:
        return ["-", "", "", "", ""]
    actor = m.actor.state.letters if m.actor else "?"
    partner = m.partner.state.letters if m.partner else "?"
    seen = (f"{m.partner.system}/{m.partner.key}/{m.partner.port}" if m.partner else "?")
    return [m.name + (f" ({m.status})" if m.status else ""), m.aggregate, actor, partner, seen]


def _identity(end: LagEnd) -> str:
    actors = {(m.actor.system, m.actor.key) for m in end.members if m.actor}
    return ", ".join(f"system {s} key {k}" for s, k in sorted(actors)) or "no identity"


def _table(a: LagEnd, b: LagEnd, pairs: list[tuple[EndMember | None, EndMember | None]]
           ) -> str:
    head = ["member", "aggregator", "actor", "partner", "partner sys/key/port"]
    rows = [head + head] + [_cells(x) + _cells(y) for x, y in pairs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) * 2)]

    def line(row: list[str]) -> str:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        return ("  ".join(cells[:5]) + " | " + "  ".join(cells[5:])).rstrip()

    left = len(line(rows[0]).split(" | ")[0])
    title = f"{a.label} ({_identity(a)})".ljust(left) + " | " + f"{b.label} ({_identity(b)})"
    return "\n".join([title, *(line(r) for r in rows), f"state letters: {LEGEND}"])
