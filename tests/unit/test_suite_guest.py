"""What guest a local suite (or an audit) boots for its runs (harness/scenario/
suite_guest.py): none when no run needs User-mode Linux, else one with the modules of
every run that does, Open vSwitch only if one needs it. No lab: the scenarios are
resolved as data. tests/lab/test_suite_guest.py runs a suite in such a guest."""

from __future__ import annotations

import pytest

from harness.lab import capabilities, uml
from harness.scenario.suite_guest import guest_needs

from ..conftest import SCENARIOS

BOND = (SCENARIOS / "bond-active-backup.yaml", {}, {})
LAG = (SCENARIOS / "lag-member-failure.yaml", {}, {})
PATH = (SCENARIOS / "path-cut.yaml", {}, {})
needs_uml = pytest.mark.skipif(not uml.uml_available(), reason="User-mode Linux is not installed")


def test_runs_any_kernel_has_need_no_guest():
    assert guest_needs([PATH], "auto") is None  # veth and a bridge
    assert guest_needs([BOND, LAG], "native") is None  # the user asked for none


@needs_uml
def test_one_guest_carries_the_modules_of_every_run_that_needs_one():
    modules, ovs = guest_needs([PATH, BOND], "uml")
    assert "bonding" in modules and "openvswitch" not in modules and not ovs
    modules, ovs = guest_needs([BOND, LAG, PATH], "uml")
    assert {"bonding", "openvswitch"} <= set(modules) and ovs
    assert len(modules) == len(set(modules))


def test_auto_boots_one_only_where_this_kernel_lacks_a_feature():
    expected = not capabilities.probe("bonding") and uml.uml_available()
    assert (guest_needs([BOND], "auto") is not None) == expected


@needs_uml
def test_a_run_with_bad_input_is_left_to_fail_on_its_own(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\ntopology: bond_server\nparams: {miimon: 100}\n")
    missing = (tmp_path / "missing.yaml", {}, {})
    bad_mode = (SCENARIOS / "bond-active-backup.yaml", {"bond_mode": "no-such-mode"}, {})
    assert guest_needs([(typo, {}, {}), missing, bad_mode], "uml") is None
    # ... and does not keep the good runs from their guest
    assert guest_needs([(typo, {}, {}), BOND, bad_mode], "uml") == guest_needs([BOND], "uml")
