"""Runs that collide: nothing is left behind (runs given bad input:
tests/unit/test_run_lifecycle.py; killed runs: test_killed_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.naming import new_run_id

from ..conftest import REPO
from ..lab_state import Snapshot

SCENARIO = "scenarios/bond-active-backup.yaml"


@pytest.mark.lab
@pytest.mark.private_guest  # two guests booted side by side, not one shared guest in turn
def test_two_runs_at_once_do_not_collide(tmp_path):
    before = Snapshot.take()
    outs = [tmp_path / "a", tmp_path / "b"]
    run_ids = tuple(new_run_id() for _ in outs)
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "run", SCENARIO, "--out",
                               str(out), "--run-id", run_id], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out, run_id in zip(outs, run_ids, strict=True)]
    results = [p.communicate(timeout=600) for p in procs]
    metas = [json.loads((out / "metadata.json").read_text()) for out in outs]
    for proc, (said, err) in zip(procs, results, strict=True):
        # 1 is a verdict (the scenario's expect:) missed under the double load, with the
        # run complete: this test is about collisions, not figures. Verdicts go to stdout.
        assert proc.returncode == 0 or (proc.returncode == 1 and "verdict: FAIL" in said), (
            said[-2000:] + err[-3000:])
    assert metas[0]["run_id"] != metas[1]["run_id"]
    assert all(m["status"] == "complete" for m in metas)
    assert Snapshot.take().new_since(before, run_ids) == {}
