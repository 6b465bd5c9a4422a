"""The report's figures (harness/results/report.py), each a Figure to embed as PNG bytes:
measured gaps beside their predicted windows, the gaps' distribution per configuration,
capacity under N against N-1, and a trial plot's thumbnail.

Drawn on an Agg canvas of our own, as harness/results/plot.py does: no pyplot, so no
display and no global figure state between reports.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

DPI = 100
LABEL_WIDTH = 18      # characters per line of a run's label under its position
THUMB_WIDTH_PX = 420  # a trial plot is 1540 px wide: a quarter of it still shows its shape
WIDE_RANGE = 100      # largest/smallest positive value beyond which a ms axis goes log
INSIDE, OUTSIDE, UNPREDICTED = "tab:blue", "tab:red", "dimgrey"


@dataclass(frozen=True)
class GapPosition:
    """One run at one place on the x axis: its trials' values of ``figure`` and the
    window its prediction gives that figure (None where nothing predicts)."""

    label: str
    figure: str
    values: tuple[float, ...]
    band: tuple[float, float] | None


@dataclass(frozen=True)
class Capacity:
    label: str
    before: tuple[float, ...]   # throughput_before_mbps per trial: N members
    during: tuple[float, ...]   # throughput_during_mbps: N-1
    retained_pct: float         # median capacity_retained_pct


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _wrapped(label: str) -> str:
    return "\n".join(textwrap.wrap(label, LABEL_WIDTH)) or label


def _symlog_threshold(values: Sequence[float]) -> float | None:
    """None for a linear axis; the linear part of a symlog one when the values span more
    than two decades (miimon 10 beside a 90 s LACP timeout): symlog still shows a 0."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if positive and max(positive) / min(positive) > WIDE_RANGE:
        return max(1.0, min(positive))
    return None


def _colours(pos: GapPosition) -> list[str]:
    """Per measured trial: inside the window, outside it, or nothing predicted."""
    return [UNPREDICTED if pos.band is None else
            INSIDE if pos.band[0] <= v <= pos.band[1] else OUTSIDE
            for v in pos.values if math.isfinite(v)]


def gap_figure(positions: Sequence[GapPosition], xlabel: str) -> Figure:
    """Each trial a dot at its run's position, blue inside the run's predicted window
    (shaded) and red outside it, grey where nothing predicts; the median a bar."""
    fig = _figure(max(5.0, 1.1 * len(positions) + 2), 4.2)
    ax = fig.add_subplot()
    shown: list[float] = []
    for x, pos in enumerate(positions):
        if pos.band is not None:
            low, high = pos.band
            ax.fill_between([x - 0.35, x + 0.35], low, high, color="tab:green", alpha=0.18,
                            lw=0, gid="predicted-band")
            shown += [low, high]
        values = [v for v in pos.values if math.isfinite(v)]
        if not values:
            ax.text(x, 0, "not measured", ha="center", va="bottom", color="grey", fontsize=8)
            continue
        # trials side by side across the position, in trial order: nothing random in a report
        offsets = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else [0.0]
        ax.scatter([x + o for o in offsets], values, c=_colours(pos), s=22, zorder=3)
        ax.hlines(float(np.median(values)), x - 0.3, x + 0.3, color="black", lw=1.2, zorder=2)
        shown += values
    ax.set_xticks(range(len(positions)),
                  [_wrapped(p.label) + ("" if p.figure == "failover_gap_ms" else
                                        f"\n({p.figure})") for p in positions], fontsize=8)
    ax.set_xlim(-0.6, len(positions) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    if (threshold := _symlog_threshold(shown)) is not None:
        ax.set_yscale("symlog", linthresh=threshold)
    ax.grid(True, axis="y", alpha=0.3)
    used = {c for pos in positions if pos.values for c in _colours(pos)}
    fig.legend(handles=[*([Patch(color="tab:green", alpha=0.18, label="predicted window")]
                          if any(p.band for p in positions) else []),
                        *(Line2D([], [], ls="", marker="o", color=colour, label=text)
                          for colour, text in ((INSIDE, "trial, inside"),
                                               (OUTSIDE, "trial, outside"),
                                               (UNPREDICTED, "trial, no prediction"))
                          if colour in used),
                        Line2D([], [], color="black", label="median")],
               fontsize=8, loc="outside right upper", frameon=False)
    return fig


def cdf_figure(series: dict[str, Sequence[float]]) -> Figure:
    """The empirical distribution of each configuration's failover gaps: where its
    trials lie, not just their median (phase-sampled gaps spread over a whole period)."""
    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    everything: list[float] = []
    for label, values in series.items():
        ordered = np.sort([v for v in values if math.isfinite(v)])
        if not len(ordered):
            continue
        share = np.arange(1, len(ordered) + 1) / len(ordered)
        # from 0 below the first trial: a run of one trial is a visible step, not a dot
        ax.step(np.concatenate([[ordered[0]], ordered]), np.concatenate([[0.0], share]),
                where="post", lw=1.6, marker=".", label=f"{label} ({len(ordered)})")
        everything += list(ordered)
    ax.set_xlabel("failover gap (ms)")
    ax.set_ylabel("share of trials at or below")
    ax.set_ylim(0, 1.05)
    if (threshold := _symlog_threshold(everything)) is not None:
        ax.set_xscale("symlog", linthresh=threshold)
    ax.grid(True, alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper", frameon=False,
              title="configuration (trials)", title_fontsize=8)
    return fig


def capacity_figure(runs: Sequence[Capacity]) -> Figure:
    """Per run, the received rate with every member up (N) beside the rate while one was
    failed (N-1): bars at the medians, a dot per trial, the retained share above."""
    fig = _figure(max(5.0, 1.1 * len(runs) + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.38
    for x, run in enumerate(runs):
        for shift, values, colour in ((-width / 2, run.before, "tab:blue"),
                                      (width / 2, run.during, "tab:orange")):
            finite = [v for v in values if math.isfinite(v)]
            if not finite:
                continue
            ax.bar(x + shift, float(np.median(finite)), width, color=colour, alpha=0.6)
            ax.scatter([x + shift] * len(finite), finite, color=colour, s=12, zorder=3)
        if math.isfinite(run.retained_pct):
            top = max([v for v in (*run.before, *run.during) if math.isfinite(v)], default=0)
            ax.annotate(f"{run.retained_pct:.0f} %", (x, top), textcoords="offset points",
                        xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(range(len(runs)), [_wrapped(r.label) for r in runs], fontsize=8)
    ax.set_ylabel("received throughput (Mbit/s)")
    ax.set_ylim(bottom=0)
    ax.margins(y=0.12)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(handles=[Patch(color="tab:blue", alpha=0.6, label="N: before the failure"),
                       Patch(color="tab:orange", alpha=0.6, label="N-1: during it")],
              fontsize=8, loc="outside right upper", frameon=False,
              title="median bar, trial dot;\nabove: capacity retained", title_fontsize=8)
    return fig


def thumbnail(path: Path, width_px: int = THUMB_WIDTH_PX) -> bytes:
    """A small copy of a trial's plot.  Pillow, which matplotlib itself reads PNGs with:
    matplotlib.image.thumbnail is deprecated (3.11) in its favour."""
    with Image.open(path) as image:
        image.thumbnail((width_px, width_px * image.height // max(image.width, 1)))
        buffer = io.BytesIO()
        # 256 colours hold a plot's few well: a third of the bytes, in a page of dozens
        image.convert("RGB").quantize(256).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
