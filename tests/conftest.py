"""Shared fixtures: where the repository is, and how to call the redlab command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


# Where the real-lab runs happened, printed at the end of the session so the CI log says
# which kernel the bond tests ran on.
LAB_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if LAB_REPORT:
        terminalreporter.section("where the labs ran")
        for line in LAB_REPORT:
            terminalreporter.write_line(line)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run_scenario(tmp_path_factory, scenario: str, *params: str,
                 timeout: float = 300, lab: str | None = None) -> Path:
    """``redlab run scenarios/<scenario>.yaml --param p ... [--lab LAB]`` into a fresh
    folder, as a user would; the run must succeed.  Returns the run folder."""
    out = tmp_path_factory.mktemp(scenario) / "run"
    args = [a for p in params for a in ("--param", p)] + (["--lab", lab] if lab else [])
    done = redlab("run", f"scenarios/{scenario}.yaml", *args, "--out", str(out),
                  timeout=timeout)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def trial_events(out: Path, kind: str, trial: int = 1) -> list[dict[str, str]]:
    """The events of one kind in a trial's events.csv, in file order."""
    return [e for e in read_rows(out / f"trial-{trial:03d}" / "events.csv")
            if e["kind"] == kind]


def redlab(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would, from the repository root."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture
def repo() -> Path:
    return REPO


def guest_json_lines(module: str, features: list[str], deadline_s: float,
                     start_ovs: bool = False) -> list[dict[str, Any]]:
    """Run ``python -m <module>`` (a test module's guest side) in one User-mode Linux
    guest and return the JSON lines it printed; skip where UML is not installed."""
    from harness.journal import Journal
    from harness.lab import guest_modules, uml
    from harness.naming import new_run_id

    if not uml.uml_available():
        pytest.skip("user-mode-linux (linux.uml + modules) not installed")
    with Journal(new_run_id()) as journal:
        result = uml.run_in_uml(
            uml.GuestSpec(argv=[sys.executable, "-m", module], cwd=REPO,
                          env={"PYTHONPATH": str(REPO)}, modules=guest_modules(features),
                          start_ovs=start_ovs),
            deadline_s=deadline_s, journal=journal, stream=False)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"UML boot {result.boot_s:.1f} s, run {result.run_s:.1f} s")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
