"""The check that the two ends of a LAG agree on LACP, with both ends side by side.

:func:`check_negotiated` takes the two ends of one LAG (Linux-OVS, Linux-Linux or
OVS-OVS) as :mod:`harness.tech.lacp.linux` and :mod:`harness.tech.lacp.ovs` read them
and says whether every member is aggregated, both ways, with the other end's identity;
on disagreement the LabError shows both ends' members side by side.

A member is negotiated (IEEE 802.1AX, 6.4) when its actor *and* partner state say
synchronized, collecting and distributing, neither is defaulted or expired, the partner
system id and key it holds are the other end's actor system id and key, and it is in
the end's one aggregator (Linux: the active aggregator; Open vSwitch: attached).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from harness import timeouts
from harness.errors import LabError
from harness.tech.lacp.linux import LinuxLacp
from harness.tech.lacp.ovs import OvsLacp
from harness.tech.lacp.state import LEGEND, NEGOTIATED, NO_SYSTEM, STALE, LacpInfo, PortState

# Either end of a LAG, as read.
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
    groups: dict[int | None, list[str]] = {}
    for m in side.members.values():
        if m.mii_up:
            groups.setdefault(m.aggregator_id, []).append(m.name)
    if len(groups) > 1:
        problems.append(f"{label}: split into {len(groups)} aggregators ("
                        + "; ".join(f"agg {agg}: {', '.join(names)}"
                                    for agg, names in sorted(groups.items(), key=str))
                        + "): its members' partners are not one system with one key")
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


NOT_ONE_SYSTEM = "the switches do not present one system"
NO_LACP = "does not speak LACP"


def hopeless(result: Verdict) -> bool:
    """Whether waiting cannot mend ``result``: the switches of a logical aggregate present
    different systems (configuration, read back), or one end speaks no LACP and the
    other has given up (its members defaulted: shown so, not after the full timeout)."""
    if any(p.startswith(NOT_ONE_SYSTEM) for p in result.problems):
        return True
    if not any(p.endswith(NO_LACP) for p in result.problems):
        return False
    members = [m for pair in result.pairs for m in pair if m is not None and m.actor]
    return bool(members) and all(m.actor.state & PortState.DEFAULTED for m in members
                                 if m.actor is not None)


def logical_end(ends: Mapping[str, LacpSide | LagEnd]) -> LagEnd:
    """One aggregate made of several nodes' aggregates (the switches of an MC-LAG pair,
    as the server they share sees them): members named ``node:member``; a problem when
    they do not all present one system id and key."""
    parts = {node: _as_end(side, _label(side, "?")) for node, side in ends.items()}
    members = tuple(replace(m, name=f"{node}:{m.name}")
                    for node, end in parts.items() for m in end.members)
    problems = [f"{node} {p}" for node, end in parts.items() for p in end.problems]
    identities = {node: {(m.actor.system, m.actor.key) for m in end.members if m.actor}
                  for node, end in parts.items()}
    if len(set().union(*identities.values())) > 1:
        problems.append(NOT_ONE_SYSTEM + ": " + "; ".join(
            f"{node} " + ", ".join(f"system {s} key {k}" for s, k in sorted(ids))
            for node, ids in identities.items()))
    label = " + ".join(f"{node} {end.label}" for node, end in parts.items())
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


GATED_INTERVAL_S = 0.02
UNGATED_READ_S = 1.0


def wait_negotiated(read_sides: Callable[[], tuple[LacpSide | LagEnd | None,
                                                    LacpSide | LagEnd | None]],
                    timeout_s: float = timeouts.LACP_NEGOTIATED, *,
                    links: Mapping[str, str] | None = None,
                    interval_s: float = 0.2,
                    give_up: Callable[[Verdict], bool] | None = None,
                    gate: Callable[[], bool] | None = None) -> Verdict:
    """Poll ``read_sides()`` until both ends agree; LabError with the last table if not,
    at the timeout or as soon as ``give_up`` says the last verdict will not change.

    ``gate``, a cheap look at one end, says when reading both is worth it: it is polled
    every GATED_INTERVAL_S, and both ends are read once it says yes, and at least every
    UNGATED_READ_S whatever it says (so a bundle the gate misjudges costs time, not a
    wrong verdict, and ``give_up`` still sees full readings)."""
    last: list[Verdict] = []
    started = time.monotonic()
    full_read_due = [started]

    def probe() -> Verdict | None:
        if gate is not None:
            if time.monotonic() < full_read_due[0] and not gate():
                return None
            full_read_due[0] = time.monotonic() + UNGATED_READ_S
        result = verdict(*read_sides(), links=links)
        last[:] = [result]
        if not result.ok and give_up is not None and give_up(result):
            raise LabError(_problem_text(
                f"LACP did not negotiate, and will not (given up after"
                f" {time.monotonic() - started:.1f} s)", result), FIX)
        return result if result.ok else None

    if gate is not None:
        interval_s = min(interval_s, GATED_INTERVAL_S)
    try:
        return timeouts.wait_for("LACP negotiation", probe, timeout_s, interval_s)
    except LabError as exc:
        if not last or exc.fix == FIX:
            raise
        raise LabError(_problem_text(f"LACP did not negotiate within {timeout_s:g} s",
                                     last[0]), FIX) from None


FIX = ("read the table: F (defaulted) on a member means it has received no LACPDU; check"
       " that nothing between the ends drops 01:80:c2:00:00:02 frames (a Linux bridge"
       " does), that both ends run LACP (one may be passive, not both), and on Open"
       " vSwitch's kernel datapath that `ovs-dpctl show` counts no lost upcalls (inside"
       " User-mode Linux create the first bridge after 10 s of uptime: see"
       " harness/tech/lacp/ovs.py)")


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
