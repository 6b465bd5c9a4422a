"""``redlab audit``: fail every element of a topology in turn (or every pair) and say where
a single point of failure remains. Registered on the app when harness.cli imports this.

Each trial is an ordinary run (harness.audit.plan writes its scenario beside it), so it
runs natively or in User-mode Linux as ``redlab run`` would, and a finished trial's
folder is kept: ``--resume`` continues an interrupted audit from the first trial
without a complete run.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness import timeouts
from harness.cli_common import _reported, _setup, app
from harness.errors import ConfigError, RedLabError

if TYPE_CHECKING:
    from harness.audit.plan import Trial

log = logging.getLogger("redlab")
AUDIT_CSV = "audit.csv"
TRIAL_COST_S = 25  # a 7 s trial in UML, its share of the guest included (24.5 s seen)


@app.command()
def audit(
    topology: Annotated[str, typer.Argument(help="a topology of topologies/, e.g. bond_server")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="a topology parameter: key=value")] = [],  # noqa: B006, E501
    order: Annotated[int, typer.Option(help="1: each unit alone; 2: every pair")] = 1,
    server: Annotated[str, typer.Option(help="the host iperf3 sends from")] = "srv",
    client: Annotated[str, typer.Option(help="the host that receives and reports")] = "cli",
    max_trials: Annotated[int, typer.Option(min=1, help="refuse an audit of more trials")] = 60,  # noqa: E501
    hold: Annotated[float | None, typer.Option(min=0.5, max=600, help="seconds each unit stays failed: longer than the slowest timer that recovers the path (default 3)")] = None,  # noqa: E501
    out: Annotated[Path | None, typer.Option(help="audit folder (default: results/audit-<topology>-<time>)")] = None,  # noqa: E501
    resume: Annotated[bool, typer.Option(help="continue the audit in --out: complete trials are kept")] = False,  # noqa: E501
    lab: Annotated[str, typer.Option(help="where the labs run: auto, native or uml")] = "auto",
    deadline: Annotated[float, typer.Option(help="seconds before a UML trial is killed")] = timeouts.UML_RUN_DEFAULT,  # noqa: E501
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Fail every cable, member NIC, switch, router and daemon of TOPOLOGY in turn with
    traffic flowing; print and write (audit.csv, audit.png) what the graph predicted and
    what the lab measured for each. Exit 1 if a trial could not be measured."""
    _setup(verbose)
    with _reported():
        rows = run_audit(topology, param, order, (server, client), max_trials, out, resume,
                         lab, deadline, hold)
    raise typer.Exit(1 if any(r["verdict"] == "not measured" for r in rows) else 0)


def run_audit(topology: str, param: list[str], order: int, endpoints: tuple[str, str],
              max_trials: int, out: Path | None, resume: bool, lab: str,
              deadline: float, hold: float | None = None) -> list[dict[str, Any]]:
    from harness.audit import graph, plan, units, verdict
    from harness.audit.draw import draw
    from harness.cli import parse_params
    from harness.lab import LABS
    from harness.scenario import suite_guest
    from harness.scenario.model import Scenario
    from harness.topology.loader import build_topology

    # Everything is checked before anything is created.
    if lab not in LABS:
        raise ConfigError(f"--lab {lab!r} is not one of {', '.join(LABS)}", "pick one of them")
    overrides = parse_params(param)
    topo, _ = build_topology(topology, overrides)
    found = units.failure_units(topo, endpoints)
    trials = [plan.Trial(n, s) for n, s in
              enumerate(units.unit_sets(found, order, max_trials), start=1)]
    predicted = graph.predict(topo, [t.units for t in trials], endpoints)
    docs = [plan.scenario_doc(topo, overrides, trial, endpoints,
                              plan.HOLD_S if hold is None else hold) for trial in trials]
    for trial, doc in zip(trials, docs, strict=True):  # each as redlab run will check it
        Scenario.model_validate(doc).check_against(topo, Path(f"{trial.label}.yaml"))
    root = _folder(out, topology, resume)
    typer.echo(f"audit of {topology}: {len(found)} failure units, {len(trials)} trial(s) at"
               f" order {order}, about {math.ceil(len(trials) * TRIAL_COST_S / 60)} min;"
               f" results in {root}")
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    paths = [plan.write_scenario(root / "scenarios", doc, trial)
             for trial, doc in zip(trials, docs, strict=True)]
    with suite_guest.shared_for([(p, {}, {}) for p in paths], lab, root):  # one boot
        for trial, guess, scenario in zip(trials, predicted, paths, strict=True):
            rows.append(_measure(trial, guess, scenario, root / trial.label, resume, lab,
                                 deadline))
            verdict.table(rows).to_csv(root / AUDIT_CSV, index=False)  # kept if interrupted
            log.info("trial %d/%d %s: %s (predicted %s)", trial.number, len(trials),
                     trial.names, rows[-1]["verdict"], guess)
    alone = [(t.units[0], r) for t, r in zip(trials, rows, strict=True) if len(t.units) == 1]
    picture = draw(topo, endpoints, alone, root / "audit.png") if alone else None
    _show(rows, time.monotonic() - started, root, picture)
    if any(r["verdict"] != "not measured" for r in rows):
        from harness.results.report import write_report

        typer.echo(f"report: {write_report(root)}")  # every trial's run, and the table
    return rows


def _folder(out: Path | None, topology: str, resume: bool) -> Path:
    from harness.naming import new_run_id

    if resume and out is None:
        raise ConfigError("--resume needs --out, the folder of the audit to continue",
                          "pass --out results/audit-...")
    root = (out or Path("results") / f"audit-{topology}-{datetime.now():%Y%m%d-%H%M%S}"
            f"-{new_run_id()}").resolve()
    if root.exists() and any(root.iterdir()) and not resume:
        raise ConfigError(f"{root} already holds files",
                          "pass --resume to continue that audit, or another --out")
    (root / "scenarios").mkdir(parents=True, exist_ok=True)
    return root


def _measure(trial: Trial, guess: str, scenario: Path, folder: Path, resume: bool, lab: str,
             deadline: float) -> dict[str, Any]:
    """One trial's audit row: reused from a complete run when resuming, else run."""
    from harness.audit import verdict
    from harness.cli import _run
    from harness.results import recheck
    from harness.scenario.suite_runner import is_complete

    if resume and is_complete(folder, 1):
        return verdict.audit_row(trial, guess, recheck.stored_rows(folder)[0], str(folder))
    if folder.exists():  # an interrupted trial: its partial folder goes
        shutil.rmtree(folder)
    try:
        rows = _run(scenario, {}, 1, folder, lab, deadline, None)
    except typer.Exit as exc:
        return verdict.audit_row(trial, guess, None, str(folder),
                                 f"redlab run exited {exc.exit_code}")
    except RedLabError as exc:
        if isinstance(exc, ConfigError):
            raise
        return verdict.audit_row(trial, guess, None, str(folder), exc.problem)
    return verdict.audit_row(trial, guess, rows[0], str(folder))


def _show(rows: list[dict[str, Any]], took_s: float, root: Path, picture: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SPoF audit ({len(rows)} trials, {took_s / 60:.1f} min)")
    for column in ("units", "predicted", "measured", "gap ms", "capacity %", "verdict"):
        table.add_column(column)
    for r in rows:
        flag = "" if r["agrees"] in ("", True) else " (disagrees)"
        table.add_row(r["units"], r["predicted"], r["measured"] or r["note"],
                      _shown(r["gap_ms"]), _shown(r["capacity_pct"]), r["verdict"] + flag)
    Console().print(table)
    for r in rows:
        if r["note"] and r["verdict"] != "not measured":
            typer.echo(f"disagreement: {r['units']}: {r['note']}")
    typer.echo(f"wrote {root / AUDIT_CSV}" + (f" and {picture}" if picture else ""))


def _shown(value: float) -> str:
    return "" if math.isnan(value) else f"{value:g}"
