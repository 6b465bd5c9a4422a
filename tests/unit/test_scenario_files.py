"""Scenario and suite files: every shipped one loads; typos and bad values are clear errors."""

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.scenario.model import load_scenario
from harness.scenario.suite import load_suite
from harness.topology.loader import build_topology

from ..conftest import SCENARIOS


def load_and_fit(path: Path) -> None:
    """What ``redlab run`` checks of a scenario before any lab exists: it loads, its
    topology builds with its parameters, and every node and interface it names is in
    that topology."""
    scenario = load_scenario(path)
    topo, _ = build_topology(scenario.topology, scenario.params)
    scenario.check_against(topo, path)


SHIPPED = sorted([*SCENARIOS.glob("*.yaml"), *SCENARIOS.glob("quick/*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_loads_and_builds_its_topology(path):
    load_and_fit(path)


@pytest.mark.parametrize("path", sorted((SCENARIOS / "suites").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_suite_names_existing_scenarios(path):
    assert load_suite(path).runs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


VALID = (SCENARIOS / "bond-active-backup.yaml").read_text()


def test_a_misspelt_key_is_reported_by_name(tmp_path):
    path = write(tmp_path, VALID.replace("duration_s:", "duraton_s:"))
    with pytest.raises(ConfigError, match=r"traffic.duraton_s: unknown key"):
        load_scenario(path)


def test_broken_yaml_is_reported_with_the_file(tmp_path):
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_scenario(path)


def test_steps_out_of_time_order_are_rejected(tmp_path):
    path = write(tmp_path, VALID.replace("at_s: 7", "at_s: 1"))
    with pytest.raises(ConfigError, match="time order"):
        load_scenario(path)


def test_a_step_after_traffic_ends_is_rejected(tmp_path):
    path = write(tmp_path, VALID.replace("at_s: 7", "at_s: 12"))
    with pytest.raises(ConfigError, match="not before the end of traffic"):
        load_scenario(path)


def test_an_unknown_parameter_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        build_topology("bond_server", {"mimon": "100"})
    assert "mimon: unknown key" in info.value.problem
    assert "miimon" in info.value.fix


def test_an_unknown_bond_mode_parameter_names_the_valid_modes():
    with pytest.raises(ConfigError, match="unknown bond mode 'active-bakup'.*802.3ad"):
        build_topology("bond_server", {"bond_mode": "active-bakup"})


def test_a_missing_scenario_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.yaml")


def test_a_step_naming_a_node_the_topology_lacks_is_rejected_before_bring_up(tmp_path):
    path = write(tmp_path, VALID.replace("node: srv", "node: srv9"))
    scenario = load_scenario(path)
    topo, _ = build_topology(scenario.topology, scenario.params)
    with pytest.raises(ConfigError, match="node 'srv9' is not in topology bond_server"):
        scenario.check_against(topo, path)


def test_the_shipped_scenario_check_fails_on_a_scenario_naming_a_missing_node(tmp_path):
    # what the shipped-scenario test above runs, on a file whose traffic names a client
    # the topology lacks: loading and building alone would let it through
    path = write(tmp_path, VALID.replace("client: cli ", "client: cli9 "))
    scenario = load_scenario(path)
    build_topology(scenario.topology, scenario.params)
    with pytest.raises(ConfigError, match="traffic: node 'cli9' is not in topology bond_server"):
        load_and_fit(path)


def test_a_degrade_step_without_netem_in_requires_is_rejected(tmp_path):
    path = write(tmp_path, VALID.replace(
        "action: cut, node: srv, interface: active, end: far",
        "action: degrade, node: srv, interface: eth0, loss_pct: 100"))
    with pytest.raises(ConfigError, match="needs netem"):
        load_scenario(path)


def test_traffic_overrides_apply_and_are_checked(tmp_path):
    scenario = load_scenario(SCENARIOS / "lag-flows.yaml")
    assert scenario.with_traffic({"parallel": "8"}, tmp_path).traffic.parallel == 8
    with pytest.raises(ConfigError, match="parallel"):
        scenario.with_traffic({"parallel": "0"}, tmp_path)
    with pytest.raises(ConfigError, match="paralel: unknown key"):
        scenario.with_traffic({"paralel": "8"}, tmp_path)


def test_a_sweep_expands_into_one_run_per_combination(tmp_path):
    (tmp_path / "s.yaml").write_text(VALID)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: b\nintent: i\nruns:\n  - scenario: s.yaml\n    params: {updelay: 0}\n"
                     "    sweep: {miimon: [10, 100], traffic.parallel: [1, 4]}\n")
    runs = load_suite(suite).runs
    assert [(r.params["miimon"], r.params["traffic.parallel"]) for r in runs] == [
        (10, 1), (10, 4), (100, 1), (100, 4)]
    assert all(r.params["updelay"] == 0 and not r.sweep for r in runs)


def test_a_device_named_by_the_cable_to_it_must_be_the_far_end(tmp_path):
    far = VALID.replace("action: cut, node: srv, interface: active, end: far",
                        "action: device_down, node: srv, interface: eth0, end: far")
    assert load_scenario(write(tmp_path, far)).steps[0].interface == "eth0"
    near = far.replace("end: far", "end: near")
    with pytest.raises(ConfigError, match="far end of that cable"):
        load_scenario(write(tmp_path, near))
