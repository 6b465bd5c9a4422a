"""The Linux team driver with teamd, on a real kernel: an activebackup team loses its
active port's cable, and a lacp team negotiates with an Open vSwitch LAG and loses one
member.  The state is teamd's own, read back with teamdctl."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import LAB_REPORT, run_scenario, trial_events

pytestmark = pytest.mark.lab


def report(name: str, out: Path) -> pd.Series:
    r = pd.read_csv(out / "summary.csv").iloc[0]
    LAB_REPORT.append(f"{name} ({r['lab']}): outage window {r['failover_gap_ms']} ms,"
                      f" teamd moved the traffic {r['team_failover_detected_ms']} ms after"
                      f" the cut, {r['team_ports_before']} -> {r['team_ports_after']}")
    return r


@pytest.fixture(scope="module")
def activebackup(tmp_path_factory) -> Path:
    return run_scenario(tmp_path_factory, "team-activebackup")


@pytest.fixture(scope="module")
def lacp(tmp_path_factory) -> Path:
    return run_scenario(tmp_path_factory, "team-lacp")


def test_an_activebackup_team_moves_to_its_standby_port(activebackup):
    r = report("team-activebackup", activebackup)
    lab = json.loads((activebackup / "trial-001" / "lab.json").read_text())
    ready = lab["teams"]["srv:team0"]
    assert ready["runner"] == "activebackup" and ready["link_up"] == ["eth0", "eth1"]
    before = ready["active_port"]
    (cut,) = trial_events(activebackup, "cut")
    assert f"srv:{before}" in cut["detail"]  # the step's "active" was teamd's active port
    moved = trial_events(activebackup, "team_ports_changed")
    other = {"eth0": "eth1", "eth1": "eth0"}[before]
    assert moved and moved[0]["detail"] == f"{before} -> {other}"
    assert r["team_ports_before"] == f"srv:team0:{before}"
    assert 0 <= r["failover_gap_ms"] <= 200 and r["recovered_before_restore"]
    assert r["verdict"] == "pass", r["verdict_failed"]


def test_a_lacp_team_negotiates_with_open_vswitch_on_both_ends(lacp):
    lab = json.loads((lacp / "trial-001" / "lab.json").read_text())
    (table,) = lab["team_lacp_negotiated"].values()
    rows = [line.split() for line in table if line.startswith(("eth0", "eth1"))]
    assert len(rows) == 2, table
    for cells in rows:
        assert cells.count("ASGNCD..") == 4, table  # both ends, actor and partner
    assert lab["teams"]["srv:team0"]["selected"] == ["eth0", "eth1"]


def test_a_lacp_team_loses_a_member_and_keeps_the_traffic(lacp):
    r = report("team-lacp", lacp)
    assert r["team_ports_before"] == "srv:team0:eth0+eth1"
    moved = trial_events(lacp, "team_ports_changed")
    assert moved and moved[0]["detail"] == "eth0,eth1 -> eth1"
    assert 0 <= r["failover_gap_ms"] <= 300 and r["recovered_before_restore"]
    assert r["throughput_during_mbps"] > 0.3 * r["throughput_before_mbps"]
    teams = json.loads((lacp / "trial-001" / "teams.json").read_text())
    assert teams["srv:team0"]["setup"]["runner_name"] == "lacp"
