"""LACP as a lab technology: wherever a cable bundle joins two aggregates (a Linux
802.3ad bond, an Open vSwitch LAG) and at least one speaks LACP, bring-up waits until
both ends have negotiated (harness.tech.lacp.check) and keeps the table both ends showed;
one end without LACP is a disagreement the check reports, not a bundle to skip.  It
starts after the bonds and the OVS LAGs it reads (see the registry's order).  Its
prediction: when a member whose LACPDUs stop leaves (lacp.prediction)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from harness import timeouts
from harness.errors import LabError
from harness.tech.base import Technology
from harness.tech.lacp import check, linux
from harness.tech.lacp import ovs as lacp_ovs
from harness.tech.lacp.prediction import predict
from harness.tech.ovs import bridge as ovs

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology

End = linux.LinuxLacp | lacp_ovs.OvsLacp | check.LagEnd


class LacpNegotiation(Technology):
    """Every LACP bundle of the topology, negotiated before traffic."""

    name = "lacp"

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.tables: dict[str, str] = {}  # "a - b" -> both ends' state once negotiated

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(bundles(topo))

    def start(self) -> None:
        topo = self.lab.topo
        for bundle in bundles(topo):
            # a LACPDU lost (a busy guest) is repaired by the next periodic one: 30 s
            # away where an end runs lacp_rate slow, so the wait covers two such periods
            # (a passive Open vSwitch end heard nothing from its active slow partner for
            # 50 s once, in CI)
            period_s = max(tx_period_s(topo, agg) for agg in (bundle.near, *bundle.far))
            verdict = check.wait_negotiated(lambda b=bundle: self.read_bundle(b),
                                            timeouts.LACP_NEGOTIATED + 2 * period_s,
                                            links=self._linked(bundle),
                                            give_up=check.hopeless,
                                            gate=self._gate(bundle))
            self.tables[bundle.key] = verdict.table

    def state(self) -> dict[str, Any]:
        return {"lacp_negotiated": {k: v.splitlines() for k, v in self.tables.items()}}

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """LACPDUs stopped: the receiving end times out after 3 of its partner's
        periods, 1 s at lacp_rate fast, 30 s at slow (the node whose PDUs are dropped
        decides; else any LACP end of the topology)."""
        if step.action != "drop_control" or step.protocol != "lacp":
            return None
        rates = [str(b.settings.wanted.get("lacp_rate", "slow")) for b in topo.bonds
                 if b.settings.mode == "802.3ad" and (b.node == step.node or not step.node)]
        rates += [str(lag.options.get("lacp_time", "fast")) for lag in topo.lags
                  if lag.switch == step.node]
        if not rates:
            rates = [str(b.settings.wanted.get("lacp_rate", "slow")) for b in topo.bonds
                     if b.settings.mode == "802.3ad"]
        return 30000.0 if "slow" in rates else 1000.0 if rates else None

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """A member whose LACPDUs stop leaves after 3 missed PDUs (lacp.prediction)."""
        return predict(trial, row)

    def read_bundle(self, bundle: Bundle) -> tuple[End, End]:
        """Both ends as read now: the far end of a bundle that spans several nodes (an
        MC-LAG pair) is one logical aggregate of all their members."""
        near = self.read(bundle.near)
        if len(bundle.far) == 1:
            return near, self.read(bundle.far[0])
        return near, check.logical_end({agg.node: self.read(agg) for agg in bundle.far})

    def _gate(self, bundle: Bundle) -> Callable[[], bool] | None:
        """Where a bundle has a costly end (Open vSwitch: an ovs-appctl, 0.2 s inside UML)
        and a cheap one (a Linux bond's status file): whether every member of the cheap
        ends has negotiated.  Until then the costly end is not worth reading."""
        ends = (bundle.near, *bundle.far)
        cheap = [agg for agg in ends if not agg.ovs and speaks_lacp(self.lab.topo, agg)]
        if not cheap or len(cheap) == len(ends):
            return None

        def negotiated() -> bool:
            try:
                sides = [self.read(agg) for agg in cheap]
            except LabError:
                return True  # let the full read say what is wrong
            return all(isinstance(side, linux.LinuxLacp) and linux.negotiated(side)
                       for side in sides)
        return negotiated

    def _linked(self, bundle: Bundle) -> dict[str, str]:
        """The near end's member interface -> the far member as the check names it."""
        lab, many = self.lab, len(bundle.far) > 1
        return {lab.ifname(bundle.near.node, mine): (
            f"{agg.node}:{lab.ifname(agg.node, theirs)}" if many
            else lab.ifname(agg.node, theirs)) for mine, (agg, theirs) in bundle.links.items()}

    def read(self, agg: Aggregate) -> End:
        """``agg``'s LACP state; an end with only a problem where it speaks no LACP."""
        topo, lab = self.lab.topo, self.lab
        if not speaks_lacp(topo, agg):
            what = (f"ovs {lab.ifname(agg.node, agg.name)} (lacp=off)" if agg.ovs else
                    f"linux {agg.name} (mode {topo.bond(agg.node, agg.name).settings.mode})")
            return check.LagEnd(what, (), (f"{what}: {check.NO_LACP}",))
        if agg.ovs:
            return lacp_ovs.read_ovs(lab.ifname(agg.node, agg.name))
        return linux.read_linux(agg.name, lab.pid(agg.node))


class Aggregate(NamedTuple):
    """A kernel bond on a host, or an Open vSwitch LAG on a switch."""

    node: str
    name: str
    ovs: bool = False


class Bundle(NamedTuple):
    """The cables between one aggregate and the aggregates at their far ends: one (a LAG
    between two boxes) or several (a server dual-homed to an MC-LAG pair)."""

    near: Aggregate
    far: tuple[Aggregate, ...]
    links: dict[str, tuple[Aggregate, str]]  # near member -> far aggregate and member

    @property
    def key(self) -> str:
        return f"{self.near.node} - {'+'.join(agg.node for agg in self.far)}"


def aggregate_of(topo: Topology, node: str, intf: str) -> Aggregate | None:
    for bond in topo.bonds:
        if bond.node == node and intf in bond.members:
            return Aggregate(node, bond.name)
    for lag in topo.lags:
        if lag.switch == node and intf in lag.ports:
            return Aggregate(node, lag.name, ovs=True)
    return None


def speaks_lacp(topo: Topology, agg: Aggregate) -> bool:
    """An 802.3ad bond or an LACP LAG."""
    if agg.ovs:
        lag = next(g for g in topo.lags if g.switch == agg.node and g.name == agg.name)
        return ovs.lag_options(lag.options)["lacp"] != "off"
    return topo.bond(agg.node, agg.name).settings.mode == "802.3ad"


def tx_period_s(topo: Topology, agg: Aggregate) -> float:
    """How often ``agg`` sends LACPDUs once negotiated: 1 s fast, 30 s slow (0 without
    LACP); a bond without lacp_rate is slow, the kernel's default."""
    if not speaks_lacp(topo, agg):
        return 0.0
    if agg.ovs:
        lag = next(g for g in topo.lags if g.switch == agg.node and g.name == agg.name)
        rate = ovs.lag_options(lag.options)["lacp_time"]
    else:
        rate = topo.bond(agg.node, agg.name).settings.wanted.get("lacp_rate", "slow")
    return 1.0 if str(rate) in ("fast", "1") else 30.0


def bundles(topo: Topology) -> list[Bundle]:
    """Every cable bundle between aggregates of which at least one speaks LACP.  An
    aggregate cabled to several others is one bundle with all of them (the far ends
    should then present one system, as an MC-LAG pair does); otherwise the near end is
    the one whose node comes first by name."""
    cabled: dict[Aggregate, dict[str, tuple[Aggregate, str]]] = {}
    for link in topo.links:
        a = aggregate_of(topo, link.a, link.a_intf)
        b = aggregate_of(topo, link.b, link.b_intf)
        if a is None or b is None or not (speaks_lacp(topo, a) or speaks_lacp(topo, b)):
            continue
        cabled.setdefault(a, {})[link.a_intf] = (b, link.b_intf)
        cabled.setdefault(b, {})[link.b_intf] = (a, link.a_intf)

    def far(agg: Aggregate) -> tuple[Aggregate, ...]:
        return tuple(sorted({other for other, _ in cabled[agg].values()}))

    spanning = [agg for agg in cabled if len(far(agg)) > 1]
    taken = {other for agg in spanning for other in far(agg)}
    found = [Bundle(agg, far(agg), cabled[agg]) for agg in spanning]
    for agg, links in cabled.items():
        if agg in taken or agg in spanning:
            continue
        (other,) = far(agg)
        if (agg.node, agg.name) < (other.node, other.name):
            found.append(Bundle(agg, (other,), links))
    return found
