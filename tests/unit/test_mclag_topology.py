"""The mclag topology and its pair's settings, checked before anything exists, and the
LACP check of a server dual-homed to the pair (one logical aggregate over two leaves),
on /proc/net/bonding files captured from a real pair (tests/data/lacp/README.md)."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.tech.lacp.check import NOT_ONE_SYSTEM, logical_end, verdict
from harness.tech.lacp.linux import linux_lacp
from harness.tech.lacp.plugin import Aggregate, bundles, tx_period_s
from harness.tech.mclag.plugin import McLag, pair_of
from harness.topology.loader import build_topology

from ..conftest import REPO, redlab

DATA = REPO / "tests" / "data" / "lacp"
VMAC = "02:00:5e:10:00:01"


def read(case: str, node: str, bond: str):
    return linux_lacp((DATA / f"mclag-{case}-{node}-{bond}.txt").read_text(), bond)


def server_and_pair(case: str):
    srv = read(case, "srv", "bond0")
    pair = logical_end({"leaf1": read(case, "leaf1", "po1"),
                        "leaf2": read(case, "leaf2", "po1")})
    return srv, pair


LINKS = {"eth0": "leaf1:p1", "eth1": "leaf2:p1"}


def test_every_leaf_bond_carries_the_shared_identity_and_leaf2_numbers_after_leaf1():
    topo, _ = build_topology("mclag", {"system_id": "02:AA:00:00:00:07",
                                       "system_priority": "100", "key": "33"})
    leaf_bonds = [b for b in topo.bonds if b.node in ("leaf1", "leaf2")]
    assert len(leaf_bonds) == 4
    for bond in leaf_bonds:
        wanted = bond.settings.wanted
        assert (wanted["ad_actor_system"], wanted["ad_actor_sys_prio"],
                wanted["ad_user_port_key"]) == ("02:aa:00:00:00:07", 100, 33)
        assert bond.first_port == (1 if bond.node == "leaf1" else 2)
        assert bond.settings.netlink["ad_actor_system"] == bytes.fromhex("02aa00000007")


def test_a_dual_homed_server_is_one_bundle_with_both_leaves():
    topo, _ = build_topology("mclag", {})
    found = {b.key: b for b in bundles(topo)}
    assert set(found) == {"srv - leaf1+leaf2", "cli - leaf1+leaf2"}
    srv = found["srv - leaf1+leaf2"]
    assert srv.near == Aggregate("srv", "bond0")
    assert srv.links == {"eth0": (Aggregate("leaf1", "po1"), "p1"),
                         "eth1": (Aggregate("leaf2", "po1"), "p1")}


def test_the_pair_is_declared_with_its_daemons_and_roles():
    topo, _ = build_topology("mclag", {"primary_leaf": "leaf2", "keepalive": "false"})
    pair = pair_of(topo)
    assert pair is not None and McLag.check(topo) == []
    assert McLag.declared_daemons(topo) == {"leaf1": ("mclagd",), "leaf2": ("mclagd",)}
    roles = {leaf.node: leaf.role_priority for leaf in pair.leaves}
    assert roles["leaf2"] < roles["leaf1"]
    assert all(leaf.keepalive is None for leaf in pair.leaves)


def test_an_agreeing_pair_is_one_aggregator_whose_partner_is_the_virtual_mac():
    srv, pair = server_and_pair("ok")
    result = verdict(srv, pair, links=LINKS)
    assert result.ok, result.problems
    assert {m.partner.system for m in srv.members.values()} == {VMAC}
    assert len({m.aggregator_id for m in srv.members.values()}) == 1
    # the leaves' ports differ (1 and 2) as real pairs' do; the server does not mind
    assert sorted(m.partner.port for m in srv.members.values()) == [1, 2]
    assert "leaf1:p1" in result.table and "leaf2:p1" in result.table


def test_leaves_with_different_ids_are_named_and_the_servers_split_is_detected():
    srv, pair = server_and_pair("mismatch")
    result = verdict(srv, pair, links=LINKS)
    assert not result.ok
    text = "\n".join(result.problems)
    assert NOT_ONE_SYSTEM in text
    assert f"leaf1 system {VMAC}" in text and "leaf2 system 02:00:5e:10:00:02" in text
    assert "split into 2 aggregators (agg 1: eth0; agg 2: eth1)" in text
    # both leaves and the server side by side
    assert all(name in result.table for name in ("eth0", "eth1", "leaf1:p1", "leaf2:p1"))


@pytest.mark.parametrize(("param", "named"), [
    ("system_id=01:00:5e:00:00:01", "multicast"),
    ("system_id=02:00:5e:10:00", "not a MAC address"),
    ("system_id=00:00:00:00:00:00", "all-zeros"),
    ("peer_timeout_ms=100", "shorter than two heartbeats"),
    ("peer_link_policy=shutdown", "peer_link_policy"),
    ("dual_active_policy=revert", "dual_active_policy"),
])
def test_bad_pair_settings_are_one_clear_error_each(param, named):
    key, value = param.split("=", 1)
    with pytest.raises(ConfigError, match=named):
        build_topology("mclag", {key: value})


def test_the_cli_refuses_a_bad_virtual_mac_before_anything_exists():
    done = redlab("run", "scenarios/mclag-member-cut.yaml", "--param",
                  "system_id=ff:ff:ff:ff:ff:ff", timeout=60)
    assert done.returncode == 2
    assert "multicast" in done.stderr and "system_id" in done.stderr
    assert "booting User-mode Linux" not in done.stderr


def test_waiting_is_given_up_at_once_for_leaves_that_present_different_systems():
    from harness.tech.lacp.check import hopeless

    assert hopeless(verdict(*server_and_pair("mismatch"), links=LINKS))
    assert not hopeless(verdict(*server_and_pair("ok"), links=LINKS))


@pytest.mark.parametrize("rate, period_s", [("fast", 1.0), ("slow", 30.0)])
def test_negotiation_waits_one_periodic_lacpdu_of_the_slowest_end(rate, period_s):
    """A lost LACPDU is repaired by the next periodic one, 30 s away at lacp_rate slow:
    bring-up's wait covers that period (LacpNegotiation.start)."""
    topo, _ = build_topology("switch_lag", {"lacp_time": rate})
    (bundle,) = bundles(topo)
    assert {tx_period_s(topo, agg) for agg in (bundle.near, *bundle.far)} == {period_s}
