"""Runs that collide: nothing is left behind (runs given bad input:
tests/unit/test_run_lifecycle.py; killed runs: test_killed_run.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.naming import new_run_id

from ..conftest import REPO
from ..lab_state import Snapshot

SCENARIO = "scenarios/bond-active-backup.yaml"


@pytest.mark.lab
@pytest.mark.private_guest  # two guests booted side by side, not one shared guest in turn
@pytest.mark.whole_host  # on a CPU each, as two runs at once get
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


def short_vrrp_scenario(folder: Path, expect: dict) -> Path:
    """vrrp-master-death cut to 6 s of traffic (it runs natively: keepalived needs no
    module), with ``expect`` as its expectations."""
    doc = yaml.safe_load((REPO / "scenarios" / "vrrp-master-death.yaml").read_text())
    doc.update(name="vrrp-short", expect=expect,
               steps=[{"at_s": 2, "action": "device_down", "node": "r1"},
                      {"at_s": 4, "action": "restore"}])
    doc["traffic"]["duration_s"] = 6
    path = folder / "vrrp-short.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.lab
def test_keep_failed_lab_holds_the_lab_until_released_then_cleans_up(tmp_path):
    """--keep-failed-lab: a trial that fails its expectations leaves its lab up (its
    keepalived running, its namespaces there) until SIGUSR1 (no terminal here), then the
    run ends as usual: exit 1, status complete, nothing left behind."""
    before = Snapshot.take()
    scenario = short_vrrp_scenario(tmp_path, {"probe_packets": {"max": 1}})
    out, run_id = tmp_path / "run", new_run_id()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--lab",
                             "native", "--keep-failed-lab", "--out", str(out), "--run-id",
                             run_id], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # no controlling terminal: SIGUSR1
    said = []
    try:
        for line in proc.stderr:
            said.append(line)
            if "kill -USR1" in line:
                break
        assert any("probe_packets" in line and "stays up" in line for line in said), said
        held = Snapshot.take().new_since(before, (run_id,))  # a live run: name it ours
        assert any(comm == "keepalived" for _, comm in held.get("processes", ())), held
        assert (out / "trial-001" / "trial.json").is_file(), "the trial was measured first"
        pid = int(said[-1].split("kill -USR1 ")[1].split("`")[0])
        assert pid == proc.pid
        os.kill(pid, signal.SIGUSR1)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "verdict: FAIL" in stdout, stdout
    assert json.loads((out / "metadata.json").read_text())["status"] == "complete"
    assert Snapshot.take().new_since(before, (run_id,)) == {}
