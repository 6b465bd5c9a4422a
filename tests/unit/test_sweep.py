"""One thread polling many pieces of state (harness.tech.base.Sweep)."""

from __future__ import annotations

import itertools
import statistics
import time

from harness.tech.base import Sweep


class Counting:
    def __init__(self, cost_s: float = 0.0) -> None:
        self.calls, self.cost_s = 0, cost_s

    def poll(self) -> None:
        self.calls += 1
        if self.cost_s:
            time.sleep(self.cost_s)


class Timed(Counting):
    """Counting, with when each poll began and ended (monotonic seconds)."""

    def __init__(self, cost_s: float) -> None:
        super().__init__(cost_s)
        self.spans: list[tuple[float, float]] = []

    def poll(self) -> None:
        began = time.monotonic()
        super().poll()
        self.spans.append((began, time.monotonic()))


def run_for(sweep: Sweep, seconds: float) -> None:
    sweep.start()
    time.sleep(seconds)
    sweep.stop()
    assert not sweep.is_alive()


def test_every_piece_is_polled_in_each_sweep_and_the_longest_gap_is_kept():
    pieces = [Counting() for _ in range(5)]
    sweep = Sweep("test", 0.01, pieces)
    run_for(sweep, 0.3)
    assert len({p.calls for p in pieces}) == 1 and pieces[0].calls >= 5
    assert 0.01e9 <= sweep.longest_gap_ns < 0.3e9


def test_a_slow_sweep_waits_twice_its_length_so_it_takes_at_most_a_third_of_a_cpu():
    sweep = Sweep("test", 0.005, [])
    assert sweep.pause_after(0.001) == 0.005  # one quick piece: read every period
    assert sweep.pause_after(0.03) == 0.06


def test_a_slow_piece_widens_the_longest_gap():
    slow = Counting(cost_s=0.03)
    sweep = Sweep("test", 0.005, [slow])
    run_for(sweep, 0.5)
    assert slow.calls >= 2
    assert sweep.longest_gap_ns >= 0.03e9  # a 30 ms sweep and its pause


def test_a_sweep_that_waits_without_cpu_keeps_its_period():
    """Preempted or blocked (a sleep here) is not costly: only the sweep's own CPU time
    lengthens the next pause, so a stall does not slow the next reads."""
    slow = Timed(cost_s=0.03)  # 30 ms asleep, no CPU
    sweep = Sweep("test", 0.005, [slow])
    run_for(sweep, 0.8)
    pauses = [start - end for (_, end), (start, _) in itertools.pairwise(slow.spans)]
    assert len(pauses) >= 5, slow.spans
    # the period (5 ms), not twice the 30 ms sweep (60 ms); the median shrugs off a
    # pause a loaded machine stretched
    assert statistics.median(pauses) < 0.03, pauses
