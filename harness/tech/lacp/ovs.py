"""LACP as Open vSwitch sees it: what ovs-appctl and ovs-dpctl print, parsed.

Readers turn ``ovs-appctl lacp/show <lag>`` (:func:`ovs_lacp`), ``ovs-appctl bond/show
<lag>`` (:func:`ovs_bond`) and the datapath counters of ``ovs-dpctl show``
(:func:`ovs_dp_lookups`) into dataclasses; :func:`read_ovs` and :func:`read_ovs_bond` ask
the running ovs-vswitchd.  Whether two ends agree is :mod:`harness.tech.lacp.check`'s job.

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
from dataclasses import dataclass, field, replace

from harness.errors import LabError
from harness.tech.lacp.state import (
    NO_SYSTEM,
    LacpInfo,
    PortState,
    int_or_none,
    int_or_zero,
)
from harness.tech.ovs import ctl as ovs_ctl

# Open vSwitch's words for the bits (lib/lacp.c, ds_put_lacp_state).
_OVS_WORDS = {"activity": PortState.ACTIVITY, "timeout": PortState.TIMEOUT,
              "aggregation": PortState.AGGREGATION,
              "synchronized": PortState.SYNCHRONIZATION,
              "collecting": PortState.COLLECTING, "distributing": PortState.DISTRIBUTING,
              "defaulted": PortState.DEFAULTED, "expired": PortState.EXPIRED}


# -- ovs-appctl lacp/show --------------------------------------------------------------

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
                   sys_priority=int_or_zero(head.get("sys_priority")),
                   key=int(key) if key.isdigit() else None,
                   lacp_time=head.get("lacp_time", ""),
                   members={m[1]: _ovs_lacp_member(m, f) for m, f in members})


def _ovs_lacp_member(found: re.Match[str], f: dict[str, str]) -> OvsLacpMember:
    def info(side: str) -> LacpInfo:
        words = f.get(f"{side} state", "").split()
        unknown = [w for w in words if w not in _OVS_WORDS]
        if unknown:
            raise LabError(f"unknown LACP state word(s) {unknown} in ovs-appctl lacp/show",
                           "this Open vSwitch prints states harness/tech/lacp/ovs.py does"
                           " not know: add them to _OVS_WORDS")
        state = PortState(0)
        for word in words:
            state |= _OVS_WORDS[word]
        return LacpInfo(system=f.get(f"{side} sys_id", NO_SYSTEM).lower(),
                        system_priority=int_or_zero(f.get(f"{side} sys_priority")),
                        key=int_or_zero(f.get(f"{side} key")),
                        port=int_or_zero(f.get(f"{side} port_id")),
                        port_priority=int_or_zero(f.get(f"{side} port_priority")),
                        state=state)

    return OvsLacpMember(name=found[1], status=found[2], attached=found[3] == "attached",
                         port_id=int_or_zero(f.get("port_id")),
                         port_priority=int_or_zero(f.get("port_priority")),
                         may_enable=f.get("may_enable") == "true",
                         actor=info("actor"), partner=info("partner"))


# -- ovs-appctl bond/show --------------------------------------------------------------

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
        updelay_ms=int_or_none(head.get("updelay", "").removesuffix(" ms")),
        downdelay_ms=int_or_none(head.get("downdelay", "").removesuffix(" ms")),
        active_member=active[0] if active else None, members=members)


# -- ovs-dpctl show --------------------------------------------------------------------

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


# -- readers ---------------------------------------------------------------------------

def read_ovs(lag: str) -> OvsLacp:
    return ovs_lacp(ovs_ctl.appctl("lacp/show", lag, what=f"reading LACP of LAG {lag}"),
                    lag)


def read_ovs_bond(lag: str) -> OvsBond:
    return ovs_bond(ovs_ctl.appctl("bond/show", lag, what=f"reading LAG {lag}"), lag)
