"""Calibration on a real unprotected path: known outages in, measured outages out.

The path needs only veth and a bridge, so this runs natively on our CI kernel, and again
inside User-mode Linux, where the probe shares one CPU with everything else.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.lab import uml
from harness.lab.shared_guest import ENV_VAR

from ..conftest import LAB_REPORT, redlab

pytestmark = pytest.mark.lab
LENGTHS = (20, 100, 500)
REPEAT = 3


def calibrate(tmp_path_factory, lab: str) -> pd.DataFrame:
    out = tmp_path_factory.mktemp(f"cal-{lab}") / "run"
    done = redlab("calibrate", "--lab", lab, "--lengths", ",".join(map(str, LENGTHS)),
                  "--repeat", str(REPEAT), "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(out / "calibration.csv")
    meta = json.loads((out / "metadata.json").read_text())  # like every other run's
    assert meta["status"] == "complete" and meta["kind"] == "calibration"
    assert meta["injections"] == len(frame) and "ovs-vswitchd" in meta["versions"]
    LAB_REPORT.append(f"calibration ({frame['lab'][0]}, kernel {frame['kernel'][0]}):")
    LAB_REPORT.extend("  " + line for line in done.stdout.strip().splitlines()
                      if "INFO" not in line)
    return frame


@pytest.fixture(scope="module", params=["native", "uml"])
def calibration(request, tmp_path_factory) -> pd.DataFrame:
    if request.param == "uml" and not uml.uml_available():
        pytest.skip("user-mode-linux is not installed (scripts/bootstrap installs it)")
    # A guest of its own, as a user's `redlab calibrate --lab uml` boots: the probe's
    # error on a fresh guest, not on one that has served the session's other labs.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_VAR, raising=False)
        return calibrate(tmp_path_factory, request.param)


def test_one_row_per_injected_outage_with_the_required_columns(calibration):
    assert len(calibration) == len(LENGTHS) * REPEAT
    for column in ("injected_ms", "measured_ms", "probe_rate_pps", "window_ms",
                   "lost_span_ms", "iperf3_estimate_ms", "bound_ms", "resolution_ms",
                   "reference_uncertainty_ms", "sender_late_ms"):
        assert column in calibration.columns
    # the injected length is what the kernel did: never shorter than asked (how much
    # longer is how long a loaded host took to schedule the harness, which no test bounds)
    late = calibration["injected_ms"] - calibration["requested_ms"]
    assert (late >= 0).all(), late.to_dict()


def reference(calibration: pd.DataFrame) -> pd.Series:
    """What the network did: the kernel's link-down to link-up, or longer where the probe's
    floor (first to last lost send, a hard lower bound) already is, because the path stayed
    down after the link-up call returned (carrier-on work waits for the linkwatch worker)."""
    return calibration[["injected_ms", "lost_span_ms"]].max(axis=1)


def test_every_injected_outage_is_seen_and_bracketed_by_floor_and_window(calibration):
    """Per outage, with no timing bound: the probe saw it, its estimate lies between its
    floor and its window, and what the kernel did lies in that bracket too, give or take
    the length of the netlink calls that time the reference."""
    assert calibration["measured_ms"].notna().all()
    assert (calibration["lost_span_ms"] <= calibration["measured_ms"]).all()
    assert (calibration["measured_ms"] <= calibration["window_ms"]).all()
    slack = calibration["reference_uncertainty_ms"] + 0.5
    outside = calibration[calibration["window_ms"] < calibration["injected_ms"] - slack]
    assert outside.empty, outside.to_dict("records")


def test_median_error_per_length_is_within_max_2ms_or_2_intervals(calibration):
    """Issue 3's bound, on the median of the repeats of each length (this machine is shared:
    a single outage may catch the sender descheduled, which `sender_late_ms` then shows).

    The reference is known only to within the netlink calls that time it (half of each
    call; medians of 1.1-1.2 ms natively and 2.0-3.5 ms inside UML in three CI runs),
    so the error checked is what lies beyond that uncertainty: no reference can check a
    probe more finely than it is known itself."""
    error = (calibration["measured_ms"] - reference(calibration)).abs()
    uncertainty = calibration["reference_uncertainty_ms"]
    frame = calibration.assign(error=error,
                               beyond_reference=(error - uncertainty).clip(lower=0))
    medians = frame.groupby("requested_ms")[
        ["error", "reference_uncertainty_ms", "beyond_reference", "resolution_ms",
         "bound_ms"]].median()
    print("\n" + medians.to_string())
    assert (medians["beyond_reference"] <= medians["bound_ms"]).all(), medians.to_dict("index")
    assert (medians["resolution_ms"] <= medians["bound_ms"]).all(), medians.to_dict("index")
    # never an undercount of what the kernel did, beyond the bound and the reference's own
    # uncertainty
    floor = calibration["injected_ms"] - calibration["bound_ms"] \
        - calibration["reference_uncertainty_ms"]
    assert (calibration["measured_ms"] >= floor).all()


def test_the_probe_runs_at_the_asked_rate(calibration):
    assert (calibration["probe_rate_pps"].between(990, 1010)).all()


def test_iperf3_alone_would_misstate_short_outages(calibration):
    """What a user of iperf3's 0.1 s receiver intervals alone would report, for contrast:
    mostly an overstatement (TCP's retransmission timer, whole intervals), sometimes an
    understatement (a CI run saw a 20 ms outage read as about 10 ms: TCP made up the dip in its
    interval), and off by more than the probe's bound either way, so it cannot stand in
    for the probe (the median of the repeats: one may land near by chance)."""
    short = calibration[calibration["requested_ms"] == LENGTHS[0]]
    off = (short["iperf3_estimate_ms"] - short["injected_ms"]).abs()
    assert off.median() > short["bound_ms"].median(), off.to_dict()
