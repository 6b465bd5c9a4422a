"""Hand-made run and suite folders for the report's tests (test_report.py and
test_report_browser.py), reduced to what ``redlab report`` reads, and a reader of the
page it writes: its images, its tables' rows and its text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VERSIONS = {"redlab": "0.1.0", "keepalived": "Keepalived v2.2.7", "iperf3": "iperf 3.12"}
MIIMON_BASIS = "bond active-backup, MII monitor: [downdelay, miimon + downdelay]"


def trial_png(path: Path) -> None:
    """A small real PNG where trial.png goes (the trial plot's content does not matter)."""
    fig = Figure(figsize=(3, 2), dpi=60)
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1, 2], [1, 0, 1])
    fig.savefig(path)


def trial(gap: float, verdict: str = "", failed: str = "",
          band: tuple[float, float] | None = (0.0, 100.0), figure: str = "failover_gap_ms",
          basis: str = MIIMON_BASIS, **more: Any) -> dict[str, Any]:
    """One summary row: the gap, throughput before/during (100 then 50 Mbit/s), the
    prediction's columns and the verdict's, as summary.csv holds them."""
    measured = more.get(figure, gap)
    row = {"failover_gap_ms": gap, "throughput_before_mbps": 100.0,
           "throughput_during_mbps": 50.0, "capacity_retained_pct": 50.0,
           "predicted_figure": figure if band else "",
           "predicted_min_ms": band[0] if band else math.nan,
           "predicted_max_ms": band[1] if band else math.nan,
           "prediction": basis,
           "within_prediction": (band[0] <= measured <= band[1]) if band else "",
           "verdict": verdict, "verdict_failed": failed}
    return {**row, **more}


def make_run(path: Path, rows: list[dict[str, Any]] | None, scenario: str = "bond-active-backup",
             params: dict[str, Any] | None = None, expect: dict[str, Any] | None = None,
             plots: bool = True, **meta: Any) -> Path:
    """A run folder as redlab run writes it: metadata.json, summary.csv (none when
    ``rows`` is None: the run stopped before its first trial) and a folder per trial
    holding trial.png (unless ``plots`` is False)."""
    path.mkdir(parents=True)
    (path / "metadata.json").write_text(json.dumps({
        "schema_version": 4, "status": "complete", "kernel": "6.1.176", "lab": "uml",
        "host": "lab1", "versions": VERSIONS,
        "scenario": {"name": scenario, **({"expect": expect} if expect else {})},
        "params": params if params is not None else {"miimon": 100}, **meta}))
    if rows is None:
        return path
    pd.DataFrame([{"scenario": scenario, "trial": n, "probe_interval_ms": 1.0, **row}
                  for n, row in enumerate(rows, start=1)]).to_csv(path / "summary.csv",
                                                                  index=False)
    for number in range(1, len(rows) + 1):
        folder = path / f"trial-{number:03d}"
        folder.mkdir()
        if plots:
            trial_png(folder / "trial.png")
    return path


def make_suite(root: Path) -> Path:
    """A suite folder: a miimon sweep of one scenario (100: three passes; 500: one trial
    of three fails its bound), a VRRP run that expects nothing and whose prediction is
    about the takeover, and a run that failed before its first trial."""
    root.mkdir(parents=True)
    make_run(root / "01-bond-active-backup-miimon=100",
             [trial(20.0, "pass"), trial(60.0, "pass"), trial(95.0, "pass")],
             params={"miimon": 100}, expect={"failover_gap_ms": {"max": 400}})
    make_run(root / "02-bond-active-backup-miimon=500",
             [trial(300.0, "pass", band=(0.0, 500.0)),
              trial(480.0, "fail", "failover_gap_ms 480 above max 400", band=(0.0, 500.0)),
              trial(210.0, "pass", band=(0.0, 500.0))],
             params={"miimon": 500}, expect={"failover_gap_ms": {"max": 400}})
    vrrp = (2600.0, 3600.0)
    make_run(root / "03-vrrp-master-death",
             [trial(2900.0, band=vrrp, figure="vrrp_takeover_ms", vrrp_takeover_ms=2890.0,
                    basis="VRRP master silent: [master_down - advert_int, master_down]"),
              trial(3100.0, band=vrrp, figure="vrrp_takeover_ms", vrrp_takeover_ms=3080.0)],
             scenario="vrrp-master-death", params={"advert_int": 1})
    failed = make_run(root / "04-bond-single-switch-death", None,
                      scenario="bond-single-switch-death", params={"miimon": 100},
                      status="failed", error="the lab could not be built")
    (failed / "trial-001").mkdir()  # begun, never measured: no plot
    return root


@dataclass
class Page:
    images: list[dict[str, str]] = field(default_factory=list)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # table id -> <tr>s
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # element id -> attributes
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self.table = ""
        self.texts: list[str] = []
        self.code = False  # inside <style> or <script>: not the page's text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.code = tag in ("style", "script")
        if tag == "img":
            self.page.images.append(found)
        elif tag == "table":
            self.table = found.get("id", "")
            self.page.rows.setdefault(self.table, [])
        elif tag == "tr" and "data-verdict" in found:
            self.page.rows[self.table].append(found)
        if "id" in found:
            self.page.ids[found["id"]] = found
        if tag == "body":
            self.page.ids["body"] = found

    def handle_endtag(self, tag: str) -> None:
        self.code = False

    def handle_data(self, data: str) -> None:
        if not self.code:
            self.texts.append(data)


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.page.text = " ".join(" ".join(reader.texts).split())
    return reader.page
