"""A suite: an ordered list of scenario runs (file, parameters, repeat), itself a YAML file.

A run may sweep parameters (``sweep: {miimon: [10, 100, 500]}``): it expands into one
run per combination, which is how a benchmark across parameters is written.  A run's
``expect:`` adds to its scenario's expectations (harness.results.verdicts), replacing
those on the same figures.  After the runs (harness/scenario/suite_runner.py runs
them), every summary row goes into one ``suite.csv``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import Field, ValidationError

from harness.errors import ConfigError
from harness.results.verdicts import Expect
from harness.scenario.model import Strict
from harness.validation import config_error


class SuiteRun(Strict):
    scenario: Path  # relative to the suite file
    repeat: int = Field(1, ge=1)
    params: dict[str, Any] = {}
    sweep: dict[str, list[Any]] = {}  # parameter -> values; one run per combination
    expect: Expect = {}  # added to the scenario's, replacing those on the same figures

    def expand(self) -> list[SuiteRun]:
        if not self.sweep:
            return [self]
        keys = list(self.sweep)
        return [self.model_copy(update={"params": {**self.params, **dict(zip(keys, combo,
                                                                             strict=True))},
                                        "sweep": {}})
                for combo in itertools.product(*(self.sweep[k] for k in keys))]


class Suite(Strict):
    name: str
    intent: str
    runs: list[SuiteRun] = Field(min_length=1)


def load_suite(path: Path) -> Suite:
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist",
                          "give a file in scenarios/suites/, e.g. scenarios/suites/default.yaml")
    try:
        suite = Suite.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite {path} is not valid YAML: {exc}", "fix the YAML") from exc
    except ValidationError as exc:
        raise config_error(f"suite {path}", exc, f"correct {path}") from exc
    runs = [one.model_copy(update={"scenario": (path.parent / run.scenario).resolve()})
            for run in suite.runs for one in run.expand()]
    for run in runs:
        if not run.scenario.is_file():
            raise ConfigError(f"suite {path} names scenario {run.scenario}, which does not"
                              " exist", "correct the path (relative to the suite file)")
    return suite.model_copy(update={"runs": runs})


# The figures a benchmark compares, where a run has them.
KEY_FIGURES = ("failover_gap_ms", "failback_gap_ms", "failover_detected_ms",
               "lacp_member_left_ms", "vrrp_takeover_ms", "vrrp_master_down_ms",
               "throughput_before_mbps", "throughput_during_mbps", "capacity_retained_pct")


def combine(folders: list[tuple[str, Path]], out: Path) -> pd.DataFrame:
    """Every run's summary rows in one table (``run`` names the folder), written to ``out``;
    a run that wrote no summary (it failed) is left out and named in the log."""
    frames = []
    for label, folder in folders:
        summary = folder / "summary.csv"
        if summary.is_file():
            frames.append(pd.read_csv(summary).assign(run=label))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table.to_csv(out, index=False)
    return table


def medians(table: pd.DataFrame) -> pd.DataFrame:
    figures = [c for c in KEY_FIGURES if c in table.columns]
    grouped = table.groupby("run", sort=False)
    result = grouped[figures].median()
    result.insert(0, "trials", grouped.size())
    return result
