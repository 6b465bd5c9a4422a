"""Each option vocabulary is defined once and everything else derives from it.

Kernel bond options (harness.tech.bond.options.OPTIONS), Open vSwitch LAG options
(harness.tech.ovs.bridge.LagOptions) and kernel feature names (harness.lab.capabilities.FEATURES):
the topologies' parameters, the scenario format and the CLI take their values and limits
from there, so a topology can neither accept what the kernel refuses nor refuse what it
takes, unless it narrows the vocabulary on purpose (BondParams.supported_modes).
Pure: no kernel is touched.
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from harness.errors import ConfigError
from harness.lab import capabilities, guest_modules
from harness.scenario.model import Scenario
from harness.tech.bond.options import BOND_MODES, OPTIONS, BondSettings
from harness.tech.bond.params import BondParams
from harness.tech.ovs import bridge as ovs
from harness.topology import loader, model
from harness.topology.loader import TOPOLOGY_DIR, build_topology, load_module

TOPOLOGIES = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.py") if not p.stem.startswith("_"))
BONDED = [name for name in TOPOLOGIES if build_topology(name, {})[0].bonds]


def params_of(name: str) -> type[BondParams]:
    return load_module(name).Params


def fields_of_kind(name: str, kind: str) -> list[str]:
    return [key for key in params_of(name).model_fields
            if key in OPTIONS and OPTIONS[key].kind == kind]


def refusal(params: type, **given: object) -> str:
    with pytest.raises(ValidationError) as info:
        params.model_validate(given)
    return str(info.value)


def test_every_topology_with_a_bond_takes_its_parameters_from_the_vocabulary():
    assert set(BONDED) == {"bond_pair", "bond_server", "bond_two_switches", "dc_edge",
                           "lag_server", "mclag"}
    for name in BONDED:
        assert issubclass(params_of(name), BondParams), name


# -- kernel bond options -----------------------------------------------------------------

@pytest.mark.parametrize(("name", "key"), [(n, k) for n in BONDED
                                           for k in fields_of_kind(n, "enum")])
def test_enum_parameters_take_exactly_the_kernels_values(name, key):
    params = params_of(name)
    base = {"bond_mode": "802.3ad"} if "802.3ad" in params.supported_modes else {}
    for number, value in enumerate(OPTIONS[key].values):
        assert getattr(params.model_validate({**base, key: value}), key) == value
        assert getattr(params.model_validate({**base, key: str(number)}), key) == value
    text = refusal(params, **base, **{key: "layer4"})
    assert f"{key}='layer4'" in text
    assert all(value in text for value in OPTIONS[key].values)


def test_the_hash_policy_is_a_parameter_of_every_topology_whose_bond_hashes():
    # They took 3, 5 or 6 of the policies, each its own copy; now all take the kernel's
    # (test_enum_parameters_take_exactly_the_kernels_values).
    for name in ("bond_pair", "lag_server", "bond_server"):
        assert "xmit_hash_policy" in fields_of_kind(name, "enum"), name


@pytest.mark.parametrize(("name", "key"), [(n, k) for n in BONDED
                                           for k in (*fields_of_kind(n, "ms"),
                                                     *fields_of_kind(n, "count"))])
def test_number_parameters_have_the_kernels_limits(name, key):
    params = params_of(name)
    low, high = OPTIONS[key].limits
    assert getattr(params.model_validate({key: str(high)}), key) == high  # a --param string
    for bad in (high + 1, low - 1, "100ms"):
        text = refusal(params, **{key: bad})
        assert key in text and f"from {low} to {high}" in text
    if key == "miimon" and params.needs_mii_monitor:
        assert "only link monitor" in refusal(params, miimon=0)
    else:
        assert getattr(params.model_validate({key: low}), key) == low


@pytest.mark.parametrize("name", BONDED)
def test_bond_mode_is_any_supported_mode_by_name_or_number_and_nothing_else(name):
    params = params_of(name)
    assert set(params.supported_modes) <= set(BOND_MODES)
    for number, mode in enumerate(BOND_MODES):
        if mode in params.supported_modes:
            assert params.model_validate({"bond_mode": str(number)}).bond_mode == mode
        else:
            text = refusal(params, bond_mode=mode)
            assert "does not suit this topology" in text
            assert all(m in text for m in params.supported_modes)
    assert "unknown bond mode 'lacp'" in refusal(params, bond_mode="lacp")


def test_bond_server_takes_every_mode_and_every_option():
    params = params_of("bond_server")
    assert params.supported_modes == BOND_MODES
    assert set(OPTIONS) <= set(params.model_fields)


def test_a_narrowing_to_a_mode_the_kernel_lacks_fails_when_the_topology_loads():
    with pytest.raises(TypeError, match="active-bakup"):
        type("Params", (BondParams,), {"__annotations__": {},
                                       "supported_modes": ("active-bakup",)})


def test_bond_settings_are_checked_once_per_bond_and_carried_typed(monkeypatch):
    calls = []
    check = model.bond_settings

    def counted(*args, **kwargs):
        calls.append(args)
        return check(*args, **kwargs)

    monkeypatch.setattr(model, "bond_settings", counted)
    topo, _ = loader.build_topology("bond_pair", {"lacp_rate": "slow"})
    assert len(calls) == len(topo.bonds) == 2
    for bond in topo.bonds:
        assert isinstance(bond.settings, BondSettings)
        assert bond.settings.mode == "802.3ad"
        assert bond.settings.netlink["lacp_rate"] == 0


def test_a_bond_declared_with_options_that_do_not_go_together_is_refused_at_once():
    t = model.Topology("t", "")
    t.add_host("a")
    with pytest.raises(ConfigError, match="a:bond0: updelay=150 is not a multiple"):
        t.add_bond("a", "bond0", ["eth0", "eth1"], miimon=100, updelay=150)
    assert t.bonds == []


# -- Open vSwitch LAG options ------------------------------------------------------------

# topology -> its parameter -> the LAG option it sets
LAG_PARAMS = {
    "switch_lag": {"bond_mode": "bond_mode", "lacp": "lacp", "peer_lacp": "lacp",
                   "lacp_time": "lacp_time", "bond_detect_mode": "bond_detect_mode",
                   "miimon_interval": "miimon_interval", "updelay": "updelay",
                   "downdelay": "downdelay", "lacp_fallback_ab": "lacp_fallback_ab"},
    "lag_server": {"switch_bond_mode": "bond_mode", "switch_lacp": "lacp",
                   "switch_lacp_time": "lacp_time", "bond_detect_mode": "bond_detect_mode"},
}


@pytest.mark.parametrize(("name", "param", "option"), [
    (n, p, o) for n, mapping in LAG_PARAMS.items() for p, o in mapping.items()])
def test_lag_parameters_have_the_lag_options_type_and_limits(name, param, option):
    params = load_module(name).Params
    ours, theirs = params.model_fields[param], ovs.LagOptions.model_fields[option]
    assert (ours.annotation, ours.metadata) == (theirs.annotation, theirs.metadata)
    if get_origin(theirs.annotation) is Literal:
        for value in get_args(theirs.annotation):
            params.model_validate({param: value})
        with pytest.raises(ValidationError, match=param):
            params.model_validate({param: "sometimes"})


def test_a_miimon_interval_of_zero_is_refused_everywhere():
    # ovs-vswitchd would poll every 200 ms instead, silently.
    with pytest.raises(ConfigError, match="use a whole number >= 1"):
        ovs.lag_options({"miimon_interval": 0})
    with pytest.raises(ValidationError, match="miimon_interval"):
        load_module("switch_lag").Params.model_validate({"miimon_interval": "0"})


def test_lag_defaults_are_the_models():
    assert ovs.lag_options({}) == ovs.LagOptions().model_dump() == ovs.LAG_DEFAULTS


# -- kernel features ---------------------------------------------------------------------

def test_scenario_features_and_the_lab_base_are_the_feature_table():
    assert set(capabilities.SCENARIO_FEATURES) | set(capabilities.LAB_BASE_FEATURES) == set(
        capabilities.FEATURES)
    assert not set(capabilities.SCENARIO_FEATURES) & set(capabilities.LAB_BASE_FEATURES)
    # each feature its own module (and any it needs with it in a guest), none shared
    modules = [m for f in capabilities.FEATURES.values() for m in (f.module, *f.also)]
    assert guest_modules(capabilities.FEATURES) == tuple(modules)
    assert len(set(modules)) == len(modules)
    assert guest_modules(["flower"]) == ("cls_flower", "sch_ingress", "act_gact")


def scenario(requires: list[str]) -> Scenario:
    return Scenario.model_validate({"name": "s", "intent": "i", "topology": "bond_server",
                                    "requires": requires,
                                    "traffic": {"server": "srv", "client": "cli"}})


def test_a_scenario_may_require_every_feature_beyond_the_lab_base():
    assert scenario(list(capabilities.SCENARIO_FEATURES)).requires == list(
        capabilities.SCENARIO_FEATURES)


@pytest.mark.parametrize("bad", ["lacp", "veth"])
def test_a_scenario_requiring_an_unknown_or_base_feature_is_refused_naming_it(bad):
    with pytest.raises(ValidationError) as info:
        scenario(["bonding", bad])
    text = str(info.value)
    assert bad in text and all(f in text for f in capabilities.SCENARIO_FEATURES)


def test_probe_lists_every_feature_of_the_table(monkeypatch):
    from harness import cli
    from harness.lab import uml

    monkeypatch.setattr(capabilities, "probe", lambda name: name != "team")
    monkeypatch.setattr(uml, "uml_available", lambda: True)
    done = CliRunner().invoke(cli.app, ["probe"])
    assert done.exit_code == 0, done.output
    rows = [line.split() for line in done.output.splitlines()]
    assert rows == [[name, "no" if name == "team" else "yes"]
                    for name in capabilities.FEATURES] + [["uml", "yes"]]
