"""Open vSwitch LAG options: checked and mapped to database columns before anything exists."""

import json

import pytest

from harness.errors import ConfigError
from harness.tech.ovs import bridge as ovs


def test_defaults_are_balance_tcp_with_fast_active_lacp_on_carrier():
    o = ovs.lag_options({})
    assert (o["bond_mode"], o["lacp"], o["lacp_time"], o["bond_detect_mode"]) == (
        "balance-tcp", "active", "fast", "carrier")


def test_database_columns_follow_ovs_vswitchd_conf_db():
    cols = ovs._database_settings(ovs.lag_options(
        {"bond_mode": "active-backup", "lacp": "off", "updelay": 200,
         "bond_detect_mode": "miimon", "miimon_interval": 50, "lacp_fallback_ab": True}))
    assert cols["bond_mode"] == "active-backup"
    assert cols["bond_updelay"] == "200"
    assert cols["other_config:bond-detect-mode"] == "miimon"
    assert cols["other_config:bond-miimon-interval"] == "50"
    assert cols["other_config:lacp-fallback-ab"] == "true"
    assert "other_config:bond-primary" not in cols
    primary = ovs._database_settings(ovs.lag_options({"bond_mode": "active-backup",
                                                      "primary": "rab12sw1-l1"}))
    assert primary["other_config:bond-primary"] == "rab12sw1-l1"


@pytest.mark.parametrize(("options", "message"), [
    ({"bond_mod": "balance-tcp"}, "unknown Open vSwitch LAG option"),
    ({"lacp": "sometimes"}, "lacp='sometimes' is not valid"),
    ({"updelay": -1}, "updelay=-1 is not a number of milliseconds"),
    ({"lacp_fallback_ab": "yes"}, "lacp_fallback_ab='yes' is not true or false"),
    ({"bond_mode": "balance-tcp", "lacp": "off"}, "balance-tcp needs LACP"),
    ({"primary": 1}, "primary=1 is not a member's name"),
])
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(ConfigError, match=message):
        ovs.lag_options(options)


def test_a_lag_is_read_back_from_one_ovs_vsctl_with_two_listings(monkeypatch):
    """read_lag asks for the port and every interface's name in one process and pairs
    the port's interface uuids with their names."""
    port = {"headings": ["bond_mode", "lacp", "bond_updelay", "bond_downdelay",
                         "other_config", "interfaces"],
            "data": [["balance-tcp", "active", 0, 0,
                      ["map", [["lacp-time", "fast"]]],
                      ["set", [["uuid", "u2"], ["uuid", "u1"]]]]]}
    interfaces = {"headings": ["_uuid", "name"],
                  "data": [[["uuid", "u1"], "sw-p1"], [["uuid", "u2"], "sw-p2"],
                           [["uuid", "u3"], "sw-p3"]]}
    asked = []

    def vsctl(*args, what):
        asked.append(args)
        return f"{json.dumps(port)}\n{json.dumps(interfaces)}\n"

    monkeypatch.setattr(ovs.ovs_ctl, "vsctl", vsctl)
    got = ovs.read_lag("sw-lag0")
    assert len(asked) == 1
    assert got.members == ("sw-p1", "sw-p2")
    assert got.settings["bond_mode"] == "balance-tcp"
    assert got.settings["other_config:lacp-time"] == "fast"
