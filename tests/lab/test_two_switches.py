"""A bond across two switches, and the active member's switch dies: the bond survives
(real kernel; inside User-mode Linux on a host without bonding).

The contrast is tests/lab/test_switch_death.py: there both members hang off the one switch
that dies and traffic stops for as long as it is down. Here only eth0's switch dies;
the bond moves to eth1 at its next MII check and traffic goes on through sw2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.measure import gapprobe

from ..conftest import LAB_REPORT, read_rows, run_scenario, trial_events

pytestmark = pytest.mark.lab
SCENARIO = "bond-two-switches-death"
MIIMON = 100  # the scenario's
# Detection is within one MII period (15 to 104 ms seen here). UML shares one CPU with
# the probe and iperf3, and on a host busy with other labs the MII timer has run up to
# 0.3 s late: the bound asserts the mechanism (one MII check, where a bond to one switch
# would be down for the switch's whole 4 s downtime), not the figure.
BOUND_MS = 500


@pytest.fixture(scope="module")
def two_switches(tmp_path_factory) -> Path:
    out = run_scenario(tmp_path_factory, SCENARIO)
    row = summary(out)
    LAB_REPORT.append(
        f"bond-two-switches-death ({row['lab']}): sw1 down, bond {row['active_before']} ->"
        f" {row['active_after']} after {row['failover_detected_ms']} ms; outage window"
        f" {row['failover_gap_ms']} ms (arrival gap {row['failover_arrival_gap_ms']} ms,"
        f" {row['lost_packets']} lost, {row['outages']} outage(s), fail-back gap"
        f" {row['failback_gap_ms']} ms); throughput {row['throughput_before_mbps']} /"
        f" {row['throughput_during_mbps']} / {row['throughput_after_mbps']} Mbit/s"
        f" before / during / after")
    return out


def number(text: str) -> float:
    return float(text) if text else math.nan  # an empty cell: nothing was measured


def summary(out: Path) -> dict[str, str]:
    return read_rows(out / "summary.csv")[0]


def test_the_switch_that_dies_is_the_active_members(two_switches):
    row = summary(two_switches)
    assert row["active_before"] == "srv:eth0"  # primary=eth0, cabled to sw1
    (down,) = trial_events(two_switches, "device_down")
    assert down["node"] == "sw1" and "p0, p1 down" in down["detail"]


def test_the_bond_fails_over_to_eth1_on_its_mii_check(two_switches):
    row = summary(two_switches)
    down_s = float(trial_events(two_switches, "device_down")[0]["t_s"])
    changes = trial_events(two_switches, "bond_active_changed")
    # exactly one switch-over, to the member on the surviving switch; never to "None"
    # (which is what the single-switch bond does), and no fail-back when sw1 returns
    # (primary_reselect=failure)
    assert [c["detail"] for c in changes] == ["eth0 -> eth1"]
    assert float(changes[0]["t_s"]) >= down_s
    # the switch lies within the watcher's bracket, after a death somewhere in its call
    # (see test_bond_failover)
    half_call_ms = json.loads((two_switches / "trial-001" / "trial.json").read_text())[
        "failures"][0]["call_ns"] / 2e6
    assert float(row["failover_detected_ms"]) >= -half_call_ms
    assert float(row["failover_detected_ms"]) - half_call_ms \
        - float(row["failover_detected_uncertainty_ms"]) < BOUND_MS
    assert row["active_after"] == "srv:eth1"
    # the kernel's own record: eth0 failed once, eth1 never
    info = json.loads((two_switches / "trial-001" / "bonds.json").read_text())["srv"]
    assert info["mode"] == "active-backup" and info["miimon"] == MIIMON
    assert info["member_info"]["eth0"]["link_failure_count"] == 1
    assert info["member_info"]["eth1"]["link_failure_count"] == 0
    assert info["member_info"]["eth1"]["state"] == "active"


def test_the_outage_is_one_mii_check_not_the_switch_downtime(two_switches):
    row = summary(two_switches)
    if float(row["probe_sends_in_failover"]) == 0:
        pytest.skip("the probe's sender stalled through the whole failover (shared CPU):"
                    " it could not see the gap in this run")
    gap = number(row["failover_gap_ms"])
    # Neither end's address loses carrier and the MAC does not move, so no neighbour
    # entry is re-resolved; core learns the new port from the bond's gratuitous ARP (or
    # floods, having flushed the dead port). The receiver's view is the same outage.
    assert 0 < gap < BOUND_MS, f"outage window {gap} ms"
    arrival = number(row["failover_arrival_gap_ms"])
    assert math.isnan(arrival) or arrival < BOUND_MS, arrival
    assert int(row["lost_packets"]) > 0
    # the return of sw1 costs nothing: the bond stays on eth1
    assert float(row["failback_gap_ms"]) == 0


def test_traffic_keeps_flowing_while_the_switch_is_down(two_switches):
    row = summary(two_switches)
    # bond-single-switch-death receives nothing here; across two switches almost all
    assert float(row["throughput_during_mbps"]) > 0
    down_s = float(trial_events(two_switches, "device_down")[0]["t_s"])
    up_s = float(trial_events(two_switches, "restore")[0]["t_s"])
    before = received_mbps(two_switches, 0.5, down_s)
    assert before > 1
    assert received_mbps(two_switches, down_s, up_s) > 0.5 * before
    assert received_mbps(two_switches, up_s, math.inf) > 0.5 * before
    trial = two_switches / "trial-001"
    packets = gapprobe.parse(trial / "probe-client.csv", trial / "probe-server.csv")
    assert packets[-1].lost == "false", "the probe's last packets came back"


def received_mbps(out: Path, start_s: float, end_s: float) -> float:
    """Mean received rate over iperf3's intervals inside [start_s, end_s] (seconds from
    the traffic start), weighted by their length: a starved iperf3 reports uneven
    intervals, and a plain mean of their rates (the summary's) then overstates."""
    report = json.loads((out / "trial-001" / "iperf3.json").read_text())
    inside = [i["sum"] for i in report["intervals"]
              if start_s <= i["sum"]["start"] and i["sum"]["end"] <= end_s]
    return sum(s["bytes"] * 8 for s in inside) / sum(s["seconds"] for s in inside) / 1e6
