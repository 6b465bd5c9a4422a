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
