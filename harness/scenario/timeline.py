"""A scenario's steps executed at their times, each recorded as an event on the trial's
clock, and each failure's facts kept for trial.json (its call length: reactions count
from the start of the call; when a dying box's daemons fell silent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import RedLabError
from harness.inject.base import Failure
from harness.inject.daemon import DaemonCrash
from harness.inject.device import DeviceFailure
from harness.inject.filter import ControlPlaneDrop
from harness.inject.link import LinkCut
from harness.inject.netem import Degrade
from harness.scenario.model import Step

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog


class Timeline:
    """Executes the scenario's steps, recording each as an event."""

    def __init__(self, lab: Lab, events: EventLog,
                 probe_members: dict[str, str] | None = None) -> None:
        self.lab, self.events = lab, events
        self.probe_members = probe_members or {}  # node -> member carrying the probe
        self.pending: list[Failure] = []   # applied, not yet restored; newest last
        self.facts: list[dict[str, Any]] = []  # every failure applied, in order

    def _failure(self, step: Step) -> Failure:
        assert step.node
        intf = step.interface or ""
        if intf == "probe":
            intf = self.probe_members[step.node]
        elif intf:
            intf = self.lab.interface(step.node, intf)
        if step.action == "cut":
            return LinkCut(self.lab, step.node, intf, step.end or "far")
        if step.action == "device_down":
            node = self.lab.topo.far_end(step.node, intf)[0] if intf else step.node
            return DeviceFailure(self.lab, node, self.lab.daemon_processes(node),
                                 held=self.lab.held_after_reboot(node))
        if step.action == "daemon_crash":
            return self._crash(step.node, step.daemon or "")
        if step.action == "drop_control":
            assert step.protocol
            return ControlPlaneDrop(self.lab, step.node, intf, step.protocol,
                                    direction=step.direction)
        return Degrade(self.lab, step.node, intf, loss_pct=step.loss_pct,
                       delay_ms=step.delay_ms, jitter_ms=step.jitter_ms, rate=step.rate,
                       ends=step.end or "both")

    def _crash(self, node: str, name: str) -> DaemonCrash:
        daemon = next((d for d in self.lab.daemons(node) if d.name == name), None)
        process = daemon.process() if daemon else None
        if daemon is None or process is None:
            raise RedLabError(f"{node} runs no {name} to crash",
                              "name a node whose topology starts that daemon")
        return DaemonCrash(self.lab, node, process, restart=daemon.start)

    def execute(self, step: Step) -> None:
        if step.action == "restore":
            if not self.pending:
                raise RedLabError("a restore step comes before any failure",
                                  "put a failure step before each restore in the scenario")
            failure, kind = self.pending.pop(), "restore"
            t = failure.restore()
            if isinstance(failure, DeviceFailure):
                self.lab.rebooted(failure.node)
        else:
            failure, kind = self._failure(step), step.action
            where = getattr(failure, "node", None) or step.node
            t = failure.apply()
            self.pending.append(failure)
            silenced_ns = None
            if failure.silenced:
                before, stopped = failure.silenced
                silenced_ns = [before, stopped]
                self.events.add("daemons_silenced", step.node or "",
                                f"frozen; call {(stopped - before) / 1e6:.1f} ms",
                                t_ns=(before + stopped) // 2)
            # restore() overwrites call_ns: keep the failure's own now
            self.facts.append({"action": step.action, "node": where, "t_ns": t,
                               "call_ns": failure.call_ns, "silenced_ns": silenced_ns,
                               "describe": failure.describe()})
        self.events.add(kind, getattr(failure, "node", None) or step.node or "",
                        f"{failure.describe()}; call {failure.call_ns / 1e6:.1f} ms", t_ns=t)

    def restore_all(self) -> None:
        """Failures a scenario left in place are undone before the lab goes (newest first)."""
        while self.pending:
            self.pending.pop().restore()
