"""Find a topology module by name, validate its parameters, and build its data.

A topology module in ``topologies/`` defines ``Params`` (a pydantic model: every
parameter with its type and default) and ``build(params) -> Topology``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from harness.errors import ConfigError
from harness.topology.model import Topology
from harness.validation import config_error

# The repository's topologies/ folder, beside the harness package.
TOPOLOGY_DIR = Path(__file__).resolve().parents[2] / "topologies"


def topology_path(name: str) -> Path:
    path = TOPOLOGY_DIR / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.py") if not p.stem.startswith("_"))
        raise ConfigError(f"unknown topology {name!r}",
                          f"use one of: {', '.join(known)} (files in {TOPOLOGY_DIR})")
    return path


def load_module(name: str) -> ModuleType:
    path = topology_path(name)
    spec = importlib.util.spec_from_file_location(f"redlab_topology_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would be: pydantic resolves the string
    # annotations of ``from __future__ import annotations`` through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for attr in ("Params", "build"):
        if not hasattr(module, attr):
            raise ConfigError(f"topology module {path} defines no {attr}",
                              "a topology defines Params (pydantic) and build(params)")
    return module


def build_topology(name: str, params: dict[str, Any]) -> tuple[Topology, dict[str, Any]]:
    """The topology's data and the full parameter set it was built with (defaults filled)."""
    module = load_module(name)
    try:
        model = module.Params.model_validate(params)
    except ValidationError as exc:
        known = ", ".join(module.Params.model_fields)
        raise config_error(f"parameters of topology {name}", exc,
                           f"known parameters: {known}") from exc
    # Every bond's options were checked as the topology declared it (Topology.add_bond);
    # each technology checks the rest of its part before anything exists.
    from harness.tech.registry import check

    topo = module.build(model).validate()
    problems = check(topo)
    if problems:
        raise ConfigError(f"topology {name} is inconsistent:\n  - " + "\n  - ".join(problems),
                          f"correct topologies/{name}.py")
    return topo, model.model_dump(mode="json")
