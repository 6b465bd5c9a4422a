"""Fail-back on a real kernel bond: primary_reselect always vs failure.

The bond prefers eth0; eth0's cable is cut and restored.  With ``always`` the bond goes
back to eth0 when the cable returns (a second switch-over, and a second, usually short,
gap); with ``failure`` it stays on eth1 and traffic sees only the first gap.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ..conftest import LAB_REPORT, run_scenario, trial_events

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", params=["always", "failure"])
def failback(request, tmp_path_factory) -> tuple[str, Path]:
    out = run_scenario(tmp_path_factory, "bond-failback", f"primary_reselect={request.param}")
    row = pd.read_csv(out / "summary.csv").iloc[0]
    LAB_REPORT.append(f"bond-failback primary_reselect={request.param}: fail-over gap"
                      f" {row['failover_gap_ms']} ms, fail-back gap {row['failback_gap_ms']}"
                      f" ms, active {row['active_before']} -> {row['active_after']}")
    return request.param, out


def switch_overs(out: Path) -> list[tuple[float, str]]:
    return [(float(e["t_s"]), e["detail"]) for e in trial_events(out, "bond_active_changed")]


def restore_s(out: Path) -> float:
    return float(trial_events(out, "restore")[0]["t_s"])


def test_the_primary_is_read_back_and_active_first(failback):
    reselect, out = failback
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["primary"] == "eth0" and row["primary_reselect"] == reselect
    assert row["active_before"] == "srv:eth0"


def test_fail_over_then_fail_back_only_when_reselect_is_always(failback):
    reselect, out = failback
    row = pd.read_csv(out / "summary.csv").iloc[0]
    changes = switch_overs(out)
    assert changes[0][1] == "eth0 -> eth1"
    assert row["failover_gap_ms"] > 0
    if reselect == "always":
        assert [d for _, d in changes] == ["eth0 -> eth1", "eth1 -> eth0"]
        # back to eth0 only once its cable is back (MII notices within one miimon)
        assert changes[1][0] >= restore_s(out)
        assert row["active_after"] == "srv:eth0"
        # the second gap: frames the switch still sends to eth1 die until it learns the
        # bond's MAC on eth0 again (the bond announces itself with a gratuitous ARP)
        assert 0 <= row["failback_gap_ms"] < row["miimon"] + 100
    else:
        assert [d for _, d in changes] == ["eth0 -> eth1"]
        assert row["active_after"] == "srv:eth1"
        assert row["failback_gap_ms"] == 0
