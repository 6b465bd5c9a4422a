"""A trial's timeline file: appended as events are recorded, in time order at the end."""

from __future__ import annotations

import csv
from pathlib import Path

from harness.results.events import COLUMNS, EventLog


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_events_are_kept_as_recorded_then_sorted_by_time(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.csv", t0_ns=1_000_000_000)
    log.add("traffic_start", "cli", t_ns=1_000_000_000)
    # a watcher saw the member leave while the cut's call was still running; the cut is
    # recorded when its call returns, stamped at the call's middle
    log.add("lacp_members_changed", "srv", "eth0,eth1 -> eth1", t_ns=4_027_000_000)
    log.add("cut", "srv", "link_down srv:eth1", t_ns=4_015_000_000)
    # until the trial ends the file holds what a crash would leave: every event, as seen
    assert [r["kind"] for r in rows(log.path)] == ["traffic_start", "lacp_members_changed",
                                                   "cut"]
    log.sort()
    stored = rows(log.path)
    assert list(stored[0]) == COLUMNS
    assert [r["kind"] for r in stored] == ["traffic_start", "cut", "lacp_members_changed"]
    assert [r["t_s"] for r in stored] == ["0.0", "3.015", "3.027"]
    assert [e["kind"] for e in log.events] == [r["kind"] for r in stored]
    assert log.first("cut")["detail"] == "link_down srv:eth1"
    assert [p.name for p in tmp_path.iterdir()] == ["events.csv"]  # no temporary left
