"""A local suite boots one User-mode Linux guest for all its runs that need one
(harness/scenario/suite_guest.py), each run still its own `redlab run` on a real kernel,
and stops it when the suite ends (which guest it boots: tests/unit/test_suite_guest.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from harness.lab import capabilities

from ..conftest import REPO, SCENARIOS, read_rows
from ..lab_state import Snapshot

pytestmark = pytest.mark.private_guest  # not the test session's guest: the suite's own


def short_bond_scenario(folder, name: str):
    """bond-active-backup cut to 5 s of traffic."""
    doc = yaml.safe_load((SCENARIOS / "bond-active-backup.yaml").read_text())
    doc["name"] = name
    doc["traffic"]["duration_s"] = 5
    doc["steps"] = [{"at_s": 2, "action": "cut", "node": "srv", "interface": "active",
                     "end": "far"}, {"at_s": 3.5, "action": "restore"}]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_suite_runs_every_guest_run_in_one_guest_and_stops_it(tmp_path):
    if capabilities.probe("bonding"):
        pytest.skip("this kernel has bonding: the suite's runs need no guest")
    for name in ("first", "second"):
        short_bond_scenario(tmp_path, name)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "shared", "intent": "one guest, two runs",
                                     "runs": [{"scenario": "first.yaml"},
                                              {"scenario": "second.yaml",
                                               "params": {"miimon": 50}}]}))
    before = Snapshot.take()
    done = subprocess.run([sys.executable, "-m", "harness", "suite", str(suite), "--out",
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    print(done.stdout[-3000:], done.stderr[-4000:])
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stderr.splitlines()
    ready = [m.group(1) for line in said
             if (m := re.search(r"shared User-mode Linux guest redlab-(\w+)-\d+ ready", line))]
    assert len(ready) == 1, said
    assert sum("running redlab run in the shared User-mode Linux guest" in line
               for line in said) == 2
    assert not any("booting User-mode Linux" in line for line in said)
    rows = read_rows(tmp_path / "out" / "suite.csv")
    assert [r["scenario"] for r in rows] == ["first", "second"]
    assert all(float(r["failover_gap_ms"]) >= 0 for r in rows), rows
    # the guest stopped with the suite (its kernel named by its run id: the other
    # stream's guests start and end meanwhile, and one once counted here)
    assert Snapshot.take().new_since(before, (ready[0],)) == {}
