"""Windows NIC teaming profiles on real kernels: a member failure measured for a
switch-independent team against one switch, and for an LACP team across the MC-LAG pair
(as Windows documents switch-dependent teams across a multi-chassis switch).

Every profile's bond is built and read back in tests/lab/test_bond_modes.py; here the
two that matter most carry traffic and lose a member.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import LAB_REPORT, run_scenario, trial_events

pytestmark = [pytest.mark.lab, pytest.mark.slow]  # two runs in UML: about 2 minutes
MIIMON_MS, SLACK_MS = 100, 150


def row(out: Path) -> pd.Series:
    return pd.read_csv(out / "summary.csv").iloc[0]


def server_bond(out: Path) -> dict:
    return json.loads((out / "trial-001" / "lab.json").read_text())["bonds"]["srv:bond0"]


def report(name: str, out: Path) -> None:
    r, bond = row(out), server_bond(out)
    LAB_REPORT.append(f"{name} ({r['lab']}): srv bond {bond['mode']}"
                      f" ({bond['options']['xmit_hash_policy']}); gap {r['failover_gap_ms']} ms"
                      f" (predicted {r['predicted_min_ms']}-{r['predicted_max_ms']}),"
                      f" capacity kept {r['capacity_retained_pct']} %, verdict {r['verdict']}")


@pytest.fixture(scope="module")
def switch_independent(tmp_path_factory) -> Path:
    out = run_scenario(tmp_path_factory, "windows-team-member-failure")
    report("windows switch_independent/address_hash", out)
    return out


@pytest.fixture(scope="module")
def lacp_across_mclag(tmp_path_factory) -> Path:
    out = run_scenario(tmp_path_factory, "mclag-member-cut", "teaming_mode=lacp")
    report("windows lacp on the MC-LAG pair", out)
    return out


def test_a_switch_independent_team_is_a_balance_tlb_bond_hashing_flows(switch_independent):
    bond = server_bond(switch_independent)
    assert bond["mode"] == "balance-tlb"
    assert bond["options"]["tlb_dynamic_lb"] == 0
    assert bond["options"]["xmit_hash_policy"] == "layer3+4"


def test_losing_the_receiving_adapter_costs_one_link_check(switch_independent):
    r = row(switch_independent)
    assert 0 <= r["failover_gap_ms"] < MIIMON_MS + SLACK_MS
    assert r["recovered_before_restore"] and r["capacity_retained_pct"] > 50
    assert r["active_before"] != r["active_after"]   # the receiving moved
    cut = trial_events(switch_independent, "cut")[0]
    assert r["active_before"].split(":")[1] in cut["detail"].split(" <-> ")[0]


def test_an_lacp_team_negotiates_one_aggregate_across_the_pair(lacp_across_mclag):
    bond = server_bond(lacp_across_mclag)
    assert (bond["mode"], bond["options"]["lacp_rate"]) == ("802.3ad", "fast")
    lab = json.loads((lacp_across_mclag / "trial-001" / "lab.json").read_text())
    assert "srv - leaf1+leaf2" in lab["lacp_negotiated"]


def test_an_lacp_team_loses_a_member_for_at_most_one_link_check(lacp_across_mclag):
    r = row(lacp_across_mclag)
    assert 0 <= r["failover_gap_ms"] < MIIMON_MS + SLACK_MS
    assert r["recovered_before_restore"] and r["capacity_retained_pct"] > 50
