"""Shared fixtures: where the repository is, and how to call the redlab command."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

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


def redlab(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would, from the repository root."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture
def repo() -> Path:
    return REPO
