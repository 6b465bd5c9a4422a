"""A run folder: metadata.json, summary.csv (one row per trial) and a folder per trial.

``summary.csv`` is rewritten after every trial and ``metadata.json`` carries the run's
status (running, complete, interrupted, failed), so an interrupted run keeps, and says
it keeps, every trial measured before the interruption.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from harness.lab import clock

SCHEMA_VERSION = 4
# The machine a run is on, as a User-mode Linux guest is told it (harness/cli.py): the
# guest's own node name is not the machine's.
HOST_ENV = "REDLAB_HOST"
# Set in a User-mode Linux guest: its trials are drawn on the host from the stored files
# once the guest is done (5.9 s a trial inside UML, 1.4 s on the host), so the guest never
# imports matplotlib (whose font cache a fresh guest would build: seconds).
DEFER_PLOTS_ENV = "REDLAB_DEFER_PLOTS"
SUMMARY_COLUMNS = [
    "scenario", "trial", "lab", "kernel", "failure", "failover_gap_ms",
    "failover_gap_estimate_ms", "failover_gap_floor_ms", "failover_arrival_gap_ms",
    "loss_gap_ms", "gap_up_ms", "gap_down_ms", "outage_start_s", "outages",
    "failover_outages", "failback_gap_ms", "lost_packets", "lost_up",
    "lost_down", "probe_packets", "probe_interval_ms", "duplicates", "reordered",
    "throughput_before_mbps", "throughput_during_mbps", "throughput_after_mbps",
    "recovery_90_ms", "active_before", "active_after", "failover_detected_ms",
    "failover_detected_uncertainty_ms",
    "probe_sends_in_failover", "recovered_before_restore", "bring_up_s", "phase_period_ms",
    "phase_offset_ms", "baseline_rtt_ms", "baseline_loss_pct", "steady_before_failure",
]


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "missing"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _package_version(name: str) -> str:
    try:
        return pkg_metadata.version(name)
    except pkg_metadata.PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    return {
        "redlab": _package_version("redlab"),
        "python": platform.python_version(),
        "iperf3": _tool_version(["iperf3", "--version"]),
        "irtt": _tool_version(["irtt", "version"]),
        "keepalived": _tool_version(["keepalived", "--version"]),
        "ovs-vswitchd": _tool_version(["ovs-vswitchd", "--version"]),
        "mininet": _package_version("mininet"),
        "pyroute2": _package_version("pyroute2"),
    }


class RunStore:
    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.rows: list[dict[str, Any]] = []
        root.mkdir(parents=True, exist_ok=True)
        self.meta = {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "started_at": datetime.now(UTC).isoformat(),
            "kernel": platform.release(),
            "lab": lab_kind(),
            # inside User-mode Linux, the machine the guest runs on (harness/cli.py)
            "host": os.environ.get(HOST_ENV) or platform.node(),
            "versions": versions(),
            "clock": clock.facts(),  # what could step the clock mid-trial
            **meta,
        }
        self._write_meta()

    def trial_dir(self, trial: int) -> Path:
        path = self.root / f"trial-{trial:03d}"
        path.mkdir(exist_ok=True)
        return path

    def discard(self, trial: int, attempt: int, why: str) -> Path:
        """Move a trial's folder that measured nothing (why) to discarded/, named in
        metadata.json: its files are kept, its row is not in the summary."""
        kept = self.root / "discarded" / f"attempt-{attempt}" / f"trial-{trial:03d}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        self.trial_dir(trial).rename(kept)
        self.meta.setdefault("discarded", []).append(
            {"trial": trial, "attempt": attempt, "folder": str(kept.relative_to(self.root)),
             "why": why})
        self._write_meta()
        return kept

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        write_summary(self.root, self.rows)
        self.meta["trials_done"] = len(self.rows)
        self._write_meta()

    @contextmanager
    def recording(self) -> Iterator[RunStore]:
        """The run's status follows how the block ends: complete, interrupted (Ctrl-C,
        SIGTERM) or failed with the error; what was measured before is kept either way."""
        try:
            yield self
        except KeyboardInterrupt:
            self.finish("interrupted", "interrupted by the user")
            raise
        except BaseException as exc:
            self.finish("failed", str(exc))
            raise
        self.finish("complete")

    def finish(self, status: str, error: str | None = None) -> None:
        self.meta["status"] = status
        self.meta["ended_at"] = datetime.now(UTC).isoformat()
        if error:
            self.meta["error"] = error
        self._write_meta()

    def _write_meta(self) -> None:
        tmp = self.root / "metadata.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=str))
        os.replace(tmp, self.root / "metadata.json")


def write_summary(root: Path, rows: list[dict[str, Any]]) -> Path:
    """summary.csv: one row per trial, SUMMARY_COLUMNS first, then the rest as they come."""
    columns = SUMMARY_COLUMNS + [c for row in rows for c in row if c not in SUMMARY_COLUMNS]
    frame = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys(columns)))
    tmp = root / "summary.csv.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, root / "summary.csv")  # never a half-written summary
    return root / "summary.csv"


def lab_kind() -> str:
    """``uml`` when this process runs inside a User-mode Linux guest booted by RedLab."""
    return os.environ.get("REDLAB_LAB", "native")
