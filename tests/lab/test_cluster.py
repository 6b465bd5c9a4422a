"""A suite spread over two Dask workers on this machine, one of them killed in the middle
of a trial: every trial's row is in suite.csv exactly once, the lost trial was rerun on
the other worker and says so, and the killed trial's processes are gone.

The workers are a LocalCluster's (two worker processes under their nannies, one ``lab``
resource each); ``redlab suite --cluster tcp://...`` connects to its scheduler as to any
running scheduler.  The trials are real: the unprotected path, natively on this kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cluster.connect import RESOURCE
from harness.cluster.trial import EVENT_TOPIC, FOLDER_PREFIX

from ..conftest import REPO, SCENARIOS, assert_summarize_reproduces, read_rows, wait_until

distributed = pytest.importorskip("distributed")

SUITE = """\
name: cluster-test
intent: the unprotected path at two rates, spread over two workers
runs:
  - scenario: {scenario}
    repeat: 2
    sweep: {{traffic.rate: [20M, 10M]}}
"""


def trial_processes() -> list[str]:
    """Command lines of cluster trials still running on this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if FOLDER_PREFIX in line and "pytest" not in line:
            found.append(line)
    return found


def test_a_suite_over_two_workers_survives_one_killed_in_a_trial(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(scenario=SCENARIOS / "path-cut.yaml"))
    out = tmp_path / "suite"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  resources={RESOURCE: 1}, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        cluster_address = cluster.scheduler_address
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "suite", str(suite), "--out", str(out),
             "--cluster", cluster.scheduler_address], cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # the first trial to start: its worker dies 3 s in, in the middle of the trial
            wait_until("a trial started", lambda: client.get_events(EVENT_TOPIC), 120)
            first = client.get_events(EVENT_TOPIC)[0][1]
            time.sleep(3)
            pids = client.run(os.getpid)
            os.kill(pids[first["worker"]], signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr[-4000:]

    rows = read_rows(out / "suite.csv")
    assert sorted((r["run"], r["trial"]) for r in rows) == [
        ("01-path-cut-traffic.rate=20M", "1"), ("01-path-cut-traffic.rate=20M", "2"),
        ("02-path-cut-traffic.rate=10M", "1"), ("02-path-cut-traffic.rate=10M", "2")]
    # real trials: the 2 s cut is the outage, at the rate each run asked for
    for row in rows:
        assert 1900 < float(row["failover_gap_ms"]) < 2300, row
        rate = 20 if row["run"].endswith("20M") else 10
        assert 0.9 * rate < float(row["throughput_before_mbps"]) < 1.1 * rate, row
    # the killed worker's trial ran again, on the other worker, and its row says so
    lost = [r for r in rows if r["lost_workers"] != "0"]
    assert len(lost) == 1 and lost[0]["lost_workers"] == "1", rows
    placements = {(r["run"], r["trial"]): (out / r["run"] / f"trial-{int(r['trial']):03d}"
                                           / "placement.json") for r in rows}
    placed = {key: json.loads(path.read_text()) for key, path in placements.items()}
    rerun = placed[(lost[0]["run"], lost[0]["trial"])]
    assert [w["worker"] for w in rerun["lost_workers"]] == [first["worker"]]
    assert rerun["worker"] != first["worker"]
    # the suite was split across the workers (the killed one, or its restart, included)
    assert len({p["worker"] for p in placed.values()} | {first["worker"]}) >= 2
    assert all(r["host"] for r in rows)
    # the order the trials went out in, and the seed that gives it again
    record = json.loads((out / "suite.json").read_text())
    assert len(record["trial_order"]) == 4 and isinstance(record["trial_seed"], int)
    assert record["status"] == "complete" and record["cluster"] == cluster_address
    # the same columns as a run made on one machine (each worker's own run folder), + run
    local = read_rows(next((out / lost[0]["run"] / "worker-runs").glob("*/summary.csv")))
    assert list(rows[0]) == [*local[0], "run"]
    # a gathered run is a run folder like any other: its figures recompute from its files
    assert_summarize_reproduces(out / lost[0]["run"], tmp_path)
    # nothing of the killed trial still runs (setpriv's parent-death signal ended it)
    wait_until("the killed worker's trial ended", lambda: not trial_processes(), 30)
    print(stderr[-2000:])
