"""Bond modes and options are checked and converted before anything exists.

Pure: no kernel is touched. What the kernel itself does with these options is proved in
tests/lab/test_bond_modes.py, inside User-mode Linux.
"""

import json

import pytest
from pyroute2.netlink.rtnl.ifinfmsg.plugins.bond import bond as pyroute2_bond

from harness.errors import ConfigError, LabError
from harness.tech.bond.netlink import BondState, check_read_back, read_options
from harness.tech.bond.options import (
    BOND_MODES,
    MAX_ARP_TARGETS,
    OPTIONS,
    bond_settings,
    mode_name,
    mode_number,
    parse_arp_targets,
)
from harness.topology.loader import build_topology

from ..conftest import redlab

MEMBERS = ("eth0", "eth1")


def settings(**options):
    return bond_settings(options, MEMBERS, "b0")


def refused(**options) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings(**options)
    return info.value


# -- modes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "number"), [("active-backup", 1), ("1", 1), (4, 4),
                                                ("802.3ad", 4), ("Balance-RR", 0)])
def test_mode_names_and_numbers_map_to_the_kernel_numbering(given, number):
    assert mode_number(given) == number
    assert mode_name(given) == BOND_MODES[number]


@pytest.mark.parametrize("bad", ["active-bakup", "7", "lacp", ""])
def test_unknown_mode_is_an_error_listing_every_valid_mode(bad):
    with pytest.raises(ConfigError) as info:
        mode_number(bad)
    assert "unknown bond mode" in info.value.problem
    assert all(name in info.value.fix for name in BOND_MODES)


def test_unknown_mode_in_options_is_refused():
    assert "unknown bond mode" in refused(mode="lacp").problem


def test_mode_defaults_to_active_backup():
    assert settings().mode == "active-backup"


# -- option names and values ----------------------------------------------------------------

def test_every_option_is_an_attribute_pyroute2_knows():
    known = {name for name, _ in pyroute2_bond.nla_map}
    assert {opt.attr for opt in OPTIONS.values()} <= known
    assert OPTIONS["lacp_rate"].keyword == "bond_ad_lacp_rate"


def test_unknown_option_is_refused_naming_it_and_the_known_ones():
    err = refused(miimon=100, lacp_speed="fast")
    assert "lacp_speed" in err.problem
    assert all(key in err.fix for key in OPTIONS)


def test_pyroute2_spelling_of_lacp_rate_is_accepted():
    assert settings(mode="802.3ad", ad_lacp_rate="fast").wanted == {"lacp_rate": "fast"}


@pytest.mark.parametrize(("key", "given", "name", "number"), [
    ("arp_validate", "filter", "filter", 4),
    ("arp_validate", "6", "filter_backup", 6),
    ("primary_reselect", "Failure", "failure", 2),
    ("fail_over_mac", "follow", "follow", 2),
    ("xmit_hash_policy", "layer3+4", "layer3+4", 1),
    ("xmit_hash_policy", "layer2+3", "layer2+3", 2),
    ("xmit_hash_policy", "vlan+srcmac", "vlan+srcmac", 5),
    ("lacp_rate", "fast", "fast", 1),
    ("ad_select", 2, "count", 2),
])
def test_enum_values_become_the_kernels_numbers(key, given, name, number):
    mode = "802.3ad" if key in ("lacp_rate", "ad_select") else "active-backup"
    extra = {"arp_interval": 100, "arp_ip_target": "192.0.2.1", "miimon": 0} \
        if key == "arp_validate" else {}
    result = settings(mode=mode, **extra, **{key: given})
    assert result.wanted[key] == name
    assert result.netlink[key] == number


@pytest.mark.parametrize(("key", "bad"), [("arp_validate", "strict"), ("lacp_rate", "2"),
                                          ("xmit_hash_policy", "layer4"),
                                          ("primary_reselect", "never"),
                                          ("fail_over_mac", "yes"), ("ad_select", "")])
def test_bad_enum_value_is_refused_listing_the_kernels_values(key, bad):
    err = refused(mode="802.3ad", **{key: bad})
    assert key in err.problem and repr(bad) in err.problem
    assert all(value in err.fix for value in OPTIONS[key].values)


@pytest.mark.parametrize("bad", [-1, "100ms", True, 2**31, "1.5"])
def test_times_and_counts_must_be_whole_numbers_the_kernel_can_hold(bad):
    assert "whole number" in refused(miimon=bad).problem
    assert "whole number" in refused(min_links=bad).problem


def test_none_means_the_kernels_default_and_is_not_sent():
    assert settings(miimon=100, lacp_rate=None).wanted == {"miimon": 100}


# -- the primary ---------------------------------------------------------------------------

def test_primary_must_be_a_member():
    err = refused(primary="eth2")
    assert "eth2" in err.problem and "not a member" in err.problem
    assert "eth0" in err.fix and "eth1" in err.fix


@pytest.mark.parametrize("mode", ["active-backup", "balance-tlb", "balance-alb"])
def test_primary_is_kept_by_name_until_the_member_exists(mode):
    result = settings(mode=mode, primary="eth1", primary_reselect="better")
    assert result.wanted["primary"] == "eth1"
    assert result.netlink["primary"] == "eth1"  # its ifindex is looked up once enslaved


# -- options bound to modes ------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "mode"), [
    ("primary", "eth0", "balance-rr"), ("primary", "eth0", "802.3ad"),
    ("lacp_rate", "fast", "active-backup"), ("lacp_rate", "slow", "balance-alb"),
    ("arp_interval", 100, "802.3ad"), ("arp_validate", "all", "balance-tlb"),
])
def test_an_option_the_kernel_refuses_in_a_mode_is_refused_first(key, value, mode):
    err = refused(mode=mode, miimon=0, **{key: value})
    assert f"option {key}=" in err.problem and mode in err.problem
    assert "the kernel refuses it" in err.problem


def test_ad_select_outside_802_3ad_is_refused_as_having_no_effect():
    err = refused(mode="active-backup", ad_select="bandwidth")
    assert "ad_select" in err.problem and "the kernel ignores it" in err.problem
    assert settings(mode="4", ad_select="bandwidth").wanted == {"ad_select": "bandwidth"}


# -- link monitors ---------------------------------------------------------------------------

def test_miimon_and_arp_interval_are_exclusive():
    err = refused(miimon=100, arp_interval=100, arp_ip_target="192.0.2.1")
    assert "miimon=100" in err.problem and "arp_interval=100" in err.problem


def test_arp_monitoring_needs_targets():
    assert "arp_ip_target" in refused(miimon=0, arp_interval=100).problem


def test_arp_validate_needs_arp_monitoring():
    assert "arp_validate=all" in refused(miimon=100, arp_validate="all").problem
    assert settings(miimon=100, arp_validate="none").wanted["arp_validate"] == "none"


def test_arp_monitoring_with_targets_and_validation_is_converted():
    result = settings(miimon=0, arp_interval=200, arp_ip_target="192.0.2.1, 192.0.2.2",
                      arp_validate="backup")
    assert result.netlink == {"miimon": 0, "arp_interval": 200,
                              "arp_ip_target": ["192.0.2.1", "192.0.2.2"], "arp_validate": 2}


@pytest.mark.parametrize("key", ["updelay", "downdelay"])
def test_delay_not_a_multiple_of_miimon_is_refused_with_the_rounded_values(key):
    err = refused(miimon=100, **{key: 250})
    assert f"{key}=250" in err.problem and "miimon=100" in err.problem
    assert "200" in err.fix and "300" in err.fix


@pytest.mark.parametrize("key", ["updelay", "downdelay"])
def test_delay_needs_mii_monitoring(key):
    assert "MII monitoring" in refused(miimon=0, **{key: 100}).problem


def test_zero_delays_are_checked_on_read_back_but_not_sent():
    # The kernel refuses even updelay=0 while miimon is 0 (EPERM).
    result = settings(miimon=0, updelay=0, downdelay=0)
    assert result.wanted == {"miimon": 0, "updelay": 0, "downdelay": 0}
    assert result.netlink == {"miimon": 0}


def test_options_are_set_miimon_before_its_delays():
    assert list(settings(downdelay=200, updelay=100, miimon=100).netlink) == [
        "miimon", "updelay", "downdelay"]


# -- arp_ip_target ---------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "targets"), [
    ("192.0.2.1", ["192.0.2.1"]),
    ("192.0.2.1,198.51.100.7", ["192.0.2.1", "198.51.100.7"]),
    (" 192.0.2.1 ,  192.0.2.2 192.0.2.3 ", ["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
    (["192.0.2.1", "192.0.2.2"], ["192.0.2.1", "192.0.2.2"]),
    ("", []),
])
def test_arp_targets_from_a_string_or_a_list(given, targets):
    assert parse_arp_targets(given) == targets


@pytest.mark.parametrize("bad", ["192.0.2", "192.0.2.256", "2001:db8::1", "0.0.0.0",
                                 "255.255.255.255", "224.0.0.1", "host.example"])
def test_arp_target_must_be_an_ipv4_unicast_address(bad):
    with pytest.raises(ConfigError, match="IPv4 unicast"):
        parse_arp_targets(f"192.0.2.1,{bad}")


def test_arp_target_twice_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        parse_arp_targets("192.0.2.1,192.0.2.1")


def test_at_most_sixteen_arp_targets():
    many = [f"192.0.2.{i}" for i in range(1, MAX_ARP_TARGETS + 2)]
    assert len(parse_arp_targets(many[:-1])) == MAX_ARP_TARGETS
    with pytest.raises(ConfigError, match=f"at most {MAX_ARP_TARGETS}"):
        parse_arp_targets(many)


# -- reading back --------------------------------------------------------------------------

def kernel_data(**attrs):
    """IFLA_INFO_DATA of a fresh active-backup bond, as pyroute2 decodes it."""
    data = {"IFLA_BOND_MODE": 1, "IFLA_BOND_MIIMON": 100, "IFLA_BOND_UPDELAY": 0,
            "IFLA_BOND_DOWNDELAY": 0, "IFLA_BOND_ARP_INTERVAL": 0,
            "IFLA_BOND_ARP_VALIDATE": 0, "IFLA_BOND_PRIMARY_RESELECT": 0,
            "IFLA_BOND_FAIL_OVER_MAC": 0, "IFLA_BOND_XMIT_HASH_POLICY": 0,
            "IFLA_BOND_MIN_LINKS": 0, "IFLA_BOND_AD_LACP_RATE": 0, "IFLA_BOND_AD_SELECT": 0}
    data.update(attrs)
    return data


def test_read_back_names_values_as_the_kernel_does():
    options = read_options(kernel_data(IFLA_BOND_PRIMARY=7, IFLA_BOND_XMIT_HASH_POLICY=1,
                                       IFLA_BOND_ARP_IP_TARGET=["192.0.2.1"]),
                           {7: "eth1"})
    assert options["primary"] == "eth1"
    assert options["xmit_hash_policy"] == "layer3+4"
    assert options["arp_ip_target"] == ["192.0.2.1"]
    assert options["lacp_rate"] == "slow" and options["miimon"] == 100
    assert set(options) == set(OPTIONS)


def test_read_back_without_targets_or_primary():
    options = read_options(kernel_data(), {})
    assert options["arp_ip_target"] == [] and options["primary"] is None


def state_with(options):
    return BondState("b0", "active-backup", options["miimon"], options["updelay"],
                     options["downdelay"], "eth0", {"eth0": True, "eth1": True}, options)


def test_a_kernel_value_other_than_asked_names_option_asked_and_kernel_value():
    asked = settings(miimon=100, primary="eth1", primary_reselect="failure")
    kernel = read_options(kernel_data(IFLA_BOND_PRIMARY=3, IFLA_BOND_PRIMARY_RESELECT=2),
                          {3: "eth0"})
    with pytest.raises(LabError) as info:
        check_read_back(asked, state_with(kernel))
    assert "primary: asked eth1, kernel has eth0" in info.value.problem
    assert "primary_reselect" not in info.value.problem


def test_the_kernel_holding_every_option_passes():
    asked = settings(miimon=100, updelay=200)
    check_read_back(asked, state_with(read_options(kernel_data(IFLA_BOND_UPDELAY=200), {})))


def test_bond_state_as_dict_is_json_with_options_and_member_info():
    state = state_with(read_options(kernel_data(), {}))
    data = json.loads(json.dumps(state.as_dict()))
    assert data["options"]["fail_over_mac"] == "none" and data["member_info"] == {}


# -- the bond_server topology's parameters ---------------------------------------------------

def test_bond_server_defaults_keep_active_backup_with_miimon_100():
    topo, params = build_topology("bond_server", {})
    assert params == {"bond_mode": "active-backup", "miimon": 100, "updelay": 0,
                      "downdelay": 0}
    settings = topo.bond("srv").settings
    assert settings.mode == "active-backup"
    assert settings.wanted == {"miimon": 100, "updelay": 0, "downdelay": 0}


def test_bond_server_takes_every_option_as_a_kernel_named_parameter():
    _, params = build_topology("bond_server", {
        "bond_mode": "4", "lacp_rate": "1", "ad_select": "bandwidth",
        "xmit_hash_policy": "layer3+4", "min_links": "1", "primary_reselect": "failure",
        "fail_over_mac": "none"})
    assert params["bond_mode"] == "802.3ad" and params["lacp_rate"] == "fast"
    assert params["min_links"] == 1


def test_bond_server_arp_monitoring_turns_mii_monitoring_off():
    topo, params = build_topology("bond_server", {
        "arp_interval": "100", "arp_ip_target": "198.51.100.1,198.51.100.3",
        "arp_validate": "active"})
    assert params["miimon"] == 0
    assert topo.bond("srv").settings.wanted["arp_ip_target"] == ["198.51.100.1",
                                                                  "198.51.100.3"]


@pytest.mark.parametrize(("params", "named"), [
    ({"primary": "eth2"}, "primary"),
    ({"lacp_rate": "fastest"}, "lacp_rate"),
    ({"arp_interval": "100", "arp_ip_target": "198.51.100.1", "miimon": "100"}, "miimon"),
    ({"arp_ip_target": "198.51.100"}, "arp_ip_target"),
    ({"bond_mode": "balance-rr", "primary": "eth0"}, "primary"),
    ({"lacp_rat": "fast"}, "lacp_rat"),
])
def test_bond_server_refuses_bad_options_naming_them(params, named):
    with pytest.raises(ConfigError, match=named):
        build_topology("bond_server", params)


def test_cli_refuses_a_bad_option_before_any_lab_exists():
    done = redlab("run", "scenarios/bond-active-backup.yaml", "--param", "lacp_rate=fast",
                  "--lab", "uml", timeout=60)
    assert done.returncode != 0
    assert "lacp_rate" in done.stderr and "active-backup" in done.stderr
    assert "booting User-mode Linux" not in done.stderr
