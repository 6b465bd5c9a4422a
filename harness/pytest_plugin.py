"""RedLab in a user's own pytest files: the ``redlab`` fixture (registered through the
``pytest11`` entry point, so installing RedLab is enough).

    def test_the_bond_fails_over_fast(redlab):
        summary = redlab.run("scenarios/bond-active-backup.yaml", params={"miimon": 100},
                             repeat=5)
        assert summary["failover_gap_ms"].max() <= 150

``redlab.run`` runs ``redlab run`` as the command line does (natively or in User-mode
Linux, chosen the same way) in a process of its own, so a crash or Ctrl-C cleans up as
it does there.  It returns the run's summary, verdicts included; bad input and lab errors
fail the test with RedLab's message.  Each trial's key figures become JUnit XML
properties (``pytest --junitxml``), named ``<run>.trial<N>.<figure>``.

Options: ``--redlab-results DIR`` keeps the runs there (default: the test's tmp_path),
``--redlab-lab auto|native|uml``, and ``--redlab-keep-failed-lab`` (a failed trial's lab
stays up until you press Enter; native labs only: see harness.scenario.hold).  A test
that uses the fixture is marked ``lab``, so ``-m "not lab"`` leaves the labs out.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.results import verdicts

SHIPPED = Path(__file__).resolve().parents[1] / "scenarios"
ROW_PROPERTIES = ("verdict", "verdict_failed", "within_prediction", "predicted_min_ms",
                  "predicted_max_ms", "recovered_before_restore", "lost_packets")


@dataclass
class RunSummary:
    """One ``redlab run``: its folder, summary table (one row per trial) and verdict."""

    folder: Path
    table: pd.DataFrame
    returncode: int
    said: str = ""  # what the run printed: figures and verdict lines

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self.table.columns:
            raise KeyError(f"the summary has no column {column!r}; it has: "
                           f"{', '.join(self.table.columns)}")
        return self.table[column]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def verdict(self) -> str:
        """pass or fail on the scenario's expect: block (and ``expect=``); "" without."""
        column = self.table.get("verdict", pd.Series(dtype=object)).fillna("")
        return verdicts.run_verdict([str(v) for v in column])

    @property
    def failed(self) -> list[str]:
        """What each failed trial missed, as its verdict_failed column says."""
        if "verdict_failed" not in self.table.columns:
            return []
        return [f"trial {int(r.trial)}: {r.verdict_failed}" for r in self.table.itertuples()
                if str(getattr(r, "verdict", "")) == "fail"]


@dataclass
class RedLab:
    """What the ``redlab`` fixture gives a test."""

    results: Path
    lab: str = "auto"
    keep_failed_lab: bool = False
    record: Callable[[str, object], None] = lambda name, value: None
    runs: list[RunSummary] = field(default_factory=list)

    def run(self, scenario: str | Path, params: Mapping[str, Any] | None = None,
            repeat: int = 1, expect: Mapping[str, Any] | None = None,
            timeout_s: float | None = None) -> RunSummary:
        """Run ``scenario`` (a path, or the name of a shipped scenario) ``repeat`` times
        with ``params`` overriding its parameters; ``expect`` adds expectations to the
        scenario's own (``{"failover_gap_ms": {"max": 150}}``)."""
        path = scenario_path(scenario)
        label = f"{len(self.runs) + 1:02d}-{path.stem}"
        out, again = self.results / label, 1
        while out.exists():  # a test run again into the same --redlab-results
            again += 1
            out = self.results / f"{label}-{again}"
        argv = [sys.executable, "-m", "harness", "run", str(path), "--out", str(out),
                "--repeat", str(repeat), "--lab", self.lab]
        for key, value in (params or {}).items():
            argv += ["--param", f"{key}={_param(value)}"]
        if expect:
            argv += ["--expect-json", json.dumps(dict(expect))]
        if self.keep_failed_lab:
            argv.append("--keep-failed-lab")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
        if done.returncode not in (0, 1) or not (out / "summary.csv").is_file():
            pytest.fail(f"redlab run {path} failed (exit {done.returncode}):\n"
                        f"{done.stderr[-4000:]}", pytrace=False)
        summary = RunSummary(out, pd.read_csv(out / "summary.csv"), done.returncode,
                             done.stdout)
        if done.returncode == 1 and summary.verdict != "fail":
            pytest.fail(f"redlab run {path} exited 1 without a failed verdict:\n"
                        f"{done.stderr[-4000:]}", pytrace=False)
        self.runs.append(summary)
        self._record(label, summary)
        return summary

    def _record(self, label: str, summary: RunSummary) -> None:
        from harness.scenario.suite import KEY_FIGURES

        self.record(f"{label}.folder", str(summary.folder))
        self.record(f"{label}.verdict", summary.verdict or "none")
        for row in summary.table.to_dict("records"):
            for column in (*KEY_FIGURES, *ROW_PROPERTIES):
                if column in row:
                    self.record(f"{label}.trial{int(row['trial'])}.{column}",
                                _property(row[column]))


def scenario_path(scenario: str | Path) -> Path:
    """``scenario`` as given when it exists, else the shipped scenario of that name."""
    given = Path(scenario)
    if given.is_file():
        return given.resolve()
    shipped = SHIPPED / (given.name if given.suffix else f"{given.name}.yaml")
    if shipped.is_file():
        return shipped
    raise pytest.UsageError(f"redlab.run: no scenario {scenario} (nor {shipped}); give a"
                            " scenario file's path or a shipped scenario's name")


def _param(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _property(value: object) -> object:
    """A figure as JUnit XML carries it: a missing one is "" (a 0 stays 0)."""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value.item() if hasattr(value, "item") else value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redlab", "RedLab network redundancy labs")
    group.addoption("--redlab-results", metavar="DIR", default=None,
                    help="keep each test's runs in DIR/<test> (default: the test's tmp_path)")
    group.addoption("--redlab-lab", default="auto", choices=("auto", "native", "uml"),
                    help="where the labs run (default: auto, as redlab run)")
    group.addoption("--redlab-keep-failed-lab", action="store_true",
                    help="a failed trial's lab stays up for inspection until Enter"
                         " (native labs only)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: builds a real network lab (the redlab fixture"
                            " marks its tests so); -m 'not lab' leaves them out")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "redlab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


@pytest.fixture
def redlab(request: pytest.FixtureRequest, tmp_path: Path,
           record_property: Callable[[str, object], None]) -> RedLab:
    """Runs scenarios for this test: ``redlab.run(scenario, params=..., repeat=...)``."""
    chosen = request.config.getoption("--redlab-results")
    if chosen:
        results = Path(chosen).resolve() / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    else:
        results = tmp_path / "redlab"
    results.mkdir(parents=True, exist_ok=True)
    return RedLab(results, request.config.getoption("--redlab-lab"),
                  request.config.getoption("--redlab-keep-failed-lab"), record_property)
