"""Kernel bonds as a lab technology: every bond of the topology built, started and read
back; during a trial, a watcher per bonded node records each change of the active member
and, in 802.3ad, of the members distributing; and the summary columns that say what the
bond did (active member before and after, when it switched, when LACP let a member go),
and what its link monitor predicts when members lose carrier (bond.prediction).

Every bond is built before any starts (see netlink.create_bond: enslaving takes a member
down, which a running bond at the far end of the cable would count as a link failure).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import LabError
from harness.tech.base import Sweep, Technology, Watcher
from harness.tech.bond import netlink, status
from harness.tech.bond.netlink import BondState
from harness.tech.bond.prediction import predict
from harness.tech.lacp.linux import Membership, linux_lacp

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology

SETTLE_CHECKS = 3   # reads of every active member, one MII period apart, at bring-up
MAX_SETTLE_S = 0.5
BOND_POLL_S = 0.005  # bond watcher poll period: the resolution of failover_detected_ms


class Bonds(Technology):
    """Every Linux kernel bond of the topology."""

    name = "bond"
    kernel_features = ("bonding",)

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.states: dict[str, BondState] = {}  # "node:bond" -> state once ready
        self._watchers: list[BondWatcher] = []

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(topo.bonds)

    def build(self) -> None:
        for bond in self.lab.topo.bonds:
            netlink.create_bond(self.lab.ipr(bond.node), bond)
        for bond in self.lab.topo.bonds:
            netlink.start_bond(self.lab.ipr(bond.node), bond)

    def start(self) -> None:
        bonds = {f"{bond.node}:{bond.name}": bond for bond in self.lab.topo.bonds}
        pending = list(bonds)
        for _ in range(SETTLE_CHECKS):
            for key in pending:
                bond = bonds[key]
                self.states[key] = netlink.wait_ready(self.lab.ipr(bond.node), bond.name,
                                                      bond.settings)
            # A state that looks settled may still predate the kernel's next MII check: a
            # CI run read eth0 active, then the primary eth1 carried every ping. So each
            # active member is read again one MII period later (all bonds at once), and a
            # bond whose active member moved is waited for again.
            period_s = max(s.miimon or 0 for s in self.states.values()) / 1000
            if not period_s:
                return
            time.sleep(min(period_s, MAX_SETTLE_S))
            pending = [key for key, state in self.states.items() if state.active_member
                       and netlink.active_member(self.lab.ipr(bonds[key].node),
                                                 bonds[key].name) != state.active_member]
            if not pending:
                return
        raise LabError(f"the active member of {', '.join(pending)} kept changing after the"
                       " bond looked settled", "read bonds.json and the kernel's"
                       " /proc/net/bonding in the trial folder")

    def state(self) -> dict[str, Any]:
        """Each bond as the kernel reports it once ready, beside what was asked and where
        each member is cabled (``"sw:p1"``: which members a device's death takes, for the
        prediction)."""
        topo = self.lab.topo
        asked = {f"{b.node}:{b.name}": b.settings.wanted for b in topo.bonds}
        cabled = {f"{b.node}:{b.name}": {m: ":".join(topo.far_end(b.node, m))
                                         for m in b.members} for b in topo.bonds}
        return {"bonds": {key: {**state.as_dict(), "requested": asked[key],
                                "cabled_to": cabled[key]}
                          for key, state in self.states.items()}}

    def read(self, node: str, name: str | None = None) -> BondState:
        return netlink.read_bond(self.lab.ipr(node), self.lab.topo.bond(node, name).name)

    @classmethod
    def aliases(cls, topo: Topology, node: str) -> tuple[str, ...]:
        """``active``, and ``probe`` (the member the probe's packets leave on)."""
        return ("active", "probe") if any(b.node == node for b in topo.bonds) else ()

    def interface_alias(self, node: str, alias: str) -> str | None:
        """``active``: the member ``node``'s bond sends on now."""
        if alias != "active" or not any(b.node == node for b in self.lab.topo.bonds):
            return None
        bond = self.lab.topo.bond(node)
        return netlink.active_member(self.lab.ipr(node), bond.name) or ""

    def watchers(self, events: EventLog) -> list[Watcher]:
        nodes = sorted({b.node for b in self.lab.topo.bonds})
        self._watchers = [BondWatcher(self.lab, node, events) for node in nodes]
        return [Sweep("bond-watch", BOND_POLL_S, self._watchers)]

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        """The kernel's word at the end (bonds.json), not the watcher's."""
        final = {w.node: self.read(w.node) for w in self._watchers}
        (trial_dir / "bonds.json").write_text(json.dumps(
            {n: state.as_dict() for n, state in final.items()}, indent=2))
        return {"active_before": {w.node: w.first.active for w in self._watchers},
                "active_after": {n: s.active_member for n, s in final.items()},
                "active_changes_seen": [b for w in self._watchers for b in w.brackets]}

    @staticmethod
    def columns(trial: TrialRecord, row: Mapping[str, Any]) -> Mapping[str, Any]:
        from harness.results.summary import call_start_ns

        facts = trial.facts.get("bond")
        if not facts:
            return {}
        cut = trial.failure
        cut_ns = cut["t_ns"] if cut else trial.end_ns
        since = call_start_ns(trial) if cut else trial.end_ns
        left = next((e for e in trial.events if e["kind"] == "lacp_members_changed"
                     and cut and e["t_ns"] >= since and _shrank(e["detail"])), None)
        changed = trial.first("bond_active_changed")
        switched = bool(cut and changed and changed["t_ns"] >= since)
        # A probe that sent nothing between the cut and the switch-over could not see the
        # outage (its sender stalled: it shares the CPU with everything inside UML).
        sends = (sum(1 for p in trial.probe.packets
                     if cut_ns <= p.sent_ns <= changed["t_ns"])  # type: ignore[index]
                 if switched else math.nan)
        return {
            "active_before": ";".join(f"{k}:{v}" for k, v in facts["active_before"].items()),
            "active_after": ";".join(f"{k}:{v}" for k, v in facts["active_after"].items()),
            "failover_detected_ms": (round((changed["t_ns"] - cut_ns) / 1e6, 3)  # type: ignore[index]
                                     if switched else math.nan),
            # how much earlier the switch may have come: the watcher last saw the old
            # member that long before (its 5 ms poll, or longer when starved of CPU)
            "failover_detected_uncertainty_ms": (
                _uncertainty_ms(facts, changed["t_ns"]) if switched else math.nan),  # type: ignore[index]
            # 802.3ad: failure -> the bond stopped distributing on a member (LACP timeout)
            "lacp_member_left_ms": (round((left["t_ns"] - cut_ns) / 1e6, 3) if left
                                    else math.nan),
            "probe_sends_in_failover": sends,
        }

    @staticmethod
    def phrase(row: Mapping[str, Any]) -> str | None:
        if "active_before" not in row:
            return None
        # only the bonds with an active member (not 802.3ad's or balance-*'s): 64 servers'
        # LACP bonds made this a line of "srvN:None" for each
        before, after = (";".join(p for p in str(row[key]).split(";")
                                  if p and not p.endswith(":None"))
                         for key in ("active_before", "active_after"))
        return f"active {before or 'none'} -> {after or 'none'}" if before or after else None

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """A lost carrier is seen at the next MII check (or ARP monitor round)."""
        if step.action not in ("cut", "device_down"):
            return None
        periods = [b.settings.wanted.get("miimon") or b.settings.wanted.get("arp_interval")
                   or 0 for b in topo.bonds]
        return float(max(periods)) if any(periods) else None

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """The link monitor's window when members lose carrier (bond.prediction)."""
        return predict(trial, row)


class BondView:
    """What a watcher follows: the active member (modes that have one) and the members
    distributing (802.3ad; None in other modes)."""

    def __init__(self, active: str | None, distributing: frozenset[str] | None) -> None:
        self.active, self.distributing = active, distributing


class BondWatcher:
    """Records, as it happens, every change of a bond's active member and, in 802.3ad,
    of the set of members distributing traffic (a member leaving or joining the LAG);
    polled with the other nodes' by one Sweep."""

    def __init__(self, lab: Lab, node: str, events: EventLog) -> None:
        self.lab, self.node, self.events = lab, node, events
        self.bond = lab.topo.bond(node).name
        self.status = status.StatusFile(lab.pid(node), self.bond)
        # 802.3ad: a member back from a link failure counts only once LACP has
        # negotiated it again (see Membership)
        self._membership = Membership()
        self.read_ns = time.time_ns()   # when the read behind self.view began
        self.first = self.view = self._read()
        # per active-member change: (its event's stamp, when the read that still saw the
        # old member began). The change lies between the two; a starved poll widens it.
        self.brackets: list[tuple[int, int]] = []

    def _read(self) -> BondView:
        """Cheap enough to call every few ms (see status.status_text); parsed only when
        the text changed."""
        text = self.status.changed()
        if text is None:
            return self.view
        members = None
        if "Bonding Mode: IEEE 802.3ad" in text:
            members = self._membership.update(linux_lacp(text, self.bond))
        return BondView(status.active_member_in(text), members)

    def poll(self) -> None:
        began = time.time_ns()
        view = self._read()
        if view.active != self.view.active:
            seen = time.time_ns()
            self.events.add("bond_active_changed", self.node,
                            f"{self.view.active} -> {view.active}", t_ns=seen)
            self.brackets.append((seen, self.read_ns))
        self.read_ns = began
        if view.distributing != self.view.distributing:
            self.events.add("lacp_members_changed", self.node,
                            f"{_names(self.view.distributing)} -> {_names(view.distributing)}")
        self.view = view


def _uncertainty_ms(facts: Mapping[str, Any], t_ns: int) -> float:
    """The width of the bracket the watcher recorded for the change stamped ``t_ns``."""
    since = next((s for t, s in facts.get("active_changes_seen", []) if t == t_ns), None)
    return round((t_ns - since) / 1e6, 3) if since is not None else math.nan


def _names(members: frozenset[str] | None) -> str:
    return ",".join(sorted(members)) if members else "none"


def _shrank(detail: str) -> bool:
    """Whether a ``lacp_members_changed`` detail ("eth0,eth1 -> eth1") lost a member."""
    before, _, after = detail.partition(" -> ")

    def count(names: str) -> int:
        return 0 if names == "none" else len(names.split(","))

    return count(after) < count(before)
