"""Windows NIC teaming profiles mapped onto kernel bonds: every combination Windows offers,
the ones it does not, and the README's table. The kernel's read-back of each is
tests/lab/test_bond_modes.py."""

from __future__ import annotations

import itertools

import pytest

from harness.errors import ConfigError
from harness.tech.bond import windows
from harness.topology.loader import build_topology

from ..conftest import REPO

EXPECTED = {
    ("switch_independent", "address_hash"): (
        "balance-tlb", {"tlb_dynamic_lb": 0, "xmit_hash_policy": "layer3+4"}),
    ("switch_independent", "dynamic"): ("balance-tlb", {"tlb_dynamic_lb": 1}),
    ("switch_independent", "hyperv_port"): (
        "balance-tlb", {"tlb_dynamic_lb": 0, "xmit_hash_policy": "layer2"}),
    ("static", "address_hash"): ("balance-xor", {"xmit_hash_policy": "layer3+4"}),
    ("static", "dynamic"): ("balance-xor", {"xmit_hash_policy": "layer3+4"}),
    ("static", "hyperv_port"): ("balance-xor", {"xmit_hash_policy": "layer2"}),
    ("lacp", "address_hash"): ("802.3ad", {"lacp_rate": "fast", "xmit_hash_policy": "layer3+4"}),
    ("lacp", "dynamic"): ("802.3ad", {"lacp_rate": "fast", "xmit_hash_policy": "layer3+4"}),
    ("lacp", "hyperv_port"): ("802.3ad", {"lacp_rate": "fast", "xmit_hash_policy": "layer2"}),
}


def server_bond(name: str = "bond_server", **params):
    topo, _ = build_topology(name, params)
    return next(b for b in topo.bonds if b.node == "srv")


@pytest.mark.parametrize(("mode", "lb"), list(itertools.product(windows.TEAMING_MODES,
                                                                windows.LOAD_BALANCING)))
def test_every_combination_is_the_bond_the_table_names(mode, lb):
    bond = server_bond(teaming_mode=mode, load_balancing=lb)
    want_mode, options = EXPECTED[(mode, lb)]
    assert bond.settings.mode == want_mode
    assert {k: bond.settings.wanted.get(k) for k in options} == options
    assert bond.settings.wanted["miimon"] == 100   # the topology's link monitor stays


def test_a_standby_adapter_is_active_backup_with_the_other_member_primary():
    bond = server_bond(teaming_mode="switch_independent", standby_adapter="eth1")
    assert bond.settings.mode == "active-backup"
    assert bond.settings.wanted["primary"] == "eth0"
    assert bond.settings.wanted["primary_reselect"] == "always"


def test_the_lacp_timer_is_the_bonds_lacp_rate_and_lacp_crosses_the_mclag_pair():
    bond = server_bond("mclag", teaming_mode="lacp", lacp_timer="slow")
    assert (bond.settings.mode, bond.settings.wanted["lacp_rate"]) == ("802.3ad", "slow")


def test_kernel_options_that_agree_with_the_profile_stand_beside_it():
    """A shipped scenario's params (bond_mode: 802.3ad, lacp_rate: fast) under a
    --param teaming_mode=lacp: the same bond, no error."""
    bond = server_bond("lag_server", bond_mode="802.3ad", lacp_rate="fast",
                       teaming_mode="lacp")
    assert (bond.settings.mode, bond.settings.wanted["lacp_rate"]) == ("802.3ad", "fast")
    bond = server_bond(teaming_mode="switch_independent", miimon=50)
    assert bond.settings.wanted["miimon"] == 50


def test_without_a_profile_the_kernel_options_stand():
    assert server_bond().settings.mode == "active-backup"
    assert server_bond(bond_mode="balance-xor").settings.mode == "balance-xor"


@pytest.mark.parametrize(("name", "params", "problem"), [
    ("bond_server", {"teaming_mode": "static", "standby_adapter": "eth1"},
     "standby adapter in a static team"),
    ("bond_server", {"teaming_mode": "switch_independent", "standby_adapter": "eth7"},
     "not a member"),
    ("bond_server", {"teaming_mode": "static", "lacp_timer": "fast"}, "LACP team's setting"),
    ("bond_server", {"load_balancing": "dynamic"}, "without teaming_mode"),
    ("bond_server", {"teaming_mode": "lacp", "bond_mode": "balance-rr"},
     "bond_mode balance-rr is asked too"),
    ("bond_server", {"teaming_mode": "lacp", "xmit_hash_policy": "layer2"},
     "xmit_hash_policy layer2 is asked too"),
    ("mclag", {"teaming_mode": "lacp", "lacp_timer": "slow", "lacp_rate": "fast"},
     "lacp_rate fast is asked too"),
    ("bond_server", {"teaming_mode": "nic_teaming"}, "teaming_mode"),
    ("mclag", {"teaming_mode": "switch_independent"}, "does not suit"),
])
def test_what_windows_does_not_offer_is_one_clear_error(name, params, problem):
    with pytest.raises(ConfigError, match=problem):
        build_topology(name, params)


def test_the_readme_carries_the_mapping_with_its_limits_and_sources():
    readme = (REPO / "README.md").read_text()
    for row in windows.MAPPING:
        assert f"| {row.windows} | {row.linux} | {row.differs} | {row.source} |" in readme
