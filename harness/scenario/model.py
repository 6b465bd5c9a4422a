"""The scenario file format (YAML), checked strictly: a typo is an error, never ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import ConfigError
from harness.validation import config_error

Feature = Literal["bonding", "openvswitch", "netem", "team", "8021q"]


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


class Step(Strict):
    """At ``at_s`` seconds after traffic starts, cut a cable or restore the last cut.

    ``interface: active`` means the bond's active member on ``node`` at that moment.
    """

    at_s: float = Field(ge=0)
    action: Literal["cut", "restore"]
    node: str | None = None
    interface: str | None = None
    end: Literal["near", "far", "both"] = "far"

    @model_validator(mode="after")
    def _target(self) -> Step:
        if self.action == "cut" and not (self.node and self.interface):
            raise ValueError("a cut needs node and interface")
        return self


class Scenario(Strict):
    name: str
    intent: str
    topology: str
    requires: list[Feature] = []
    params: dict[str, Any] = {}
    traffic: Traffic
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _timeline(self) -> Scenario:
        times = [s.at_s for s in self.steps]
        if times != sorted(times):
            raise ValueError("steps must be in time order (at_s increasing)")
        if times[-1] >= self.traffic.duration_s:
            raise ValueError(f"the last step at {times[-1]} s is not before the end of"
                             f" traffic at {self.traffic.duration_s} s")
        return self


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
