"""Calibration on a real unprotected path: known outages in, measured outages out.

The path needs only veth and a bridge, so this runs natively on our CI kernel.
"""

from __future__ import annotations

import pandas as pd
import pytest

from .conftest import LAB_REPORT, redlab

pytestmark = pytest.mark.lab
LENGTHS = (20, 100, 500)
REPEAT = 3


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("cal") / "run"
    done = redlab("calibrate", "--lengths", ",".join(map(str, LENGTHS)), "--repeat",
                  str(REPEAT), "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(out / "calibration.csv")
    LAB_REPORT.append(f"calibration ({frame['lab'][0]}, kernel {frame['kernel'][0]}):")
    LAB_REPORT.extend("  " + line for line in done.stdout.strip().splitlines())
    return frame


def test_one_row_per_injected_outage_with_the_required_columns(calibration):
    assert len(calibration) == len(LENGTHS) * REPEAT
    for column in ("injected_ms", "measured_ms", "probe_rate_pps", "window_ms",
                   "lost_span_ms", "iperf3_estimate_ms", "bound_ms"):
        assert column in calibration.columns
    # the injected length is what the kernel did, close to what was asked
    assert ((calibration["injected_ms"] - calibration["requested_ms"]).abs() < 10).all()


def test_every_injected_outage_is_seen_and_bracketed_by_floor_and_window(calibration):
    assert calibration["measured_ms"].notna().all()
    assert (calibration["lost_span_ms"] <= calibration["measured_ms"]).all()
    assert (calibration["measured_ms"] <= calibration["window_ms"]).all()
    # the window can only overshoot: it runs from the last packet before to the first after
    assert (calibration["window_ms"] >= calibration["injected_ms"] - 0.5).all()


def test_median_error_per_length_is_within_max_2ms_or_2_intervals(calibration):
    """irtt skips late send slots, so single outages can miss the bound (see the note);
    the median over repeats must not."""
    errors = calibration.assign(abs_error=(calibration["measured_ms"]
                                           - calibration["injected_ms"]).abs())
    medians = errors.groupby("requested_ms")["abs_error"].median()
    assert (medians <= calibration["bound_ms"].iloc[0]).all(), medians.to_dict()


def test_iperf3_alone_would_overstate_short_outages(calibration):
    """What a user of iperf3's 0.1 s intervals alone would report, for contrast."""
    short = calibration[calibration["requested_ms"] == LENGTHS[0]]
    assert (short["iperf3_estimate_ms"] > 2 * short["injected_ms"]).all()
