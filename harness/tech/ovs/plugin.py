"""Open vSwitch as a lab technology: the topology's OVS bridges and their LAGs made once
the cables exist, the daemons started if no one runs them, and each LAG member that
ovs-vswitchd enabled or disabled during a trial recorded as an event (from its log,
harness.tech.ovs_log); and what a LAG's link detection predicts (ovs.prediction)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.tech.base import Technology
from harness.tech.ovs import bridge as ovs
from harness.tech.ovs import log as ovs_log
from harness.tech.ovs.prediction import predict

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord
    from harness.scenario.model import Step
    from harness.topology.model import Topology

log = logging.getLogger(__name__)


class OvsSwitches(Technology):
    """Every Open vSwitch bridge of the topology, with its LAGs."""

    name = "ovs"
    kernel_features = ("openvswitch",)

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.daemons_state: str | None = None  # "ours" or "running" once OVS is in use
        self.lag_settings: dict[str, dict[str, dict[str, str]]] = {}  # "sw:lag" -> ...
        self._mark: ovs_log.LogMark | None = None
        self._unchecked: list[tuple[str, ovs.LagRequest, dict[str, str]]] = []

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(topo.ovs_switches())

    def build(self) -> None:
        lab, topo = self.lab, self.lab.topo
        self.daemons_state = ovs.ensure_daemons(lab.journal)
        for number, name in enumerate(topo.switches(), start=1):
            if topo.nodes[name].impl != "ovs":
                continue
            lags = [lag for lag in topo.lags if lag.switch == name]
            in_lag = {port for lag in lags for port in lag.ports}
            ports = [lab.ifname(name, intf) for node, intf in lab.ends()
                     if node == name and intf not in in_lag]
            requests = {}
            for lag in lags:
                options = dict(lag.options)
                if options.get("primary"):  # a port of the topology: its real name
                    options["primary"] = lab.ifname(name, options["primary"])
                requests[f"{name}:{lag.name}"] = ovs.LagRequest(
                    lab.ifname(name, lag.name),
                    [lab.ifname(name, port) for port in lag.ports], options)
            asked = ovs.add_bridge(lab.journal, lab.node_name(name), number, ports,
                                   list(requests.values()))
            self._unchecked += [(key, lag, asked[lag.name]) for key, lag in requests.items()]

    def start(self) -> None:
        """Each LAG read back and checked against its request: here, not in build(), so
        that its ovs-vsctl and ovs-appctl (0.5 s inside User-mode Linux) run while the
        bonds built after the switches negotiate LACP, not before they start to."""
        for key, lag, asked in self._unchecked:
            self.lag_settings[key] = ovs.checked(lag, asked)
        self._unchecked.clear()

    def state(self) -> dict[str, Any]:
        topo = self.lab.topo
        return {"lags": {f"{lag.switch}:{lag.name}": self.lab.ifname(lag.switch, lag.name)
                         for lag in topo.lags},
                # each LAG's database settings as asked and as read back
                "lag_settings": self.lag_settings,
                # where each member is cabled ("srv:eth0"): which members a device's
                # death takes, for the prediction
                "lag_cabling": {f"{lag.switch}:{lag.name}": {
                    port: ":".join(topo.far_end(lag.switch, port)) for port in lag.ports}
                    for lag in topo.lags},
                "ovs_daemons": self.daemons_state}

    def before_traffic(self, events: EventLog) -> None:
        """Where ovs-vswitchd's log stands, when there are LAGs and OVS logs to a file."""
        path = ovs_log.log_file() if self.lab.topo.lags else None
        self._mark = ovs_log.LogMark.now(path) if path else None

    def after_traffic(self, events: EventLog, trial_dir: Path) -> dict[str, Any]:
        """Each LAG member that ovs-vswitchd enabled or disabled since the mark, as an event
        stamped by its log line (to the ms)."""
        if self._mark is None:
            return {}
        lab = self.lab
        ports = {lab.ifname(lag.switch, port): (lag.switch, port)
                 for lag in lab.topo.lags for port in lag.ports}
        try:
            lines = self._mark.lines_since()
        except OSError as exc:  # the trial's own figures stand without these events
            log.warning("cannot read ovs-vswitchd's log %s: %s", self._mark.path, exc)
            return {}
        for change in ovs_log.member_changes(lines, ports):
            events.add("lag_member_changed", change.switch, f"{change.member} {change.state}",
                       t_ns=change.t_ns)
        return {"log": str(self._mark.path)}

    @classmethod
    def phase_period_ms(cls, topo: Topology, step: Step) -> float | None:
        """A LAG that polls its members (bond-detect-mode miimon) sees a lost carrier at
        its next poll; one that follows carrier has no clock of its own."""
        if step.action not in ("cut", "device_down"):
            return None
        polled = [int(lag.options.get("miimon_interval", 100)) for lag in topo.lags
                  if lag.options.get("bond_detect_mode") == "miimon"]
        return float(max(polled)) if polled else None

    @staticmethod
    def prediction(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
        """Carrier versus MII detection on the LAGs that lose members (ovs.prediction)."""
        return predict(trial, row)
