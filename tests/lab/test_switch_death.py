"""A bond to a single switch, and the switch dies: the bond cannot help (real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import LAB_REPORT, read_rows, run_scenario

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def switch_death(tmp_path_factory) -> Path:
    return run_scenario(tmp_path_factory, "bond-single-switch-death")


def test_traffic_stops_for_as_long_as_the_switch_is_down(switch_death):
    row = read_rows(switch_death / "summary.csv")[0]
    events = read_rows(switch_death / "trial-001" / "events.csv")
    down = next(int(e["t_ns"]) for e in events if e["kind"] == "device_down")
    up = next(int(e["t_ns"]) for e in events if e["kind"] == "restore")
    downtime_ms = (up - down) / 1e6
    arrival_gap = float(row["failover_arrival_gap_ms"])
    LAB_REPORT.append(f"switch death ({row['lab']}): switch down {downtime_ms:.0f} ms,"
                      f" receiver saw nothing for {arrival_gap:.0f} ms, send-time window"
                      f" {row['failover_gap_ms']} ms, outages {row['outages']}")
    # Nothing reaches the client while the only switch is down; ARP re-resolution after
    # the carrier loss may add up to its 1 s retransmit timer.
    assert downtime_ms - 50 <= arrival_gap <= downtime_ms + 1200


def test_the_bond_has_no_member_to_fail_over_to(switch_death):
    events = read_rows(switch_death / "trial-001" / "events.csv")
    changes = [e["detail"] for e in events if e["kind"] == "bond_active_changed"]
    assert any(c.endswith("-> None") for c in changes), changes
    row = read_rows(switch_death / "summary.csv")[0]
    assert row["active_before"] == row["active_after"]
