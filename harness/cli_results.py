"""The ``redlab`` commands that read stored results, not labs: plot, summarize, verdict,
compare and report. Registered on the app when harness.cli imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_common import _fail, _reported, _say, _setup, app
from harness.errors import ConfigError


@app.command()
def plot(run_dir: Annotated[Path, typer.Argument(help="a run folder written by redlab run")]
         ) -> None:
    """Redraw samples.csv and the per-trial plots of RUN_DIR from its stored files alone."""
    from harness.results.plot import plot_run
    from harness.results.samples import write_samples

    _setup(False)
    trials = sorted(run_dir.glob("trial-*"))
    if not trials:
        _fail(ConfigError(f"{run_dir} holds no trial-* folders", "give a run folder"))
    for trial in trials:
        write_samples(trial)
    for path in plot_run(run_dir):
        typer.echo(f"wrote {path}")


@app.command()
def summarize(folder: Annotated[Path, typer.Argument(help="a run folder, or a suite folder")]
              ) -> None:
    """Recompute summary.csv (and a suite's suite.csv), samples and plots from the stored
    files of FOLDER alone: after a fix to the analysis, no lab needs to run again."""
    from harness.results.recheck import runs_in
    from harness.results.summary import summarize_run
    from harness.scenario.suite import combine, medians

    _setup(False)
    with _reported():
        runs = runs_in(folder)
        if runs == [folder]:
            rows = summarize_run(folder)
            typer.echo(f"{len(rows)} trial(s) recomputed; {folder / 'summary.csv'}")
            return
        for run in runs:
            typer.echo(f"{run.name}: {len(summarize_run(run))} trial(s) recomputed")
        table = combine([(run.name, run) for run in runs], folder / "suite.csv")
        if not table.empty:
            typer.echo(medians(table).to_string())
        typer.echo(f"every row in {folder / 'suite.csv'}")


@app.command()
def verdict(
    folder: Annotated[Path, typer.Argument(help="a run folder, or a suite folder")],
    expect: Annotated[Path | None, typer.Option(help="YAML file whose expect: block is added (replacing the stored bounds on the same figures)")] = None,  # noqa: E501
) -> None:
    """Hold FOLDER's trials against their expectations again, from its stored files alone;
    writes nothing. Exit 1 when a trial fails one."""
    from harness.results import console, recheck, verdicts

    _setup(False)
    with _reported():
        extra = recheck.load_expect_file(expect) if expect else {}
        judged = [(run, *recheck.recheck(run, extra)) for run in recheck.runs_in(folder)]
    for run, rows, held in judged:
        typer.echo(f"{run.name}:")
        _say([*console.trial_lines(rows, held), console.run_line(rows)])
    raise typer.Exit(verdicts.exit_code([r["verdict"] for _, rows, _ in judged for r in rows]))


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="run or suite folder: before")],
    candidate: Annotated[Path, typer.Argument(help="run or suite folder: after")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="also write the rows as CSV")] = None,  # noqa: E501
    json_path: Annotated[Path | None, typer.Option("--json", help="also write it all as JSON")] = None,  # noqa: E501
    relative: Annotated[float, typer.Option(min=0, help="threshold, % of the baseline median")] = 20,  # noqa: E501
    absolute_ms: Annotated[float, typer.Option(min=0, help="threshold floor for ms figures (the probe's error if larger)")] = 10,  # noqa: E501
    calibration: Annotated[Path | None, typer.Option(help="folder of redlab calibrate: its error is the probe's")] = None,  # noqa: E501
    allow_different: Annotated[bool, typer.Option(help="compare runs of different scenarios")] = False,  # noqa: E501
) -> None:
    """Compare CANDIDATE's key figures with BASELINE's, run by run: regression,
    improvement, no change or inconclusive. Exit 1 on a regression."""
    from harness.results import compare_output
    from harness.results.compare import Thresholds, calibrated_error_ms, compare_folders

    with _reported():
        compare_output.check_outputs(csv_path, json_path)
        error = calibrated_error_ms(calibration) if calibration else None
        result = compare_folders(baseline, candidate, Thresholds(
            relative / 100, absolute_ms, error, f"calibrated in {calibration}"),
            allow_different)
    compare_output.show(result, csv_path, json_path)
    raise typer.Exit(1 if result.regression else 0)


@app.command()
def report(folder: Annotated[Path, typer.Argument(help="a run folder, or a suite folder")],
           out: Annotated[Path | None, typer.Option(help="HTML file (default: FOLDER/report.html)")] = None,  # noqa: E501
           calibration: Annotated[Path | None, typer.Option(help="folder of redlab calibrate: its error is the probe's")] = None) -> None:  # noqa: E501
    """Write one self-contained HTML page of FOLDER's verdicts, gaps, capacity and trials."""
    from harness.results.report import write_report

    with _reported():
        typer.echo(f"wrote {write_report(folder, out, calibration)}")
