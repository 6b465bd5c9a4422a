"""Runs that collide, runs that are killed, runs given bad input: nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import journal
from harness.naming import new_run_id

from .conftest import REPO, SCENARIOS, redlab
from .lab_state import Snapshot

SCENARIO = "scenarios/bond-active-backup.yaml"


@pytest.mark.lab
def test_two_runs_at_once_do_not_collide(tmp_path):
    before = Snapshot.take()
    outs = [tmp_path / "a", tmp_path / "b"]
    run_ids = tuple(new_run_id() for _ in outs)
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "run", SCENARIO, "--out",
                               str(out), "--run-id", run_id], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out, run_id in zip(outs, run_ids, strict=True)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    metas = [json.loads((out / "metadata.json").read_text()) for out in outs]
    assert metas[0]["run_id"] != metas[1]["run_id"]
    assert all(m["status"] == "complete" for m in metas)
    assert Snapshot.take().new_since(before, run_ids) == {}


@pytest.mark.lab
def test_a_run_killed_midway_leaves_nothing_after_redlab_clean(tmp_path):
    before = Snapshot.take()
    out = tmp_path / "killed"
    run_id = (new_run_id(),)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", SCENARIO, "--repeat",
                             "3", "--out", str(out), "--run-id", run_id[0]], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # Kill it while the lab is up and traffic flows: the first trial's timeline exists.
    while not (out / "trial-001" / "events.csv").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never started its first trial"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = Snapshot.take().new_since(before, run_id)
    assert left, "a SIGKILLed run should have left something for clean to remove"

    cleaned = redlab("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed" in cleaned.stdout
    deadline = time.monotonic() + 10
    while Snapshot.take().new_since(before, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Snapshot.take().new_since(before, run_id) == {}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted", "the killed run's folder says what happened"


def test_clean_leaves_a_run_in_progress_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "JOURNAL_DIR", tmp_path)
    live = journal.Journal("live").open()  # owned by this very process, which is alive
    target = tmp_path / "made-by-live-run"
    target.mkdir()
    live.record("path", path=str(target))
    assert journal.clean_stale() == []
    assert target.exists() and live.path.exists()
    live.rollback()
    assert not target.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["run", SCENARIO, "--param", "bond_mode=active-bakup"], "unknown bond mode 'active-bakup'"),
    (["run", SCENARIO, "--param", "mimon=100"], "mimon: unknown key"),
    (["run", SCENARIO, "--lab", "vm"], "--lab 'vm' is not one of"),
    (["run", "scenarios/no-such.yaml"], "does not exist"),
], ids=["unknown-bond-mode", "param-typo", "bad-lab", "missing-scenario"])
def test_bad_input_is_one_clear_error_and_creates_nothing(tmp_path, args, message):
    before = Snapshot.take()
    out = tmp_path / "out"
    done = redlab(*args, "--out", str(out))
    assert done.returncode == 2
    assert message in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert Snapshot.take().new_since(before) == {}


def test_a_malformed_scenario_file_is_one_clear_error_and_creates_nothing(tmp_path):
    before = Snapshot.take()
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIOS / "bond-active-backup.yaml").read_text()
                   .replace("action: cut", "action: snip"))
    out = tmp_path / "out"
    done = redlab("run", str(bad), "--out", str(out))
    assert done.returncode == 2
    assert "steps.0.action" in done.stderr and "fix: correct" in done.stderr
    assert not out.exists()
    assert Snapshot.take().new_since(before) == {}


def test_a_missing_kernel_feature_natively_names_the_module_and_the_way_out(tmp_path):
    from harness.lab import capabilities

    if capabilities.probe("bonding"):
        pytest.skip("this kernel has bonding: nothing is missing natively")
    out = tmp_path / "out"
    done = redlab("run", SCENARIO, "--lab", "native", "--out", str(out))
    assert done.returncode == 2
    assert "bonding" in done.stderr and "--lab uml" in done.stderr
    assert not out.exists()
