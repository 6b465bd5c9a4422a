"""A run folder's verdicts: those a run wrote (summary.csv), and the run held again
against its expectations (``redlab verdict``) from its stored files alone, as ``redlab
summarize`` recomputes figures, but without writing anything, so that checking a stored
run against new expectations never changes what it recorded.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.results import verdicts
from harness.results.verdicts import Bound


def stored_rows(run_dir: Path) -> list[dict[str, str]]:
    """summary.csv's rows as text ("" where a cell is empty); [] when there is none."""
    path = run_dir / "summary.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def failed_verdict(run_dir: Path, exit_code: int) -> bool:
    """Whether ``exit_code`` of ``redlab run`` (a guest's, passed through) is a finished
    run's failed verdict, rather than an error: exit 1, the run complete, a trial failed."""
    try:
        status = json.loads((run_dir / "metadata.json").read_text()).get("status")
    except (OSError, ValueError):
        return False
    return (exit_code == 1 and status == "complete"
            and verdicts.run_verdict([r.get("verdict", "") for r in stored_rows(run_dir)])
            == "fail")


def runs_in(folder: Path) -> list[Path]:
    """``folder`` if it is a run folder, else the run folders of a suite folder."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder",
                          "give a run folder (redlab run) or a suite folder (redlab suite)")
    if (folder / "metadata.json").is_file():
        return [folder]
    runs = sorted(p.parent for p in folder.glob("*/metadata.json"))
    if not runs:
        raise ConfigError(f"{folder} holds no metadata.json, nor runs that do",
                          "give a folder written by redlab run or redlab suite")
    return runs


def load_expect_file(path: Path) -> dict[str, Bound]:
    """The ``expect:`` block of a YAML file (a scenario file will do)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read expectations from {path}: {exc}",
                          "give a YAML file with an expect: block") from None
    if not isinstance(doc, dict) or "expect" not in doc:
        raise ConfigError(f"{path} has no expect: block",
                          "write expect: {failover_gap_ms: {max: 150}} (figure: bound)")
    return verdicts.parse(doc["expect"], f"expect: in {path}", f"correct {path}")


def recheck(run_dir: Path, extra: Mapping[str, Bound]
            ) -> tuple[list[dict[str, Any]], dict[str, Bound]]:
    """Every measured trial's row of ``run_dir`` recomputed from its files and judged on
    the stored expectations with ``extra`` added (replacing those on the same figures);
    nothing is written."""
    from harness.results.summary import TRIAL_FILE, trial_row

    try:
        meta = json.loads((run_dir / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {run_dir / 'metadata.json'}: {exc}",
                          "give a folder written by redlab run") from None
    stored = verdicts.parse(meta["scenario"].get("expect"), f"expect: of the run in {run_dir}",
                            f"correct expect: in {run_dir / 'metadata.json'}")
    expect = {**stored, **extra}
    meta["scenario"] = {**meta["scenario"], "expect": verdicts.to_doc(expect)}
    rows = [trial_row(trial, meta) for trial in sorted(run_dir.glob("trial-*"))
            if (trial / TRIAL_FILE).is_file()]
    return rows, expect
