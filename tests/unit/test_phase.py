"""Phase sampling (harness.scenario.runner.phase): each trial's steps start a random part
of one period of the clock its first failure races, the period each technology names
for the shipped scenarios' failures. No lab: the topologies are built as data."""

from __future__ import annotations

import random

import pytest

from harness.scenario.resolve import resolve
from harness.scenario.runner import phase, traffic_extension_s
from harness.tech.registry import TECHNOLOGIES

from ..conftest import SCENARIOS


def period_of(name: str, **overrides: str) -> dict[str, float]:
    scenario, topology, _ = resolve(SCENARIOS / f"{name}.yaml", dict(overrides))
    techs = [t for t in TECHNOLOGIES if t.used_by(topology)]
    return phase(techs, topology, scenario, random.Random(1))


@pytest.mark.parametrize(("name", "overrides", "period"), [
    ("bond-active-backup", {}, 100),                        # miimon
    ("bond-active-backup", {"miimon": "250"}, 250),
    ("vrrp-master-death", {}, 100),                         # its advert_int, 0.1 s
    ("vrrp-master-death", {"advert_int": "1"}, 1000),
    ("mclag-leaf-death", {"heartbeat_ms": "300", "peer_timeout_ms": "900"}, 300),
    ("lacp-timeout", {"lacp_rate": "fast"}, 1000),          # the LACP tick
    ("lacp-timeout", {"lacp_rate": "slow"}, 30000),
    ("mclag-silent", {}, 1000),
])
def test_each_failure_races_the_clock_of_its_mechanism(name, overrides, period):
    drawn = period_of(name, **overrides)
    assert drawn["period_ms"] == period
    assert 0 <= drawn["offset_ms"] <= period


def test_offsets_spread_over_the_whole_period():
    scenario, topology, _ = resolve(SCENARIOS / "vrrp-master-death.yaml", {"advert_int": "1"})
    techs = [t for t in TECHNOLOGIES if t.used_by(topology)]
    rng = random.Random(7)
    offsets = [phase(techs, topology, scenario, rng)["offset_ms"] for _ in range(50)]
    assert min(offsets) < 150 and max(offsets) > 850  # not one point of the advert clock


def test_a_baseline_or_a_scenario_that_opts_out_waits_nothing():
    scenario, topology, _ = resolve(SCENARIOS / "bond-active-backup.yaml", {})
    techs = [t for t in TECHNOLOGIES if t.used_by(topology)]
    fixed = scenario.model_copy(update={"sample_phase": False})
    assert phase(techs, topology, fixed) == {"period_ms": 0.0, "offset_ms": 0.0}
    baseline = scenario.model_copy(update={"steps": []})
    assert phase(techs, topology, baseline) == {"period_ms": 0.0, "offset_ms": 0.0}


@pytest.mark.parametrize(("name", "overrides", "offset_ms", "extra_s"), [
    ("bond-active-backup", {}, 0.0, 0),       # restore at 7 s of 10: a 3 s tail
    ("bond-active-backup", {}, 99.9, 0),      # a miimon's offset takes 3 % of it
    ("bond-active-backup", {}, 300.0, 0),     # a tenth: still no more traffic
    ("bond-active-backup", {}, 300.5, 1),     # beyond: a whole second more
    ("vrrp-master-death", {"advert_int": "1"}, 999.0, 1),
    ("lacp-timeout", {"lacp_rate": "slow"}, 29_500.0, 30),
])
def test_the_traffic_runs_longer_only_where_the_offset_would_eat_the_last_tail(
        name, overrides, offset_ms, extra_s):
    scenario, _, _ = resolve(SCENARIOS / f"{name}.yaml", dict(overrides))
    assert traffic_extension_s(scenario, offset_ms) == extra_s
