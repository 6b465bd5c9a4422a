"""The SPoF audit's pure parts: failure units read from the shipped topologies, the
graph's prediction, each trial's scenario (checked as a user's scenario is), and the
verdict read from a summary row. The lab measurement is tests/lab/test_audit.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.audit import graph, plan, units, verdict
from harness.cli_audit import run_audit
from harness.errors import ConfigError
from harness.scenario.model import Scenario, load_scenario
from harness.tech.registry import kernel_features
from harness.topology.loader import build_topology

from ..conftest import SCENARIOS

ENDS = ("srv", "cli")


def audit_of(name: str, order: int = 1, **params):
    topo, _ = build_topology(name, params)
    found = units.failure_units(topo, ENDS)
    sets = units.unit_sets(found, order, 500)
    return topo, dict(zip((" + ".join(u.label for u in s) for s in sets),
                          graph.predict(topo, sets, ENDS), strict=True))


def test_bond_server_the_switch_is_a_spof_and_each_member_is_not():
    _, predicted = audit_of("bond_server")
    assert predicted == {
        "cli:eth0 <-> sw:p0": "spof",          # the client's only cable
        "srv:eth0 <-> sw:p1": "redundant", "srv:eth1 <-> sw:p2": "redundant",
        "srv:eth0": "redundant", "srv:eth1": "redundant",
        "sw": "spof",
    }


def test_two_switches_move_the_spof_to_the_core():
    _, predicted = audit_of("bond_two_switches")
    assert predicted["sw1"] == predicted["sw2"] == "redundant"
    assert predicted["core"] == "spof"


def test_a_vrrp_pair_makes_each_router_and_its_daemon_redundant():
    _, predicted = audit_of("vrrp_gateway")
    assert predicted["r1"] == predicted["r2"] == "redundant"
    assert predicted["keepalived on r1"] == predicted["keepalived on r2"] == "redundant"
    assert predicted["lan"] == predicted["wan"] == "spof"


def test_an_mclag_leaf_and_its_agent_are_units_and_the_orphan_host_is_not():
    topo, predicted = audit_of("mclag")
    assert predicted["leaf1"] == predicted["leaf2"] == "redundant"
    assert "mclagd on leaf1" in predicted and "orph" not in predicted
    assert not graph.single_points(graph.build_graph(topo), ENDS)


def test_the_whole_path_has_no_spof_until_a_tier_loses_its_redundancy():
    """dc_edge: the shape of the full path leaves no single point besides the endpoints;
    each parameter that takes a tier's redundancy away shows up as its SPoFs."""
    topo, predicted = audit_of("dc_edge")
    assert len(predicted) == 37 and set(predicted.values()) == {"redundant"}
    assert {"leaf1", "r1", "up1", "mclagd on leaf1", "keepalived on r1"} <= set(predicted)
    assert not graph.single_points(graph.build_graph(topo), ENDS)
    spofs = {params: sorted(u for u, p in audit_of("dc_edge", **dict([params]))[1].items()
                            if p == "spof")
             for params in (("routers", 1), ("uplinks", 1), ("track_uplink", False))}
    assert spofs[("routers", 1)] == ["r1", "r1:eth2 <-> up1:p1", "up1"]
    assert spofs[("uplinks", 1)] == ["cli:eth0 <-> up1:p0", "up1"]
    # the graph cannot see tracking: an untracked uplink is the audit's disagreement
    assert spofs[("track_uplink", False)] == []


def test_order_two_finds_the_pair_of_members_and_leaves_out_a_device_with_its_cables():
    _, predicted = audit_of("bond_server", order=2)
    assert predicted["srv:eth0 <-> sw:p1 + srv:eth1 <-> sw:p2"] == "spof"
    assert predicted["srv:eth0 <-> sw:p1 + srv:eth1"] == "spof"
    assert predicted["srv:eth0 <-> sw:p1 + srv:eth0"] == "redundant"  # one member, twice
    # the switch with one of its own cables is the switch's death again: left out
    assert not [k for k in predicted if k.endswith(" + sw") and " <-> sw:" in k]
    assert predicted["srv:eth0 + sw"] == "spof"   # a NIC and the switch: a real pair


def test_an_order_two_audit_larger_than_max_trials_says_how_many_before_starting():
    topo, _ = build_topology("mclag", {})
    found = units.failure_units(topo, ENDS)
    with pytest.raises(ConfigError) as err:
        units.unit_sets(found, 2, 10)
    pairs = len(units.unit_sets(found, 2, 10_000))
    assert f"is {pairs} trials" in err.value.problem
    assert f"--max-trials {pairs}" in err.value.fix


@pytest.mark.parametrize("name", ["bond_server", "vrrp_gateway", "mclag", "dc_edge"])
def test_every_trial_is_a_scenario_a_user_could_run(name, tmp_path):
    """Written to YAML, loaded and checked against its topology exactly as redlab run
    checks a user's file: every unit's step names a real node and interface."""
    topo, _ = build_topology(name, {})
    for number, unit_set in enumerate(units.unit_sets(units.failure_units(topo, ENDS), 1, 99),
                                      start=1):
        trial = plan.Trial(number, unit_set)
        path = plan.write_scenario(tmp_path, plan.scenario_doc(topo, {}, trial, ENDS), trial)
        scenario = load_scenario(path)
        scenario.check_against(topo, path)
        assert [s.action for s in scenario.steps][-1] == "restore"
        assert set(kernel_features(topo)) <= set(scenario.requires)


def test_a_pair_is_failed_together_and_repaired_together():
    topo, _ = build_topology("bond_server", {})
    a, b = units.failure_units(topo, ENDS)[1:3]
    doc = plan.scenario_doc(topo, {"miimon": "50"}, plan.Trial(7, (a, b)), ENDS)
    scenario = Scenario.model_validate(doc)
    assert [(s.action, s.at_s) for s in scenario.steps] == [
        ("cut", plan.FAIL_AT_S), ("cut", plan.FAIL_AT_S),
        ("restore", plan.FAIL_AT_S + plan.HOLD_S), ("restore", plan.FAIL_AT_S + plan.HOLD_S)]
    assert scenario.traffic.duration_s == 7
    longer = Scenario.model_validate(plan.scenario_doc(topo, {}, plan.Trial(8, (a,)), ENDS,
                                                       hold_s=7.5))
    assert [s.at_s for s in longer.steps] == [2.0, 9.5] and longer.traffic.duration_s == 12
    assert scenario.params == {"miimon": "50"} and scenario.requires == ["bonding"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_shipped_scenario_requires_what_its_technologies_need(path):
    """The technologies' kernel_features (what the audit asks for) agree with the
    requires: a scenario author wrote by hand."""
    scenario = load_scenario(path)
    topo, _ = build_topology(scenario.topology, scenario.params)
    assert set(kernel_features(topo)) <= set(scenario.requires), path.name


def trial() -> plan.Trial:
    return plan.Trial(1, (units.Unit("device", "sw", label="sw"),))


def test_a_service_not_back_before_the_repair_is_a_spof():
    row = verdict.audit_row(trial(), "spof", {"recovered_before_restore": "False",
                                               "failover_gap_ms": 3012.5,
                                               "capacity_retained_pct": 0.0}, "run")
    assert (row["verdict"], row["measured"], row["agrees"]) == (
        "spof", "down until the repair", True)


def test_a_redundant_prediction_that_stops_the_service_is_a_disagreement():
    row = verdict.audit_row(trial(), "redundant", {"recovered_before_restore": False,
                                                   "failover_gap_ms": 3000.0}, "run")
    assert row["verdict"] == "spof" and row["agrees"] is False
    assert "the graph has a path without it" in row["note"]


def test_back_with_less_than_half_the_throughput_is_degraded_and_nothing_lost_is_zero():
    degraded = verdict.audit_row(trial(), "redundant", {
        "recovered_before_restore": True, "failover_gap_ms": 95.0,
        "capacity_retained_pct": 30.0}, "run")
    assert (degraded["verdict"], degraded["measured"], degraded["agrees"]) == (
        "degraded", "back after 95 ms", True)
    clean = verdict.audit_row(trial(), "redundant", {
        "recovered_before_restore": "True", "failover_gap_ms": 0.0,
        "capacity_retained_pct": 99.0}, "run")
    assert (clean["verdict"], clean["measured"], clean["gap_ms"]) == (
        "redundant", "nothing lost", 0.0)


def test_a_trial_that_did_not_finish_is_not_measured_and_says_why():
    row = verdict.audit_row(trial(), "spof", None, "run", "redlab run exited 1")
    assert row["verdict"] == "not measured" and row["note"] == "redlab run exited 1"
    assert math.isnan(row["gap_ms"])


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"topology": "no_such"}, "unknown topology"),
    ({"order": 3}, "--order 3"),
    ({"endpoints": ("srv", "sw")}, "is a switch"),
    ({"endpoints": ("srv", "srv")}, "both 'srv'"),
    ({"param": ["miimon=-4"]}, "miimon"),
    ({"lab": "kvm"}, "--lab"),
    ({"resume": True, "out": None}, "--resume needs --out"),
])
def test_bad_input_is_one_clear_error_and_creates_nothing(kwargs, problem, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"topology": "bond_server", "param": [], "order": 1, "endpoints": ENDS,
            "max_trials": 60, "out": tmp_path / "audit", "resume": False, "lab": "auto",
            "deadline": 60.0, **kwargs}
    with pytest.raises(ConfigError, match=problem):
        run_audit(**args)
    assert list(tmp_path.iterdir()) == []


def test_an_audit_folder_is_not_overwritten_without_resume(tmp_path):
    (tmp_path / "old.csv").write_text("x")
    with pytest.raises(ConfigError, match="already holds files"):
        run_audit("bond_server", [], 1, ENDS, 60, tmp_path, False, "auto", 60.0)


def test_the_drawing_colours_each_unit_by_its_verdict(tmp_path):
    from harness.audit.draw import draw

    topo, _ = build_topology("bond_server", {})
    found = units.failure_units(topo, ENDS)
    rows = [{"verdict": "spof" if u.kind == "device" else "redundant", "agrees": True}
            for u in found]
    out = draw(topo, ENDS, list(zip(found, rows, strict=True)), tmp_path / "audit.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_units_are_named_for_folders():
    keys = [u.key for u in units.failure_units(build_topology("vrrp_gateway", {})[0], ENDS)]
    assert len(set(keys)) == len(keys)
    assert all(Path(k).name == k and " " not in k for k in keys)
