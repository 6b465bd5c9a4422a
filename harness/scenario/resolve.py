"""A scenario as a run will run it: its file, ``--param`` overrides and a suite run's
expectations applied, its topology built, and all of it checked before anything exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.results import verdicts
from harness.results.verdicts import Bound
from harness.scenario.model import Scenario, load_scenario
from harness.topology.loader import build_topology
from harness.topology.model import Topology


def resolve(scenario_path: Path, overrides: dict[str, str],
            expect: dict[str, Bound] | None = None) -> tuple[Scenario, Topology, dict[str, Any]]:
    """Scenario, topology and parameters with ``overrides`` applied, all checked.

    ``traffic.<field>=value`` overrides the scenario's traffic (e.g. traffic.parallel=8);
    every other key is a topology parameter.  ``expect`` (a suite run's) adds to the
    scenario's expectations, whose names are checked as far as they can be before a run.
    """
    scenario = load_scenario(scenario_path).with_expect(expect or {})
    traffic = {k.removeprefix("traffic."): v for k, v in overrides.items()
               if k.startswith("traffic.")}
    if traffic:
        scenario = scenario.with_traffic(traffic, scenario_path)
    topo_params = {k: v for k, v in overrides.items() if not k.startswith("traffic.")}
    topology, params = build_topology(scenario.topology, {**scenario.params, **topo_params})
    scenario.check_against(topology, scenario_path)
    verdicts.check_before_run(scenario.expect, verdicts.known_before_run(params),
                              f"scenario {scenario_path}")
    return scenario, topology, params


def lab_needs(scenario: Scenario, topology: Topology) -> list[str]:
    """The kernel features a run needs: the scenario's, and tbf where a topology shapes
    its cables (a rate parameter), whatever the scenario lists."""
    return list(dict.fromkeys([*scenario.requires,
                               *(["tbf"] if any(k.rate_mbit for k in topology.links) else [])]))


def suite_overrides(params: dict[str, Any]) -> dict[str, str]:
    """A suite's YAML values as --param would give them (a list becomes a,b)."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in params.items()}


def boot_extras(scenario: Scenario) -> tuple[str, ...]:
    """Modules a guest loads at boot for this scenario beyond its features': the tc
    filter's, where a step drops control traffic."""
    from harness.inject.filter import TC_MODULES

    return TC_MODULES if any(step.action == "drop_control" for step in scenario.steps) else ()
