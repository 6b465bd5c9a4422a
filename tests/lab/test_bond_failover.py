"""The foundation scenario on a real kernel: an active-backup bond loses its active member.

On a kernel without bonding (our CI's) the run boots User-mode Linux, so every figure
here comes from a real kernel bond with real traffic.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pandas as pd
import pytest

from harness.lab import capabilities
from harness.measure import gapprobe
from harness.naming import new_run_id

from ..conftest import LAB_REPORT, assert_summarize_reproduces, read_rows, redlab
from ..lab_state import Snapshot

pytestmark = [pytest.mark.lab, pytest.mark.slow]  # three trials: about 90 s
MIIMON = 100
TRIALS = 2  # a run of several trials; each costs about 25 s in UML


@pytest.fixture(scope="module")
def bond_run(tmp_path_factory) -> Path:
    before = Snapshot.take()
    out = tmp_path_factory.mktemp("bond") / "run"
    run_id = new_run_id()
    done = redlab("run", "scenarios/bond-active-backup.yaml", "--param", f"miimon={MIIMON}",
                  "--repeat", str(TRIALS), "--out", str(out), "--run-id", run_id)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    # A User-mode Linux kernel counts only if it is this run's: the shared guest, and
    # guests the other stream boots meanwhile, start and end host processes of their
    # own (one per guest process) while this run goes.
    assert Snapshot.take().new_since(before, (run_id,)) == {}, \
        "the run left lab objects behind"
    for row in rows(out):
        LAB_REPORT.append(
            f"bond-active-backup trial {row['trial']}: lab={row['lab']} kernel={row['kernel']}"
            f" (host kernel {platform.release()}), outage window {row['failover_gap_ms']} ms,"
            f" probe sends in failover {row['probe_sends_in_failover']},"
            f" active {row['active_before']} -> {row['active_after']}")
    return out


def rows(out: Path) -> list[dict[str, str]]:
    return read_rows(out / "summary.csv")


def events(out: Path, trial: int) -> list[dict[str, str]]:
    return read_rows(out / f"trial-{trial:03d}" / "events.csv")


def test_summary_has_one_row_per_trial_with_the_required_columns(bond_run):
    frame = pd.read_csv(bond_run / "summary.csv")
    assert list(frame["trial"]) == list(range(1, TRIALS + 1))
    for column in ("scenario", "trial", "lab", "kernel", "failure", "failover_gap_ms",
                   "lost_packets", "throughput_before_mbps", "throughput_during_mbps",
                   "throughput_after_mbps", "bond_mode", "miimon"):
        assert column in frame.columns
    assert (frame["miimon"] == MIIMON).all()
    meta = json.loads((bond_run / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["trials_done"] == TRIALS


def test_each_trial_says_where_its_wall_time_went(bond_run):
    for trial in range(1, TRIALS + 1):
        timing = json.loads((bond_run / f"trial-{trial:03d}" / "timing.json").read_text())
        phases = timing["phases_s"]
        for phase in ("wiring", "start bond", "traffic", "teardown", "analysis"):
            assert phases[phase] >= 0, phase
        # the traffic phase is iperf3's 10 s (the phase offset, under 0.1 s, rounds to
        # 0), plus iperf3's own end on a busy guest
        assert 9.5 <= phases["traffic"] <= 20, phases
        LAB_REPORT.append(f"bond-active-backup trial {trial} wall time {timing['total_s']} s:"
                          f" {phases}")


def test_the_lab_ran_on_a_kernel_with_bonding(bond_run):
    for row in rows(bond_run):
        if capabilities.probe("bonding"):
            assert row["lab"] == "native"
        else:
            # This host cannot make a bond: the trial must have run inside UML's kernel.
            assert row["lab"] == "uml"
            assert row["kernel"] != platform.release()


def test_the_kernel_reports_an_active_backup_bond_with_the_asked_miimon(bond_run):
    for trial in range(1, TRIALS + 1):
        lab = json.loads((bond_run / f"trial-{trial:03d}" / "lab.json").read_text())
        bond = lab["bonds"]["srv:bond0"]
        assert bond["mode"] == "active-backup"
        assert bond["miimon"] == MIIMON
        assert set(bond["members"]) == {"eth0", "eth1"}
        assert all(bond["members"].values()), "every member had carrier before the cut"


def call_ns(run: Path, trial: int) -> int:
    """How long the failure's call took (trial.json): its stamp is the call's middle."""
    facts = json.loads((run / f"trial-{trial:03d}" / "trial.json").read_text())
    return int(facts["failures"][0]["call_ns"])


def test_the_active_member_changes_after_its_cable_is_cut(bond_run):
    for row in rows(bond_run):
        trial = int(row["trial"])
        timeline = events(bond_run, trial)
        cut = next(e for e in timeline if e["kind"] == "cut")
        cut_member = row["active_before"].split(":")[1]
        assert f"srv:{cut_member} <->" in cut["detail"], "the active member was the one cut"
        # the cut is stamped at the middle of the call that made it; the kernel may act
        # anywhere in that call, so reactions count from its start (as the summary does)
        changes = [e for e in timeline if e["kind"] == "bond_active_changed"
                   and int(e["t_ns"]) >= int(cut["t_ns"]) - call_ns(bond_run, trial) // 2]
        assert changes and changes[0]["detail"].startswith(f"{cut_member} -> ")
        assert row["active_after"] != row["active_before"]


def test_traffic_resumes_after_the_failover(bond_run):
    for row in rows(bond_run):
        before = float(row["throughput_before_mbps"])
        assert before > 1
        assert float(row["throughput_during_mbps"]) > 0.5 * before
        assert float(row["throughput_after_mbps"]) > 0.5 * before
    trial = bond_run / "trial-001"
    packets = gapprobe.parse(trial / "probe-client.csv", trial / "probe-server.csv")
    assert packets[-1].lost == "false", "the probe's last packets came back"


def test_the_bond_switches_over_within_miimon_plus_100ms(bond_run):
    """The watcher saw the new member at failover_detected_ms and the old one last
    failover_detected_uncertainty_ms before (5 ms apart, or more when the watcher was
    starved of CPU), counted from the middle of the call that cut the cable, and the
    kernel may have cut it anywhere in that call (622 ms long once, in a starved guest).
    The earliest the switch can have come, after the latest the cut can have come, must
    be within the bound."""
    for row in rows(bond_run):
        half_call_ms = call_ns(bond_run, int(row["trial"])) / 2e6
        seen, width = float(row["failover_detected_ms"]), \
            float(row["failover_detected_uncertainty_ms"])
        assert width >= 0 and -half_call_ms <= seen, row
        assert seen - width - half_call_ms < MIIMON + 100, row


def test_failover_gap_is_positive_and_below_miimon_plus_100ms(bond_run):
    """On every trial where the probe sent during the failover (so could see it).

    Inside User-mode Linux the probe shares one CPU with everything and its sender can
    stall for tens of ms; a trial whose stall covered the whole failover says so in
    probe_sends_in_failover = 0 and cannot measure the gap. At least one trial must.
    """
    seen = [row for row in rows(bond_run) if float(row["probe_sends_in_failover"]) > 0]
    assert seen, "the probe was blind during every failover"
    for row in seen:
        gap = float(row["failover_gap_ms"])
        assert 0 < gap < MIIMON + 100, f"trial {row['trial']}: gap {gap} ms"
        assert float(row["failover_gap_floor_ms"]) <= float(row["failover_gap_estimate_ms"])
        assert float(row["failover_gap_estimate_ms"]) <= gap
        assert int(row["lost_packets"]) > 0 and int(row["outages"]) >= 1


def test_each_trial_has_its_time_series_and_plot_from_stored_results(bond_run):
    for trial in range(1, TRIALS + 1):
        folder = bond_run / f"trial-{trial:03d}"
        samples = pd.read_csv(folder / "samples.csv")
        assert {"throughput", "probe_rtt"} <= set(samples["series"])
        assert (folder / "trial.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarize_on_the_stored_run_reproduces_its_summary(bond_run, tmp_path):
    """Every figure comes from the run folder alone: recomputed on a copy, summary.csv
    is the same to the byte, and so is each trial's bond columns' source (trial.json)."""
    done = assert_summarize_reproduces(bond_run, tmp_path)
    assert f"{TRIALS} trial(s) recomputed" in done.stdout
