"""The ``redlab`` command: run scenarios, clean up after crashed runs, show the lab's kernel."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness import timeouts
from harness.cli_common import _reported, _say, _setup, app
from harness.errors import ConfigError
from harness.journal import Journal, clean_stale
from harness.naming import new_run_id

if TYPE_CHECKING:
    from harness.scenario.suite_runner import PlannedRun

log = logging.getLogger("redlab")


LabOption = Annotated[str, typer.Option(help="where the lab runs: auto, native or uml")]
DeadlineOption = Annotated[float, typer.Option(help="seconds before a UML run is killed")]
RunIdOption = Annotated[str | None, typer.Option(hidden=True)]  # set when re-run inside UML
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v")]


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r} is not key=value", "write e.g. --param miimon=100")
        params[key.strip()] = value.strip()
    return params


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario file in scenarios/")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="override a parameter: key=value")] = [],  # noqa: B006, E501
    repeat: Annotated[int, typer.Option(min=1, help="trials to run")] = 1,
    out: Annotated[Path | None, typer.Option(help="run folder (default: results/<scenario>-<time>-<id>)")] = None,  # noqa: E501
    lab: LabOption = "auto",
    deadline: DeadlineOption = timeouts.UML_RUN_DEFAULT,
    run_id: RunIdOption = None,
    verbose: VerboseOption = False,
    expect_json: Annotated[str | None, typer.Option(hidden=True)] = None,  # a suite run's
    keep_failed_lab: Annotated[bool, typer.Option(help="a failed trial's lab stays up for inspection until Enter (native labs)")] = False,  # noqa: E501
) -> None:
    """Run SCENARIO's trials and write summary.csv, events and raw tool output; exit 1
    when a trial fails an expectation of the scenario's expect: block."""
    from harness.results import verdicts

    _setup(verbose)
    with _reported():
        extra = verdicts.parse(json.loads(expect_json), "--expect-json", "") if expect_json else {}
        rows = _run(scenario, parse_params(param), repeat, out, lab, deadline, run_id, extra,
                    keep_failed_lab)
    raise typer.Exit(verdicts.exit_code([row.get("verdict", "") for row in rows]))


def _run(scenario_path: Path, overrides: dict[str, str], repeat: int, out: Path | None,
         lab: str, deadline: float, run_id: str | None,
         expect: dict[str, Any] | None = None, keep_failed: bool = False
         ) -> list[dict[str, Any]]:
    """The run's summary rows, verdicts included; measured before they are judged, so a
    failed expectation loses nothing (the caller turns it into exit 1)."""
    from harness.lab import LABS, choose_lab
    from harness.results import console, recheck, verdicts
    from harness.scenario.resolve import boot_extras, lab_needs, resolve

    # Everything is validated before anything is created.
    if lab not in LABS:
        raise ConfigError(f"--lab {lab!r} is not one of {', '.join(LABS)}", "pick one of them")
    scenario, topology, params = resolve(scenario_path, overrides, expect)
    needs = lab_needs(scenario, topology)
    inside_uml = os.environ.get("REDLAB_LAB") == "uml"
    where = "native" if inside_uml else choose_lab(lab, needs)
    if keep_failed and where == "uml":
        raise ConfigError(
            "--keep-failed-lab keeps the lab up while you enter its namespaces, and this run"
            f" needs User-mode Linux (it requires {', '.join(needs) or 'it'}), whose guest"
            " cannot be entered",
            "run it natively, on a kernel with the modules (the Vagrant VM: vagrant up &&"
            " vagrant ssh); without the option a failed trial's folder holds lab.json,"
            " events.csv and every daemon's log")
    run_id = run_id or new_run_id()
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("results") / f"{scenario.name}-{stamp}-{run_id}"
    out = out.resolve()
    if where == "uml":
        # The guest sees the host's files, but its /tmp, /run and /var/tmp are its own:
        # a scenario written there (a user's, a test's) would not exist inside. It goes
        # with the run instead, a copy in the run folder the guest writes to.
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scenario_path, out / "scenario.yaml")
        args = ["run", str(out / "scenario.yaml"), "--repeat", str(repeat)]
        for key, value in overrides.items():
            args += ["--param", f"{key}={value}"]
        if expect:
            args += ["--expect-json", json.dumps(verdicts.to_doc(expect))]
        code = _in_uml(args, out, run_id, deadline, needs, boot_extras(scenario),
                       check=False)  # the guest printed its verdicts; exit 1 may be one
        if code and not recheck.failed_verdict(out, code):
            raise typer.Exit(code)
        return recheck.stored_rows(out)
    # only now: the runner brings pandas and matplotlib (0.7 s), bad input needs neither
    from harness.scenario.runner import RunRequest, run_scenario

    started = time.monotonic()
    store = run_scenario(RunRequest(scenario, scenario_path.resolve(), topology, params,
                                    repeat, out, run_id, keep_failed))
    log.info("%d trial(s) in %.1f s; results in %s", len(store.rows),
             time.monotonic() - started, out)
    for row in store.rows:
        log.info("%s", console.trial_figures(row))
    _say([*console.trial_lines(store.rows, scenario.expect), console.run_line(store.rows)]
         if scenario.expect else [])
    return store.rows


def _in_uml(args: list[str], out: Path, run_id: str, deadline: float,
            requires: list[str], extra_modules: tuple[str, ...] = (), check: bool = True) -> int:
    """Run ``redlab <args>`` natively inside a User-mode Linux guest, results into ``out``;
    its exit code is returned, or passed on as ours (``check``) when it is not 0.

    ``extra_modules`` are loaded at boot too: a module the kernel would load on first use
    costs hundreds of ms inside UML, which must not land inside a measured failure."""
    from harness.lab import boot_modules, shared_guest
    from harness.lab.uml import GuestSpec, run_in_uml
    from harness.results.deferred_plots import BackgroundPlots
    from harness.results.plot import draw_pending

    argv = [sys.executable, "-m", "harness", *args, "--lab", "native", "--out", str(out),
            "--run-id", run_id]
    modules = boot_modules(requires, extra_modules)
    start_ovs = "openvswitch" in requires
    out.mkdir(parents=True, exist_ok=True)
    from harness.lab.clock import CLOCK_ENV
    from harness.lab.clock import facts as clock_facts
    from harness.results.store import DEFER_PLOTS_ENV, HOST_ENV

    # plots: drawn here as the guest lists its trials; the host's name and clock, which the
    # guest's are not
    env = {**shared_guest.GUEST_ENV, DEFER_PLOTS_ENV: "1", HOST_ENV: platform.node(),
           CLOCK_ENV: json.dumps(clock_facts())}
    deferred = bool(os.environ.get(DEFER_PLOTS_ENV))  # a suite draws its runs' at its end
    with BackgroundPlots() as plots, Journal(f"{run_id}-host") as journal, (
            contextlib.nullcontext() if deferred else plots.following(out)):
        journal.record("run_folder", path=str(out))
        # A guest already booted for a whole test session or suite, if there is one.
        shared = shared_guest.serving(modules, start_ovs, out, Path.cwd(), sys.executable)
        if shared is not None:
            log.info("running redlab %s in the shared User-mode Linux guest %s", args[0],
                     shared.spool)
            result = shared.submit(argv, Path.cwd(), env, deadline, journal)
        else:
            log.info("booting User-mode Linux for redlab %s (modules: %s)", args[0],
                     ", ".join(requires) or "none")
            result = run_in_uml(GuestSpec(argv=argv, cwd=Path.cwd(), writable=[out],
                                          env=env, modules=modules,
                                          start_ovs=start_ovs),
                                deadline_s=deadline, journal=journal)
    log.info("UML: boot %.1f s, run %.1f s, exit %d", result.boot_s, result.run_s,
             result.returncode)
    if not deferred:  # what was measured is drawn, whatever stopped the run
        draw_pending(out)
    if check and result.returncode != 0:
        raise typer.Exit(result.returncode)
    return result.returncode


@app.command()
def suite(
    suite_file: Annotated[Path, typer.Argument(help="suite file in scenarios/suites/")],
    out: Annotated[Path | None, typer.Option(help="folder for the suite's runs (default: results/<suite>-<time>)")] = None,  # noqa: E501
    shuffle: Annotated[bool, typer.Option(help="run the runs in a random order (seed in suite.json): drift is not taken for a parameter's effect")] = False,  # noqa: E501
    seed: Annotated[int | None, typer.Option(help="with --shuffle: the order of this seed")] = None,  # noqa: E501
    resume: Annotated[bool, typer.Option(help="continue the suite in --out: complete runs are kept, the others run again")] = False,  # noqa: E501
    fail_fast: Annotated[bool, typer.Option(help="stop at the first run that fails")] = False,
    lab: LabOption = "auto",
    deadline: DeadlineOption = timeouts.UML_RUN_DEFAULT,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the runs, their trials and how long they should take here, and stop")] = False,  # noqa: E501
    cluster: Annotated[str | None, typer.Option(help="run the trials on Dask workers, shuffled: ssh://host1,host2, tcp://scheduler:8786 or local://N")] = None,  # noqa: E501
    verbose: VerboseOption = False,
) -> None:
    """Run every scenario of a suite (sweeps expanded), each into its own folder under OUT;
    all rows in OUT/suite.csv, a table of medians and verdicts at the end; a failed run
    does not stop the others. Exit 1 when a run failed or failed an expectation."""
    from harness.lab import LABS
    from harness.results import suite_output
    from harness.scenario import estimate, suite_runner

    _setup(verbose)
    with _reported():
        if lab not in LABS:  # each run checks it too, but a suite goes on after a failed run
            raise ConfigError(f"--lab {lab!r} is not one of {', '.join(LABS)}", "pick one")
        spec = None
        if cluster is not None:
            from harness.cluster import connect

            spec = connect.parse(cluster)
        plan = suite_runner.prepare(suite_file, suite_runner.Options(out, shuffle, seed, resume))
        runner = suite_runner.SuiteRunner(plan, _suite_run(lab, deadline), fail_fast)
        todo = [run for run in plan.order if runner.outcomes[run.label].status != "kept"]
        costs = estimate.for_runs(todo, lab, [plan.root, Path("results")])
        typer.echo(estimate.describe(plan.name, costs, spec.describe() if spec else ""),
                   err=True)
        if dry_run:
            raise typer.Exit(0)
        with contextlib.ExitStack() as stack:
            if spec is not None:  # every worker checked before any trial starts
                from harness.cluster import gather

                client = stack.enter_context(connect.client_for(spec))
                runner = gather.ClusterSuiteRunner(plan, client, spec, lab, deadline,
                                                   fail_fast)
            else:  # one guest for the runs that need one, not one boot each
                from harness.results.deferred_plots import DeferredPlots
                from harness.scenario import suite_guest

                plots = stack.enter_context(DeferredPlots([plan.root / r.label
                                                           for r in todo]))
                stack.enter_context(suite_guest.shared_for(
                    [(r.scenario, r.params, r.expect) for r in todo], lab, plan.root))
                stack.enter_context(plots.deferring())
            try:
                with suite_output.SuiteProgress(runner) as progress:
                    runner.run(progress)
            finally:  # what was measured is shown, whatever stopped the rest
                suite_output.show(runner)
        if any((plan.root / run.label / "summary.csv").is_file() for run in plan.runs):
            from harness.results.report import write_report

            typer.echo(f"report: {write_report(plan.root)}")
    raise typer.Exit(runner.exit_code())


def _suite_run(lab: str, deadline: float) -> Callable[[PlannedRun, Path], list[dict[str, Any]]]:
    """One run of a suite, as redlab run runs it; an exit code that is not a verdict is a
    failed run, which the suite records before it goes on."""
    from harness.scenario.suite_runner import RunFailed

    def run_one(run: PlannedRun, folder: Path) -> list[dict[str, Any]]:
        try:
            return _run(run.scenario, run.params, run.repeat, folder, lab, deadline, None,
                        run.expect)
        except typer.Exit as exc:
            raise RunFailed(f"redlab run exited {exc.exit_code}") from None
    return run_one


@app.command()
def calibrate(
    lengths: Annotated[str, typer.Option(help="outage lengths to inject, ms, comma-separated")] = "20,100,500,2000",  # noqa: E501
    repeat: Annotated[int, typer.Option(min=1, help="injections of each length")] = 3,
    interval_ms: Annotated[float, typer.Option(min=0.1, max=100, help="probe send interval, ms")] = 1.0,  # noqa: E501
    probe: Annotated[str, typer.Option(help="gap probe: redlab-probe or irtt")] = "redlab-probe",
    out: Annotated[Path | None, typer.Option(help="folder (default: results/calibration-<time>-<id>)")] = None,  # noqa: E501
    lab: LabOption = "auto",
    deadline: DeadlineOption = timeouts.UML_RUN_DEFAULT,
    run_id: RunIdOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Inject outages of known length into an unprotected path; write calibration.csv."""
    _setup(verbose)
    with _reported():
        _calibrate(lengths, repeat, interval_ms, probe, out, lab, deadline, run_id)


def _calibrate(lengths: str, repeat: int, interval_ms: float, probe: str, out: Path | None,
               lab: str, deadline: float, run_id: str | None) -> None:
    from harness.lab import LABS, choose_lab
    from harness.measure.calibrate import CalibrationPlan, run_calibration

    try:
        plan = CalibrationPlan(tuple(float(x) for x in lengths.split(",")), repeat,
                               interval_ms, probe=probe)
    except ValueError:
        raise ConfigError(f"--lengths {lengths!r} is not a list of numbers",
                          "write e.g. --lengths 20,100,500") from None
    if probe not in ("redlab-probe", "irtt"):
        raise ConfigError(f"--probe {probe!r} is not redlab-probe or irtt", "pick one")
    if lab not in LABS:
        raise ConfigError(f"--lab {lab!r} is not one of {', '.join(LABS)}", "pick one of them")
    run_id = run_id or new_run_id()
    out = (out or Path("results") / f"calibration-{datetime.now():%Y%m%d-%H%M%S}-{run_id}")
    out = out.resolve()
    inside_uml = os.environ.get("REDLAB_LAB") == "uml"
    if not inside_uml and choose_lab(lab, []) == "uml":
        _in_uml(["calibrate", "--lengths", lengths, "--repeat", str(repeat),
                 "--interval-ms", str(interval_ms), "--probe", probe], out, run_id, deadline,
                [])
        return
    log.info("calibrating: %d outages, about %.0f s", len(plan.order()), plan.duration_s())
    frame = run_calibration(plan, out, run_id)
    typer.echo(frame.groupby("requested_ms").agg(
        injected_ms=("injected_ms", "median"), measured_ms=("measured_ms", "median"),
        median_abs_error_ms=("error_ms", lambda e: e.abs().median()),
        max_abs_error_ms=("error_ms", lambda e: e.abs().max()),
        # the injected length is known only to within its netlink calls
        reference_uncertainty_ms=("reference_uncertainty_ms", "median"),
        share_within_bound=("within_bound", "mean"),
        max_sender_late_ms=("sender_late_ms", "max"),
        iperf3_estimate_ms=("iperf3_estimate_ms", "median"),
    ).to_string())
    typer.echo(f"probe {frame['probe_rate_pps'].iloc[0]:g} packets/s, bound"
               f" {frame['bound_ms'].iloc[0]:g} ms; rows in {out / 'calibration.csv'}")


@app.command()
def clean() -> None:
    """Remove what crashed or killed RedLab runs left behind, and nothing else."""
    _setup(False)
    removed = clean_stale()
    for item in removed:
        typer.echo(f"removed {item}")
    typer.echo(f"{len(removed)} object(s) removed" if removed else "nothing to clean")


@app.command()
def probe() -> None:
    """Show which lab features this kernel has, and whether User-mode Linux is available."""
    from harness.lab import capabilities
    from harness.lab.uml import uml_available

    for feature in capabilities.FEATURES:
        typer.echo(f"{feature:12} {'yes' if capabilities.probe(feature) else 'no'}")
    typer.echo(f"{'uml':12} {'yes' if uml_available() else 'no'}")


# registered on app: the commands that read stored results (plot, summarize, verdict,
# compare, report), and redlab audit
from harness import cli_audit, cli_results  # noqa: E402,F401


def main() -> None:
    app()
