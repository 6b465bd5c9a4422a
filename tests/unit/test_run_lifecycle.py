"""Runs given bad input: nothing is left behind, and `redlab clean` leaves a run in
progress alone (runs that collide: tests/lab/test_run_lifecycle.py; killed runs:
tests/lab/test_killed_run.py)."""

from __future__ import annotations

import pytest

from harness import journal
from harness.naming import new_run_id

from ..conftest import SCENARIOS, needs_root, redlab
from ..lab_state import Snapshot

SCENARIO = "scenarios/bond-active-backup.yaml"


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
    (["run", SCENARIO, "--lab", "uml", "--keep-failed-lab"], "guest cannot be entered"),
], ids=["unknown-bond-mode", "param-typo", "bad-lab", "missing-scenario", "keep-lab-in-uml"])
def test_bad_input_is_one_clear_error_and_creates_nothing(tmp_path, args, message):
    before = Snapshot.take()
    out = tmp_path / "out"
    run_id = new_run_id()  # the other stream's guests start and end meanwhile
    done = redlab(*args, "--out", str(out), "--run-id", run_id)
    assert done.returncode == 2
    assert message in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert Snapshot.take().new_since(before, (run_id,)) == {}


def test_a_malformed_scenario_file_is_one_clear_error_and_creates_nothing(tmp_path):
    before = Snapshot.take()
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIOS / "bond-active-backup.yaml").read_text()
                   .replace("action: cut", "action: snip"))
    out = tmp_path / "out"
    run_id = new_run_id()  # as above: not another test's guest
    done = redlab("run", str(bad), "--out", str(out), "--run-id", run_id)
    assert done.returncode == 2
    assert "steps.0.action" in done.stderr and "fix: correct" in done.stderr
    assert not out.exists()
    assert Snapshot.take().new_since(before, (run_id,)) == {}


@needs_root  # the feature probe tries the module in a fresh network namespace
def test_a_missing_kernel_feature_natively_names_the_module_and_the_way_out(tmp_path):
    from harness.lab import capabilities

    if capabilities.probe("bonding"):
        pytest.skip("this kernel has bonding: nothing is missing natively")
    out = tmp_path / "out"
    done = redlab("run", SCENARIO, "--lab", "native", "--out", str(out))
    assert done.returncode == 2
    assert "bonding" in done.stderr and "--lab uml" in done.stderr
    assert not out.exists()
