"""A comparison (harness/results/compare.py) shown as a rich table, or written as CSV or
JSON: one row per run and figure, the same columns everywhere."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.errors import ConfigError
from harness.results.compare import VERDICTS, Comparison, FigureComparison

COLOURS = {"regression": "bold red", "improvement": "green", "no change": "",
           "inconclusive": "yellow"}


def check_outputs(*paths: Path | None) -> None:
    """Before anything is computed or written: every output can be written."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise ConfigError(f"{path} is a folder", "give a file name, e.g. compare.csv")
        if not path.parent.is_dir():
            raise ConfigError(f"{path.parent} does not exist",
                              f"create it first, or write {path.name} elsewhere")


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _row(fig: FigureComparison, run: str) -> list[str]:
    unit = f" {fig.unit}" if fig.unit and fig.unit != "%" else fig.unit
    interval = f" [{_number(fig.ci_low)}, {_number(fig.ci_high)}]"
    return [run, fig.figure,
            f"{_number(fig.baseline_median)}{unit} ({fig.baseline_trials})",
            f"{_number(fig.candidate_median)}{unit} ({fig.candidate_trials})",
            f"{fig.difference:+.4g}{unit}{interval if not math.isnan(fig.ci_low) else ''}",
            f"{fig.p_worse_adjusted:.3g}", f"{fig.threshold:.3g}{unit}",
            f"[{COLOURS[fig.verdict]}]{fig.verdict}[/]" if COLOURS[fig.verdict]
            else fig.verdict]


def show(result: Comparison, csv_path: Path | None = None,
         json_path: Path | None = None) -> None:
    """On the terminal (a pipe or a log gets wide lines, not folded columns), then into
    the files asked for."""
    console = Console()
    if not console.is_terminal:
        console.width = 200
    render(result, console)
    for path, write in ((csv_path, write_csv), (json_path, write_json)):
        if path is not None:
            write(result, path)
            console.print(f"wrote {path}", highlight=False)


def render(result: Comparison, console: Console) -> None:
    """The table, then warnings, notes and why each inconclusive figure is one."""
    table = Table(title=f"baseline {result.baseline}  vs  candidate {result.candidate}")
    for name in ("run", "figure", "baseline (n)", "candidate (n)",
                 "difference [95% CI]", "p worse", "threshold", "verdict"):
        left = name in ("run", "figure")
        table.add_column(name, justify="left" if left else "right", no_wrap=left)
    for number, fig in enumerate(result.figures):
        first = number == 0 or result.figures[number - 1].run != fig.run
        if first and number:
            table.add_section()
        table.add_row(*_row(fig, fig.run if first else ""))
    console.print(table)
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)
    for text in result.notes:
        console.print(f"note: {text}", highlight=False, soft_wrap=True)
    why: dict[tuple[str, str], list[str]] = {}  # one line per run and reason
    for fig in result.figures:
        if fig.note:
            why.setdefault((fig.run, fig.note), []).append(fig.figure)
    for (run, note), figures in why.items():
        console.print(f"{run} ({', '.join(figures)}): {note}", highlight=False,
                      soft_wrap=True)
    counts = {v: sum(f.verdict == v for f in result.figures) for v in VERDICTS}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items() if n), highlight=False)


def _plain(value: Any) -> Any:
    """JSON has no NaN: an empty interval is null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def rows(result: Comparison) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in asdict(fig).items()} for fig in result.figures]


def write_csv(result: Comparison, path: Path) -> None:
    table = rows(result)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def write_json(result: Comparison, path: Path) -> None:
    path.write_text(json.dumps({
        "baseline": str(result.baseline), "candidate": str(result.candidate),
        "regression": result.regression, "warnings": result.warnings,
        "notes": result.notes, "figures": rows(result)}, indent=2) + "\n")
