"""A trial's wall time by phase (harness.measure.stopwatch; each trial's timing.json)."""

from __future__ import annotations

import json
import time

import pytest

from harness.measure.stopwatch import UNNAMED, Stopwatch


def test_phases_keep_their_order_add_up_and_are_written(tmp_path):
    clock = Stopwatch()
    clock.add("wiring", 4.0)
    with clock.phase("start bond"):
        pass
    clock.add("wiring", 0.5)  # timed twice: adds up
    with pytest.raises(RuntimeError), clock.phase("teardown"):
        raise RuntimeError("a failed phase is timed too")
    assert list(clock.phases) == ["wiring", "start bond", "teardown"]
    assert clock.phases["wiring"] == 4.5
    assert clock.total() == pytest.approx(4.5, abs=0.05)
    clock.write(tmp_path / "timing.json")
    written = json.loads((tmp_path / "timing.json").read_text())
    assert written["phases_s"]["wiring"] == 4.5
    assert "wiring 4.50 s" in clock.describe()


def test_wall_time_outside_every_phase_is_written_as_unnamed(tmp_path):
    clock = Stopwatch()
    with clock.phase("wiring"):
        time.sleep(0.02)
    time.sleep(0.05)  # in no phase: the trial still took it
    clock.write(tmp_path / "timing.json")
    written = json.loads((tmp_path / "timing.json").read_text())
    assert written["phases_s"][UNNAMED] >= 0.045
    assert written["total_s"] >= 0.065
    assert sum(written["phases_s"].values()) == pytest.approx(written["total_s"], abs=0.005)
    assert f"{UNNAMED} " in clock.describe()
