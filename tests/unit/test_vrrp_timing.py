"""The pure VRRP parts: the gateway topology's parameters, virtual address lines, and the
trial columns computed from recorded state changes with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.measure import vrrp_timing
from harness.scenario.model import load_scenario
from harness.tech.vrrp.options import VirtualAddress, VrrpOptions, vrrp_options
from harness.topology.loader import build_topology
from harness.topology.model import Topology

from ..conftest import SCENARIOS

MS = 1_000_000
T0 = 1_000_000_000_000


def options(priority: int, advert_int: float = 0.1) -> VrrpOptions:
    return VrrpOptions(interface="eth0", virtual_router_id=51, version=3,
                       virtual_ipaddress=["192.0.2.254/24"], priority=priority,
                       advert_int=advert_int)


ROUTERS = {"r1": options(200), "r2": options(100)}


def event(t_ms: float, kind: str, node: str, detail: str = "") -> dict[str, object]:
    return {"t_ns": T0 + int(t_ms * MS), "kind": kind, "node": node, "detail": detail}


ELECTED = [event(-300, "vrrp_state", "r1", "BACKUP 200"),
           event(-290, "vrrp_state", "r2", "BACKUP 100"),
           event(-10, "vrrp_state", "r1", "MASTER 200")]


def columns(events, failure_ms=3000.0, restore_ms=8000.0, end_ms=12000.0):
    return vrrp_timing.vrrp_columns(events, ROUTERS, T0, T0 + int(failure_ms * MS),
                                    T0 + int((failure_ms - 1) * MS),
                                    T0 + int(restore_ms * MS), T0 + int(end_ms * MS))


def test_a_silent_master_death_gives_takeover_prediction_and_fail_back():
    row = columns([*ELECTED, event(3000, "device_down", "r1"),
                   event(3290, "vrrp_state", "r2", "MASTER 100"),
                   event(8020, "vrrp_state", "r1", "BACKUP 200"),
                   event(8345, "vrrp_state", "r1", "MASTER 200"),
                   event(8345.4, "vrrp_state", "r2", "BACKUP 100")])
    assert list(row) == vrrp_timing.COLUMNS
    assert row["vrrp_master_before"] == "r1" and row["vrrp_new_master"] == "r2"
    assert row["vrrp_takeover_ms"] == 290.0
    # r2 (priority 100) at advert_int 0.1 s, VRRPv3: 3 x 100 ms + 156/256 x 100 ms
    assert row["vrrp_master_down_ms"] == 360.937 and row["vrrp_skew_ms"] == 60.937
    assert row["vrrp_failback_ms"] == 345.0
    assert row["vrrp_master_after"] == "r1"
    # the dead r1 is master of nothing: only the 0.4 ms of the preemption overlap
    assert row["vrrp_masters_max"] == 2 and row["vrrp_dual_master_ms"] == pytest.approx(0.4)


def test_a_dead_box_is_silent_from_the_freeze_of_its_daemons():
    # device_down froze r1's keepalived at 2995 ms and took its links down at 3000 ms;
    # the runner gives the freeze as the failure
    row = columns([*ELECTED, event(2995, "daemons_silenced", "r1"),
                   event(3000, "device_down", "r1"),
                   event(3290, "vrrp_state", "r2", "MASTER 100")], failure_ms=2995)
    assert row["vrrp_master_before"] == "r1" and row["vrrp_takeover_ms"] == 295.0
    assert vrrp_timing.states_at(vrrp_timing.transitions(
        [*ELECTED, event(2995, "daemons_silenced", "r1")]), T0 + 2996 * MS)["r1"] == "DOWN"
    assert row["vrrp_masters_max"] == 1 and row["vrrp_dual_master_ms"] == 0


def test_a_master_that_never_leaves_has_no_successor():
    row = columns([*ELECTED, event(3000, "cut", "r1")])
    assert row["vrrp_new_master"] == "" and math.isnan(row["vrrp_takeover_ms"])
    # the prediction is still there: what r2 would have waited
    assert row["vrrp_master_down_ms"] == 360.937
    assert row["vrrp_master_after"] == "r1" and row["vrrp_masters_max"] == 1
    assert math.isnan(row["vrrp_failback_ms"]) and row["vrrp_dual_master_ms"] == 0


def test_split_brain_lasts_until_the_second_master_steps_down():
    row = columns([*ELECTED, event(3000, "drop_control", "r2"),
                   event(3310, "vrrp_state", "r2", "MASTER 100"),
                   event(3311, "vrrp_state", "r1", "MASTER_RX_LOWER_PRI 200"),
                   event(8015, "vrrp_state", "r2", "BACKUP 100")])
    assert row["vrrp_masters_max"] == 2
    assert row["vrrp_dual_master_ms"] == pytest.approx(8015 - 3310)
    assert row["vrrp_master_after"] == "r1"


def test_notices_read_together_keep_keepalived_s_order():
    """A starved backup flapped before the traffic (seen in UML on a loaded host): its
    MASTER and BACKUP lines came in one read and share a stamp. It ended BACKUP, so r1
    alone was master before the failure (sorting the states by name said r1+r2)."""
    flap = [*ELECTED, event(-5, "vrrp_state", "r2", "MASTER 100"),
            event(-5, "vrrp_state", "r2", "BACKUP 100")]
    assert vrrp_timing.states_at(vrrp_timing.transitions(flap), T0)["r2"] == "BACKUP"
    row = columns([*flap, event(3000, "device_down", "r1"),
                   event(3290, "vrrp_state", "r2", "MASTER 100")])
    assert row["vrrp_master_before"] == "r1" and row["vrrp_new_master"] == "r2"


def test_priority_notices_are_not_state_changes():
    changes = vrrp_timing.transitions([*ELECTED,
                                       event(5, "vrrp_state", "r1", "MASTER_PRIORITY 150")])
    assert [s for _, _, s in changes] == ["BACKUP", "BACKUP", "MASTER"]


def test_a_failure_without_vrrp_routers_gives_no_takeover():
    row = vrrp_timing.vrrp_columns([], ROUTERS, T0, None, None, None, T0 + 10 * MS)
    assert row["vrrp_master_before"] == "none" and math.isnan(row["vrrp_takeover_ms"])


# -- virtual addresses ----------------------------------------------------------------------
def test_virtual_address_lines_take_a_device_and_no_track():
    a = VirtualAddress.model_validate("198.51.100.254/24 dev eth1 no_track")
    assert (str(a.ip), a.dev, a.no_track) == ("198.51.100.254", "eth1", True)
    assert a.text == "198.51.100.254/24 dev eth1 no_track"
    assert VirtualAddress.model_validate("192.0.2.254/24").text == "192.0.2.254/24"
    with pytest.raises(ConfigError, match="label"):
        VrrpOptions(interface="eth0", virtual_router_id=1,
                    virtual_ipaddress=["192.0.2.254/24 label x"])


# -- the gateway topology -------------------------------------------------------------------
def test_the_gateway_topology_has_two_routers_sharing_both_virtual_addresses():
    topo, params = build_topology("vrrp_gateway", {})
    assert topo.routers() == ["r1", "r2"] and [v.node for v in topo.vrrp] == ["r1", "r2"]
    assert params["priority"] == [200, 100]
    r1 = vrrp_options(topo.vrrp_of("r1").options)
    assert [a.text for a in r1.virtual_ipaddress] == [
        "192.0.2.254/24", "198.51.100.254/24 dev eth1 no_track"]
    assert {(r.node, r.dst, r.via) for r in topo.routes} == {
        ("cli", "default", "192.0.2.254"), ("srv", "default", "198.51.100.254")}


def test_tracking_the_uplink_tracks_its_address_too():
    topo, _ = build_topology("vrrp_gateway", {"track_interface": "eth1", "routers": "3",
                                              "priority": "200,100,50",
                                              "unicast_peer": "true"})
    r3 = vrrp_options(topo.vrrp_of("r3").options)
    assert r3.track_interface == ["eth1"] and r3.priority == 50
    assert r3.virtual_ipaddress[1].text == "198.51.100.254/24 dev eth1"
    assert [str(p) for p in r3.unicast_peer] == ["192.0.2.1", "192.0.2.2"]


@pytest.mark.parametrize("params, problem", [
    ({"priority": "200"}, "one per router"),
    ({"track_interface": "eth0"}, "own interface"),
    ({"version": 2, "advert_int": 0.1}, "whole seconds"),
    ({"advert_intt": 1}, "advert_intt"),
])
def test_bad_gateway_parameters_are_named_before_anything_exists(params, problem):
    with pytest.raises(ConfigError, match=problem):
        build_topology("vrrp_gateway", params)


def test_vrrp_naming_an_interface_the_router_lacks_is_rejected():
    t = Topology("t", "")
    t.add_router("r1")
    t.add_switch("lan")
    t.add_link("r1", "eth0", "lan", "p1")
    t.add_vrrp("r1", interface="eth0", track_interface=["eth9"],
               virtual_ipaddress=["192.0.2.254/24 dev eth7"])
    with pytest.raises(ConfigError, match="eth9.*\n.*eth7"):
        t.validate()


def test_a_crash_step_on_a_node_without_keepalived_is_rejected(tmp_path):
    text = (SCENARIOS / "vrrp-daemon-crash.yaml").read_text()
    path = Path(tmp_path / "s.yaml")
    path.write_text(text.replace("node: r1, daemon", "node: cli, daemon"))
    scenario = load_scenario(path)
    topo, _ = build_topology(scenario.topology, scenario.params)
    with pytest.raises(ConfigError, match="cli runs no keepalived"):
        scenario.check_against(topo, path)
