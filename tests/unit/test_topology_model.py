"""Topology data is checked before anything is created."""

import pytest

from harness.errors import ConfigError
from harness.topology.loader import build_topology
from harness.topology.model import Topology


def small() -> Topology:
    t = Topology("t", "")
    t.add_host("a")
    t.add_switch("sw")
    return t


def test_link_to_an_undeclared_node_is_rejected_with_its_name():
    t = small()
    t.add_link("a", "eth0", "ghost", "p0")
    with pytest.raises(ConfigError, match="references node 'ghost', which is not declared"):
        t.validate()


def test_interface_used_by_two_links_is_rejected():
    t = small()
    t.add_link("a", "eth0", "sw", "p0")
    t.add_link("a", "eth0", "sw", "p1")
    with pytest.raises(ConfigError, match="a:eth0 is used by two links"):
        t.validate()


def test_switch_names_that_would_overflow_ifnamsiz_are_rejected():
    t = Topology("t", "")
    t.add_switch("toolong")
    with pytest.raises(ConfigError, match="switch name 'toolong' is longer"):
        t.validate()


def test_bond_member_without_a_cable_is_rejected():
    t = small()
    t.add_link("a", "eth0", "sw", "p0")
    t.add_bond("a", "bond0", ["eth0", "eth9"])
    with pytest.raises(ConfigError, match="member 'eth9' is not an interface of any link"):
        t.validate()


def test_far_end_of_a_cable_is_found_from_either_side():
    t = small()
    t.add_link("a", "eth0", "sw", "p0")
    assert t.far_end("a", "eth0") == ("sw", "p0")
    assert t.far_end("sw", "p0") == ("a", "eth0")


def test_bond_server_builds_a_consistent_topology_with_defaults():
    topo, params = build_topology("bond_server", {})
    assert params["bond_mode"] == "active-backup" and params["miimon"] == 100
    bond = topo.bond("srv")
    assert bond.members == ("eth0", "eth1")
    assert topo.far_end("srv", "eth0") == ("sw", "p1")


def test_unknown_topology_names_the_known_ones():
    with pytest.raises(ConfigError, match="bond_server"):
        build_topology("no_such_topology", {})


def test_a_lag_on_a_linux_bridge_is_rejected_because_bridges_drop_lacpdus():
    t = small()
    t.add_link("a", "eth0", "sw", "p0")
    t.add_link("a", "eth1", "sw", "p1")
    t.add_lag("sw", "lag0", ["p0", "p1"])
    with pytest.raises(ConfigError, match="'sw', which is not an Open vSwitch switch"):
        t.validate()


def test_a_lag_port_without_a_cable_and_a_one_port_lag_are_rejected():
    t = Topology("t", "")
    t.add_host("a")
    t.add_switch("sw", impl="ovs")
    t.add_link("a", "eth0", "sw", "p0")
    t.add_lag("sw", "lag0", ["p0", "p9"])
    t.add_lag("sw", "lag1", ["p0"])
    with pytest.raises(ConfigError) as info:
        t.validate()
    assert "port 'p9' is not an interface of any link" in info.value.problem
    assert "lag1 needs at least two ports" in info.value.problem


def test_a_non_positive_link_rate_is_rejected():
    t = small()
    t.add_link("a", "eth0", "sw", "p0", rate_mbit=0)
    with pytest.raises(ConfigError, match="rate 0 Mbit/s"):
        t.validate()


def test_lag_server_builds_n_members_shaped_and_one_lag():
    topo, params = build_topology("lag_server", {"members": "3", "member_rate_mbit": "50"})
    assert topo.bond("srv").members == ("eth0", "eth1", "eth2")
    assert topo.lag("sw").ports == ("p1", "p2", "p3")
    assert [link.rate_mbit for link in topo.links] == [None, 50, 50, 50]
    assert topo.nodes["sw"].impl == "ovs"
    assert params["bond_mode"] == "802.3ad"


def test_a_lag_primary_that_is_not_one_of_its_ports_is_rejected():
    with pytest.raises(ConfigError, match="primary 'l9' is not one of its ports"):
        build_topology("switch_lag", {"bond_mode": "active-backup", "lacp": "off",
                                      "peer_lacp": "off", "primary": "l9"})
