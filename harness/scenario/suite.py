"""A suite: an ordered list of scenario runs (file, parameters, repeat), itself a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from harness.errors import ConfigError
from harness.scenario.model import Strict
from harness.validation import config_error


class SuiteRun(Strict):
    scenario: Path  # relative to the suite file
    repeat: int = Field(1, ge=1)
    params: dict[str, Any] = {}


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
    runs = [run.model_copy(update={"scenario": (path.parent / run.scenario).resolve()})
            for run in suite.runs]
    for run in runs:
        if not run.scenario.is_file():
            raise ConfigError(f"suite {path} names scenario {run.scenario}, which does not"
                              " exist", "correct the path (relative to the suite file)")
    return suite.model_copy(update={"runs": runs})
