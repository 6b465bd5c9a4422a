"""The scenario file format (YAML), checked strictly: a typo is an error, never ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import ConfigError
from harness.lab.capabilities import LAB_BASE_FEATURES, SCENARIO_FEATURES
from harness.results.verdicts import Bound, Expect
from harness.topology.model import Topology
from harness.validation import config_error


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Traffic(Strict):
    """iperf3 from ``server`` to ``client`` (measured at the client) plus the gap probe."""

    server: str
    client: str
    duration_s: float = Field(10.0, gt=1, le=3600)
    protocol: Literal["tcp", "udp"] = "tcp"
    rate: str = "100M"
    parallel: int = Field(1, ge=1, le=128)
    probe_interval_ms: float = Field(1.0, ge=0.1, le=100)
    # redlab-probe: 1,000 to 10,000 packets/s on schedule, a log at each end; irtt: the
    # well-kept alternative, ~900 packets/s at most (see harness/measure/gapprobe.py)
    probe: Literal["redlab-probe", "irtt"] = "redlab-probe"


FAILURES = ("cut", "device_down", "daemon_crash", "drop_control", "degrade")
NEEDS_INTERFACE = ("cut", "drop_control", "degrade")


class Step(Strict):
    """At ``at_s`` seconds after traffic starts, inject a failure or restore the last one.

    - ``cut``: a cable loses carrier, taken down at its ``end`` (near, far or both);
      ``interface: active`` means the bond's active member on ``node`` at that moment;
      ``interface: probe`` the member of ``node``'s bond that carries the gap probe's
      packets out of it (found from its counters before other traffic starts), so
      that in a LAG the probe's own flow is one of those that lose their member;
    - ``device_down``: every cable of ``node`` at once, its daemons killed (no goodbye);
      restored, the node "reboots": cables up, daemons started afresh. With
      ``interface`` (and ``end: far``), the device at the far end of that cable dies:
      ``node: srv, interface: probe`` is the switch that the probe's packets leave srv to;
    - ``daemon_crash``: ``daemon`` (keepalived) on ``node`` killed with SIGKILL while the
      box stays up; restored, it is started again;
    - ``drop_control``: ``protocol`` (lacp or vrrp) frames dropped on ``node:interface``
      in ``direction`` while carrier and user traffic stay up;
    - ``degrade``: netem loss/delay/jitter/rate on ``node:interface`` at ``end``
      (default both: netem shapes egress only);
    - ``restore``: undo the most recent failure not yet restored.
    """

    at_s: float = Field(ge=0)
    action: Literal["cut", "device_down", "daemon_crash", "drop_control", "degrade", "restore"]
    node: str | None = None
    interface: str | None = None
    end: Literal["near", "far", "both"] | None = None
    protocol: Literal["lacp", "vrrp"] | None = None
    daemon: str | None = None  # a daemon a technology runs on the node (keepalived)
    direction: Literal["in", "out", "both"] = "both"
    loss_pct: float = Field(0.0, ge=0, le=100)
    delay_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    rate: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Step:
        if self.action in FAILURES and not self.node:
            raise ValueError(f"a {self.action} step needs a node")
        if self.action in NEEDS_INTERFACE and not self.interface:
            raise ValueError(f"a {self.action} step needs an interface")
        if self.action == "device_down" and self.interface and self.end not in (None, "far"):
            raise ValueError("a device_down step with an interface kills the device at the"
                             " far end of that cable: give end: far, or no interface")
        if self.action == "daemon_crash" and not self.daemon:
            raise ValueError("a daemon_crash step needs a daemon, e.g. daemon: keepalived")
        if self.action == "drop_control" and not self.protocol:
            raise ValueError("a drop_control step needs protocol: lacp or vrrp")
        if self.action == "degrade" and not (self.loss_pct or self.delay_ms or self.rate):
            raise ValueError("a degrade step needs loss_pct, delay_ms or rate")
        return self


class Scenario(Strict):
    name: str
    intent: str
    topology: str
    requires: list[str] = []  # kernel features beyond those every lab has
    params: dict[str, Any] = {}
    traffic: Traffic
    # No steps: a baseline (capacity, how flows spread) with nothing failing.
    steps: list[Step] = []
    # figure -> bound, held against every trial's summary row (harness.results.verdicts)
    expect: Expect = {}
    # Every trial's steps start a random part of one period of the clock the first
    # failure races (miimon, advert interval, LACP tick, heartbeat) late, so that repeated
    # trials sample the failure's phase (harness.scenario.runner); false: at at_s exactly.
    sample_phase: bool = True

    @field_validator("requires")
    @classmethod
    def _known_features(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in SCENARIO_FEATURES]
        if unknown:
            raise ValueError(f"not a kernel feature a scenario can require:"
                             f" {', '.join(unknown)}; use any of {', '.join(SCENARIO_FEATURES)}"
                             f" (every lab has {', '.join(LAB_BASE_FEATURES)} already)")
        return names

    @model_validator(mode="after")
    def _timeline(self) -> Scenario:
        times = [s.at_s for s in self.steps]
        if times != sorted(times):
            raise ValueError("steps must be in time order (at_s increasing)")
        if times and times[-1] >= self.traffic.duration_s:
            raise ValueError(f"the last step at {times[-1]} s is not before the end of"
                             f" traffic at {self.traffic.duration_s} s")
        if any(s.action == "degrade" for s in self.steps) and "netem" not in self.requires:
            raise ValueError("a degrade step needs netem: add it to requires")
        return self

    def with_traffic(self, overrides: dict[str, Any], path: Path) -> Scenario:
        """This scenario with ``--param traffic.<field>=value`` applied, checked again."""
        doc = self.model_dump(mode="json")
        doc["traffic"] = {**doc["traffic"], **overrides}
        try:
            return Scenario.model_validate(doc)
        except ValidationError as exc:
            raise config_error(f"--param traffic.* for scenario {path}", exc,
                               f"traffic fields: {', '.join(Traffic.model_fields)}") from exc

    def with_expect(self, extra: dict[str, Bound]) -> Scenario:
        """This scenario with ``extra`` expectations (a suite run's) added to its own,
        replacing those on the same figures."""
        return self.model_copy(update={"expect": {**self.expect, **extra}}) if extra else self

    def check_against(self, topo: Topology, path: Path) -> None:
        """Every step names a node, interface and daemon the topology has: caught before
        bring-up."""
        from harness.tech.registry import aliases, declared_daemons

        daemons = declared_daemons(topo)
        problems = []
        for number, step in enumerate(self.steps):
            if step.node is None:
                continue
            if step.node not in topo.nodes:
                problems.append(f"steps.{number}: node {step.node!r} is not in topology"
                                f" {topo.name} (it has {', '.join(topo.nodes)})")
                continue
            if step.action == "daemon_crash" and step.daemon not in daemons.get(step.node, ()):
                running = "; ".join(f"{', '.join(names)} on {node}"
                                    for node, names in daemons.items()) or "none"
                problems.append(f"steps.{number}: {step.node} runs no {step.daemon}"
                                f" (daemons in this topology: {running})")
            if step.interface in ("active", "probe"):
                if step.interface not in aliases(topo, step.node):
                    problems.append(f"steps.{number}: interface {step.interface!r} needs a"
                                    f" bond (or a team, for 'active') on {step.node},"
                                    " which has none")
            elif step.interface is not None:
                ends = topo.cable_ends(step.node)
                if step.interface not in ends:
                    problems.append(f"steps.{number}: {step.node} has no interface"
                                    f" {step.interface!r} (it has {', '.join(sorted(ends))})")
        for node in (self.traffic.server, self.traffic.client):
            if node not in topo.nodes:
                problems.append(f"traffic: node {node!r} is not in topology {topo.name}")
        if problems:
            raise ConfigError(f"scenario {path} does not fit its topology:\n  - "
                              + "\n  - ".join(problems), f"correct {path}")


def load_scenario(path: Path) -> Scenario:
    if not path.is_file():
        raise ConfigError(f"scenario file {path} does not exist",
                          "give the path of a file in scenarios/, e.g."
                          " scenarios/bond-active-backup.yaml")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"scenario {path} is not valid YAML: {exc}",
                          "fix the YAML syntax at the line shown") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"scenario {path} is not a mapping of keys",
                          "start from an existing file in scenarios/")
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        raise config_error(f"scenario {path}", exc, f"correct {path}") from exc
