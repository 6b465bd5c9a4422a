"""One figure per trial, redrawn from its stored files: throughput, probe RTT and probe loss.

The left column shows the whole trial; the right column zooms on the outage (or on the
first failure when nothing was lost), where a few tens of milliseconds are visible at all.
Events from ``events.csv`` are vertical lines: failures red, repairs green, state changes
grey dashed.
"""

from __future__ import annotations

import json
import logging
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.errors import LabError
from harness.results.samples import LOSS_BIN_NS, Trial, load_trial, samples_frame
from harness.results.summary import FAILURES as STEP_FAILURES
from harness.results.summary import TRIAL_FILE, failover_outage, failure_call_ns

FAILURES = set(STEP_FAILURES)
REPAIRS = {"restore"}
SHORT_DETAIL = 16  # a state change's detail this short is written beside it unzoomed too
TITLE_WIDTH = 160
UNDRAWN = {"traffic_start"}  # it is t = 0 itself
ZOOM_MARGIN_S = 0.25

log = logging.getLogger(__name__)


def plot_trial(trial_dir: Path | str, gap: tuple[int, int] | None = None, *,
               trial: Trial | None = None, frame: pd.DataFrame | None = None) -> Path:
    """Write ``trial.png`` into the trial folder; ``gap`` (wall-clock ns) is shaded.

    Without ``gap``, the shading is the first failure's outage as the summary defines it
    (harness.results.summary.failover_outage).  ``trial`` and its ``frame``, when the
    caller has them, save parsing the trial's files again.
    """
    trial = load_trial(trial_dir) if trial is None else trial
    out = trial.path / "trial.png"
    drawing = out.with_name("trial.png.tmp")  # a plot cut short is no plot (pending())
    trial_figure(trial, gap, frame).savefig(drawing, dpi=110, format="png")
    drawing.replace(out)
    return out


def trial_figure(trial: Trial, gap: tuple[int, int] | None = None,
                 frame: pd.DataFrame | None = None) -> Figure:
    """The figure ``plot_trial`` saves; the outage span in each panel has gid ``outage``."""
    frame = samples_frame(trial) if frame is None else frame
    failure = next((e for e in trial.events if e["kind"] in FAILURES), None)
    derived = gap is None
    if gap is None and failure is not None and trial.packets:
        repair = next((e for e in trial.events if e["kind"] == "restore"), None)
        outage = failover_outage(trial.packets, int(failure["t_ns"]),
                                 failure_call_ns(_facts(trial.path)),
                                 int(repair["t_ns"]) if repair else None)
        if outage is not None:  # an open edge ends at the outage's own lost sends
            gap = (outage.begin_ns, outage.end_ns or outage.last_lost_sent_ns)
    gap_s = None if gap is None else ((gap[0] - trial.t0_ns) / 1e9, (gap[1] - trial.t0_ns) / 1e9)

    # no pyplot: an Agg canvas of our own renders without a display and keeps no global state
    focus = gap_s or ((_t_s(failure, trial),) * 2 if failure else None)
    ncols = 1 if focus is None else 2
    fig = Figure(figsize=(14 if ncols == 2 else 11, 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, ncols, sharex="col", sharey="row", squeeze=False,
                        gridspec_kw={"width_ratios": [3, 1][:ncols],
                                     "height_ratios": [3, 2, 2]})
    series = {name: part for name, part in frame.groupby("series")}
    spans = [(frame["t_s"].min(), frame["t_s"].max()) if len(frame) else (0.0, 1.0)]
    if focus is not None:
        spans.append((focus[0] - ZOOM_MARGIN_S, focus[1] + ZOOM_MARGIN_S))
    for col, span in enumerate(spans):
        _draw_series(axes[:, col], series, span)
        _draw_events(axes[:, col], trial, gap_s, span, zoomed=col == 1)
    axes[-1, 0].set_xlabel("time since traffic start (s)")
    if focus is not None:
        axes[-1, 1].set_xlim(*spans[1])
        axes[-1, 1].set_xlabel("time since traffic start (s), zoomed")
        axes[0, 1].set_title("around the outage" if gap_s else "around the first failure",
                             fontsize=10)
        for ax in axes[:, 1]:
            ax.set_ylabel("")
    _legend(fig, gap_s, derived, bool(trial.packets))
    fig.suptitle(_title(trial, gap, derived, failure), fontsize=11)
    return fig


def _facts(trial_dir: Path) -> dict[str, Any]:
    """trial.json ({} for a trial folder without one: an interrupted run's last)."""
    try:
        return json.loads((trial_dir / TRIAL_FILE).read_text())
    except (OSError, ValueError):
        return {}


def draw_pending(run_dir: Path) -> None:
    """Draw every measured trial of ``run_dir`` that has no plot yet."""
    from harness.results.deferred_plots import pending

    for trial_dir in pending([run_dir]):
        draw_trial(trial_dir)


def draw_trial(trial_dir: Path) -> None:
    """samples.csv and the plot of a trial just measured; a drawing problem is not a
    failed trial (everything it needs is on disk and `redlab plot` can redo it)."""
    from harness.results.samples import write_samples

    try:
        trial = load_trial(trial_dir)
        frame = samples_frame(trial)
        write_samples(trial_dir, frame)
        plot_trial(trial_dir, trial=trial, frame=frame)
    except Exception as exc:
        log.warning("could not draw %s: %s", trial_dir, exc)


def plot_run(run_dir: Path | str) -> list[Path]:
    """``trial.png`` for every trial folder of a run, in trial order.

    A trial that stopped before traffic started (an interrupted run's last) is skipped with
    a warning rather than costing the figures of the others.
    """
    written = []
    for trial_dir in sorted(Path(run_dir).glob("trial-*")):
        if not trial_dir.is_dir():
            continue
        try:
            written.append(plot_trial(trial_dir))
        except LabError as exc:
            log.warning("no figure for %s: %s", trial_dir.name, exc.problem)
    return written


def _draw_series(column: Sequence[Axes], series: dict[str, Any],
                 span: tuple[float, float]) -> None:
    tput, rtt, loss = column
    for ax, names in ((tput, ["throughput"]), (rtt, ["probe_rtt"]),
                      (loss, ["probe_loss_rate", "probe_lost"])):
        if not any(name in series for name in names):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                    color="grey", zorder=5, bbox={"fc": "white", "ec": "none"})
    # over more than ~500 bins a bin is about a pixel wide: draw it as a line or it vanishes
    thin = span[1] - span[0] > 500 * LOSS_BIN_NS / 1e9
    if "throughput" in series:
        s = series["throughput"]
        tput.step(s["t_s"], s["value"], where="mid", color="tab:blue", lw=1.2)
    tput.set_ylabel("received throughput\n(Mbit/s, per 0.1 s)")
    tput.set_ylim(bottom=0)
    if "probe_rtt" in series:
        s = series["probe_rtt"]
        rtt.plot(s["t_s"], s["value"], ".", ms=1.5 if thin else 2, color="tab:purple",
                 alpha=0.6)
        rtt.set_yscale("log")  # queueing behind iperf3 spans two decades
    rtt.set_ylabel("probe RTT (ms)")
    if "probe_loss_rate" in series:
        s = series["probe_loss_rate"]
        if thin:
            hit = s[s["value"] > 0]
            loss.vlines(hit["t_s"], 0, hit["value"] * 100, color="tab:red", lw=1.5, zorder=3)
        else:
            loss.fill_between(s["t_s"], s["value"] * 100, step="mid", color="tab:red",
                              alpha=0.5, lw=0)
    if "probe_lost" in series:
        s = series["probe_lost"]
        # one tick per lost packet under the bars: its exact send time
        loss.plot(s["t_s"], [-4] * len(s), "|", ms=6, color="darkred")
    loss.set_ylabel(f"probe loss\n(% per {LOSS_BIN_NS // 1_000_000} ms)")
    loss.set_ylim(-8, 105)
    for ax in column:
        ax.grid(True, alpha=0.3)


def _draw_events(column: Sequence[Axes], trial: Trial, gap_s: tuple[float, float] | None,
                 span: tuple[float, float], zoomed: bool) -> None:
    drawn = [e for e in trial.events if e["kind"] not in UNDRAWN]
    for ax in column:
        if gap_s is not None:
            ax.axvspan(*gap_s, color="orange", alpha=0.3, lw=0, gid="outage")
        for event in drawn:
            ax.axvline(_t_s(event, trial), **_event_style(event["kind"]))
    # labels in the top panel only, reading upwards beside their line; an event too close
    # to the previous label puts its own on the other side of its line
    top = column[0]
    previous = float("-inf")
    for event in drawn:
        t = _t_s(event, trial)
        crowded = t - previous < 0.02 * (span[1] - span[0])
        top.text(t, 0.98, f" {_event_label(event, zoomed)} ",
                 transform=top.get_xaxis_transform(), rotation=90, va="top",
                 ha="left" if crowded else "right", fontsize=8, clip_on=True,
                 color=_event_style(event["kind"])["color"])
        previous = float("-inf") if crowded else t


def _t_s(event: dict[str, str], trial: Trial) -> float:
    return (int(event["t_ns"]) - trial.t0_ns) / 1e9


def _event_style(kind: str) -> dict[str, Any]:
    if kind in FAILURES:
        return {"color": "red", "lw": 1.4}
    if kind in REPAIRS:
        return {"color": "green", "lw": 1.4}
    return {"color": "dimgrey", "lw": 1.0, "ls": "--"}


def _event_label(event: dict[str, str], zoomed: bool) -> str:
    label = f"{event['kind']} {event['node']}".strip()
    # a state change says what it changed to; the first failure's detail is in the title
    detail = str(event["detail"] or "")
    if event["kind"] not in FAILURES | REPAIRS and detail and (
            zoomed or len(detail) <= SHORT_DETAIL):
        label += f": {detail}"
    return label


def _legend(fig: Figure, gap_s: tuple[float, float] | None, derived: bool,
            probed: bool) -> None:
    handles: list[Any] = [Line2D([], [], **_event_style("cut"), label="failure"),
                          Line2D([], [], **_event_style("restore"), label="restore"),
                          Line2D([], [], **_event_style(""), label="state change")]
    if gap_s is not None:
        what = " (received probe to received probe)" if derived else ""
        handles.append(Patch(color="orange", alpha=0.3,
                             label=f"outage {(gap_s[1] - gap_s[0]) * 1e3:.1f} ms{what}"))
    if probed:
        handles.append(Line2D([], [], ls="", marker="|", color="darkred", label="lost probe"))
    # under the panels, in one row: inside one, it would hide part of a trace
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9,
               frameon=False)


def _title(trial: Trial, gap: tuple[int, int] | None, derived: bool,
           failure: dict[str, str] | None) -> str:
    meta = _run_metadata(trial.path)
    name = (meta.get("scenario") or {}).get("name") or trial.path.resolve().parent.name
    number = re.fullmatch(r"trial-0*(\d+)", trial.path.name)
    head = f"{name}, trial {number.group(1)}" if number else f"{name}, {trial.path.name}"
    params = " ".join(f"{k}={v}" for k, v in (meta.get("params") or {}).items())
    where = " ".join(str(meta[k]) for k in ("lab", "kernel") if meta.get(k))
    lines = [head, *textwrap.wrap("   ".join(x for x in (params, where) if x), TITLE_WIDTH)]
    if failure is not None:
        lines.append(f"{failure['kind']} at {_t_s(failure, trial):.3f} s: {failure['detail']}")
    if trial.packets:
        lost = sum(1 for p in trial.packets if p.received_ns is None)
        lines.append(f"{lost} of {len(trial.packets)} probes lost")
    if gap is None and derived and trial.packets:
        lines.append("no probe lost after the first failure" if failure
                     else "no failure in events.csv")
    if trial.notes:
        lines.append("missing: " + "; ".join(trial.notes))
    return "\n".join(line for line in lines if line)


def _run_metadata(trial_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((trial_dir.parent / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
