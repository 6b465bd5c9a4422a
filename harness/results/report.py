"""``redlab report FOLDER``: one self-contained HTML page of a run or a suite, drawn from
its stored files alone (results/README.md): the verdicts, each run's measured gap
beside its predicted window (against every swept parameter), the gaps' distribution per
configuration, capacity under N against N-1, a thumbnail of every trial's plot linked to
the full one, and the environment the runs measured in.

Every figure is embedded as a base64 PNG, so the file can be mailed or attached to a
ticket alone; only the links to the full trial plots point beside it. A folder being
written (a suite still running) gives a report of what is finished so far; runs with no
finished trial are named, not hidden.
"""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.results import console
from harness.results.recheck import runs_in

if TYPE_CHECKING:
    from harness.results import report_figures

REPORT_NAME = "report.html"
GAP = "failover_gap_ms"
# Where the window of a trial's first failure is: the generic columns, then MC-LAG's own
# (folders written before the generic ones existed carry only those).
PREDICTION_PREFIXES = ("", "mclag_")
ENVIRONMENT = (("lab", "lab kind"), ("kernel", "kernel"), ("host", "host"),
               ("cpu_count", "CPU count"))


@dataclass(frozen=True)
class Window:
    """The prediction a trial's row carries: the figure it tests, its window (None
    without one) and its basis, or the reason there is none."""

    figure: str
    band: tuple[float, float] | None
    within: bool | None
    basis: str


@dataclass
class Run:
    name: str
    path: Path
    meta: dict[str, Any]
    rows: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        scenario = self.meta.get("scenario")
        return str((scenario or {}).get("name", "") if isinstance(scenario, dict)
                   else scenario or "")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.meta.get("params") or {})

    def values(self, figure: str) -> list[float]:
        if figure not in self.rows.columns:
            return []
        return [float(v) for v in pd.to_numeric(self.rows[figure], errors="coerce")]

    def windows(self) -> list[Window]:
        return [window(row) for row in self.rows.to_dict("records")]


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(
        value)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flag(value: Any) -> bool | None:
    """within_prediction as stored: True, False, or empty (read back as NaN or text)."""
    return {"true": True, "false": False}.get(_text(value).lower())


def window(row: dict[str, Any]) -> Window:
    reasons = []
    for prefix in PREDICTION_PREFIXES:
        figure = _text(row.get(f"{prefix}predicted_figure"))
        low, high = (_number(row.get(f"{prefix}predicted_{e}_ms")) for e in ("min", "max"))
        basis = _text(row.get(f"{prefix}prediction"))
        if figure and not (math.isnan(low) or math.isnan(high)):
            return Window(figure, (low, high), _flag(row.get(f"{prefix}within_prediction")),
                          basis)
        reasons.append(basis)
    reason = next((r for r in reasons if r), "" if "prediction" in row else
                  "no prediction columns: this run was written before they existed")
    return Window(GAP, None, None, reason or "no prediction")


# -- loading ------------------------------------------------------------------------------

def load_runs(folder: Path) -> list[Run]:
    """The runs of a run folder or a suite folder.  A run that cannot be read, or has no
    finished trial yet, is kept with its problem said; no run at all is bad input."""
    runs = [_load_run(path) for path in runs_in(folder)]
    if not any(len(run.rows) for run in runs):
        said = "; ".join(f"{run.name}: {', '.join(run.problems)}" for run in runs)
        raise ConfigError(f"{folder} holds no finished trial to report ({said})",
                          "report a folder once a run has finished a trial")
    return runs


def _load_run(path: Path) -> Run:
    problems = []
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        meta, problems = {}, [f"metadata.json unreadable ({exc})"]
    if not isinstance(meta, dict):
        meta, problems = {}, ["metadata.json holds no mapping"]
    rows = pd.DataFrame()
    try:
        rows = pd.read_csv(path / "summary.csv")
    except FileNotFoundError:
        problems.append("no summary.csv: no trial finished")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problems.append(f"summary.csv unreadable ({exc}): `redlab summarize {path}`")
    if rows.empty and not problems:
        problems.append("no trial in summary.csv")
    status = meta.get("status")
    if status and status != "complete":
        problems.append(f"run {status}" + (f": {meta['error']}" if meta.get("error") else ""))
    return Run(path.name, path, meta, rows, problems)


# -- what the page says ------------------------------------------------------------------

def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def swept(runs: list[Run]) -> list[tuple[str, str, list[Run]]]:
    """(scenario, parameter, its runs in the parameter's order) for every parameter in
    which runs of one scenario differ: a suite's sweep (harness/scenario/suite.py)."""
    found = []
    by_scenario: dict[str, list[Run]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, []).append(run)
    for scenario, group in by_scenario.items():
        for name in dict.fromkeys(k for run in group for k in run.params):
            if len({_key(run.params.get(name)) for run in group}) > 1:
                found.append((scenario, name, sorted(
                    group, key=lambda r, n=name: _order(r.params.get(n)))))
    return found


def _order(value: Any) -> tuple[int, float, str]:
    number = _number(value)
    return (0, number, "") if not math.isnan(number) else (1, 0.0, _text(value))


def position(run: Run, label: str) -> report_figures.GapPosition:
    """The run's trials of the figure its prediction tests, and the window (the union,
    should its trials' windows differ)."""
    windows = run.windows()
    figure = Counter(w.figure for w in windows).most_common(1)[0][0] if windows else GAP
    bands = [w.band for w in windows if w.band is not None and w.figure == figure]
    band = (min(b[0] for b in bands), max(b[1] for b in bands)) if bands else None
    return _figures().GapPosition(label, figure, tuple(run.values(figure)), band)


def gap_plots(runs: list[Run]) -> list[tuple[str, str]]:
    """(title, data URI): one per swept parameter, and one of the runs that no sweep
    covers, each run's position labelled by what sets it apart."""
    plots, covered = [], set()
    sweeps = swept([run for run in runs if len(run.rows)])
    for scenario, name, group in sweeps:
        # the scenario's other swept parameters tell apart runs at one value of this one
        shown = [name, *(n for s, n, _ in sweeps if s == scenario and n != name)]
        positions = [position(run, " ".join(f"{n}={run.params.get(n)}" for n in shown))
                     for run in group]
        plots.append((f"against {name} ({scenario})",
                      _uri(_figures().png(_figures().gap_figure(positions, name)))))
        covered |= {run.name for run in group}
    rest = [run for run in runs if run.name not in covered and len(run.rows)]
    if rest:
        plots.append(("per run" if len(rest) > 1 else f"of {label(rest[0], runs)}",
                      _uri(_figures().png(_figures().gap_figure(
                          [position(r, label(r, runs)) for r in rest], "run")))))
    return plots


def label(run: Run, runs: list[Run]) -> str:
    """A suite's run by its folder name (number, scenario, parameters); a lone run by its
    scenario, which its folder name may not say."""
    return run.name if len(runs) > 1 or not run.scenario else run.scenario


def verdict_rows(runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        for record, win in zip(run.rows.to_dict("records"), run.windows(), strict=True):
            rows.append({"run": label(run, runs), "trial": _text(record.get("trial")),
                         "verdict": _text(record.get("verdict")),
                         "failed": _text(record.get("verdict_failed")),
                         "figure": win.figure, "measured": _number(record.get(win.figure)),
                         "band": win.band, "within": win.within})
    return rows


def run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """A row per run: its verdict, what sets it apart from the others, its prediction's
    basis (or why there is none) and its problems (failed, interrupted, no trial)."""
    differing = [k for k in dict.fromkeys(k for run in runs for k in run.params)
                 if len({_key(run.params.get(k)) for run in runs}) > 1]
    rows = []
    for run in runs:
        said, verdict = console.run_line(
            [{"verdict": _text(r.get("verdict"))} for r in run.rows.to_dict("records")])
        expected = bool((run.meta.get("scenario") or {}).get("expect"))
        if not len(run.rows):
            said = "no finished trial: no verdict"
        elif not verdict and expected and "verdict" not in run.rows.columns:
            said = f"expectations stored but not judged: `redlab summarize {run.path}`"
        bases = dict.fromkeys(w.basis for w in run.windows() if w.basis)
        rows.append({"run": label(run, runs), "scenario": run.scenario,
                     "differ": _shown(run, differing), "params": _shown(run, run.params),
                     "trials": len(run.rows), "verdict": verdict, "said": said,
                     "problems": run.problems, "prediction": list(bases)})
    return rows


def _shown(run: Run, names: Any) -> str:
    """``names`` the run has, with its values (another scenario's parameters are not
    what sets this run apart)."""
    return ", ".join(f"{k}={run.params[k]}" for k in names if k in run.params)


def trial_cards(runs: list[Run], out: Path) -> list[dict[str, Any]]:
    """Every trial folder of every run: its thumbnail, and the full plot's address
    relative to the report, so the link survives moving the folder with its report."""
    cards = []
    for run in runs:
        for trial in sorted(p for p in run.path.glob("trial-*") if p.is_dir()):
            plot = trial / "trial.png"
            card = {"run": label(run, runs), "trial": trial.name, "thumbnail": None,
                    "href": None, "fix": f"redlab plot {run.path}"}
            if plot.is_file():
                card["href"] = urllib.parse.quote(
                    Path(os.path.relpath(plot, out.parent)).as_posix())
                card["thumbnail"] = _uri(_figures().thumbnail(plot))
            cards.append(card)
    return cards


def environment(runs: list[Run], calibration: Path | None) -> list[tuple[str, str]]:
    """(what, value) lines; where the runs differ, each value with the runs it holds for."""
    lines = []
    keys = [(f"versions.{tool}", tool) for tool in dict.fromkeys(
        t for run in runs for t in (run.meta.get("versions") or {}))]
    for key, name in (*ENVIRONMENT, *keys):
        seen: dict[str, list[str]] = {}
        for run in runs:
            meta = (run.meta.get("versions") or {}) if key.startswith("versions.") else run.meta
            value = meta.get(key.removeprefix("versions."))
            if value is not None:
                seen.setdefault(_text(value), []).append(label(run, runs))
        if len(seen) == 1:
            lines.append((name, next(iter(seen))))
        elif seen:
            lines.append((name, "; ".join(f"{v} ({', '.join(r)})" for v, r in seen.items())))
    lines.append(("probe error", _probe_error(runs, calibration)))
    return lines


def _probe_error(runs: list[Run], calibration: Path | None) -> str:
    if calibration is not None:
        from harness.results.compare import calibrated_error_ms

        return (f"{calibrated_error_ms(calibration):.3g} ms, the largest error of the"
                f" calibration in {calibration}")
    intervals = [v for run in runs for v in run.values("probe_interval_ms")]
    if not any(math.isfinite(v) for v in intervals):
        return "not calibrated (--calibration FOLDER), and no probe interval recorded"
    return (f"not calibrated (--calibration FOLDER gives it): the probe interval, median"
            f" {_median(intervals):.3g} ms, stands for it")


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- the page -----------------------------------------------------------------------------

def _ms(value: Any) -> str:
    number = _number(value)
    return "-" if math.isnan(number) else f"{number:.1f}"


def render(folder: Path, runs: list[Run], out: Path, calibration: Path | None = None) -> str:
    """The report's HTML (``out``: where it will be, for its links); nothing written."""
    env = environment(runs, calibration)  # the calibration is checked before any drawing
    measured = [r for r in runs if len(r.rows)]
    page = jinja2.Environment(loader=jinja2.PackageLoader("harness.results", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)
    page.filters["ms"] = _ms
    trials = verdict_rows(runs)
    said, overall = console.run_line(trials)  # as `redlab run` and `suite` say it
    return page.get_template("report.html.j2").render(
        folder=folder, created=f"{datetime.now():%Y-%m-%d %H:%M}", overall=overall,
        overall_said=said, runs=run_rows(runs), trials=trials,
        gap_plots=gap_plots(runs),
        cdf=_uri(_figures().png(_figures().cdf_figure(
            {label(r, runs): r.values(GAP) for r in measured}))),
        capacity=_capacity(measured, runs), cards=trial_cards(runs, out), environment=env,
        audit=_audit(folder))


AUDIT_COLUMNS = ("units", "predicted", "measured", "gap_ms", "capacity_pct", "verdict",
                 "note")


def _audit(folder: Path) -> dict[str, Any] | None:
    """An audit folder's table (audit.csv) and drawing (audit.png), as redlab audit
    wrote them; None for a run or a suite."""
    table = folder / "audit.csv"
    if not table.is_file():
        return None
    frame = pd.read_csv(table, keep_default_na=False)
    picture = folder / "audit.png"
    return {"rows": [{c: _text(r.get(c, "")) for c in AUDIT_COLUMNS}
                     for r in frame.to_dict("records")],
            "columns": AUDIT_COLUMNS,
            "picture": _uri(picture.read_bytes()) if picture.is_file() else None}


def _capacity(measured: list[Run], runs: list[Run]) -> str | None:
    shown = [_figures().Capacity(label(r, runs), tuple(r.values("throughput_before_mbps")),
                              tuple(r.values("throughput_during_mbps")),
                              _median(r.values("capacity_retained_pct")))
             for r in measured]
    if not any(math.isfinite(v) for c in shown for v in (*c.before, *c.during)):
        return None
    return _uri(_figures().png(_figures().capacity_figure(shown)))


def write_report(folder: Path, out: Path | None = None,
                 calibration: Path | None = None) -> Path:
    """Write FOLDER's report (default FOLDER/report.html) and return its path; on bad
    input a ConfigError, and nothing is written.  What a suite calls when it ends."""
    runs = load_runs(folder)  # bad input is told before the figures' libraries load
    from harness.results.compare_output import check_outputs

    out = out or folder / REPORT_NAME
    check_outputs(out)
    html = render(folder, runs, out, calibration)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)  # never a half-written report in place of a good one
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _figures() -> Any:
    """The figure drawing module, imported when a report is drawn: matplotlib takes
    most of a second to load, which bad input should not wait for."""
    from harness.results import report_figures

    return report_figures
