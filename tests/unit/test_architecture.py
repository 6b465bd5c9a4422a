"""The engine's shape, checked: no import circle between harness modules, no module over
the size a reader can hold, and the lab core naming no technology (a new one is a plug-in:
harness/tech/base.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "harness"
MAX_LINES = 420  # "about 400"
# The core: what must not change when a technology is added.
CORE = ("lab/running.py", "lab/wiring.py", "lab/addressing.py", "scenario/runner.py",
        "scenario/timeline.py", "results/summary.py", "results/plot.py", "results/store.py")
TECHNOLOGY_PACKAGES = ("bond", "lacp", "ovs", "vrrp")


def module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """harness modules imported when ``path`` is imported: module level only, not under
    ``if TYPE_CHECKING`` and not inside functions (a lazy import is no circle)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
            found.add(node.module)  # type: ignore[arg-type]
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in HARNESS.rglob("*.py")}
    return {name: {m for m in top_level_imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``edges``, as a path that returns to its start; None if none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_harness_module_imports_itself_through_others():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(HARNESS.rglob("*.py")), ids=lambda p: str(
    p.relative_to(HARNESS)))
def test_no_module_is_longer_than_a_reader_can_hold(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(HARNESS)} has {lines} lines: split it"


@pytest.mark.parametrize("core", CORE)
def test_the_lab_runner_and_results_name_no_technology(core: str):
    """They loop over harness.tech.base.Technology; only the registry lists them."""
    imported = top_level_imports(HARNESS / core)
    named = sorted(m for m in imported for pkg in TECHNOLOGY_PACKAGES
                   if m.startswith(f"harness.tech.{pkg}"))
    assert named == [], f"{core} imports {named}"


def test_a_new_technology_checks_its_declarations_before_anything_exists(monkeypatch):
    """A technology the lab core never heard of: declared in the topology's generic
    declarations, found by the registry, and its problems raised by the loader."""
    from harness.errors import ConfigError
    from harness.tech import registry
    from harness.tech.base import Technology
    from harness.topology import loader, model

    class Dummy(Technology):
        name = "dummy"

        @classmethod
        def used_by(cls, topo: model.Topology) -> bool:
            return bool(topo.declared("dummy"))

        @classmethod
        def check(cls, topo: model.Topology) -> list[str]:
            return [f"dummy {item!r} is wrong" for item in topo.declared("dummy")]

    module = loader.load_module("path")
    original = module.build

    def build(params):  # the path topology, plus a declaration of the new technology
        topo = original(params)
        topo.declare("dummy", "x")
        return topo

    monkeypatch.setattr(module, "build", build)
    monkeypatch.setattr(loader, "load_module", lambda name: module)
    monkeypatch.setattr(registry, "TECHNOLOGIES", (*registry.TECHNOLOGIES, Dummy))
    with pytest.raises(ConfigError, match="dummy 'x' is wrong"):
        loader.build_topology("path", {})
    monkeypatch.setattr(registry, "TECHNOLOGIES", registry.TECHNOLOGIES[:-1])
    topo, _ = loader.build_topology("path", {})  # unknown to the registry: no check
    assert topo.declared("dummy") == ["x"]
