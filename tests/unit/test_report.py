"""`redlab report` (harness/results/report.py) on hand-made run and suite folders whose
page is known: every figure embedded as a PNG that decodes, the verdicts row by row, the
predicted band where a prediction exists, links to the full trial plots that resolve, and
bad input refused through the real command line with nothing written."""

from __future__ import annotations

import base64
import io
import math
import urllib.parse
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.results import report, report_figures
from harness.results.report import write_report

from ..conftest import redlab
from .report_folders import PNG_MAGIC, make_run, make_suite, read_page, trial


def decoded(uri: str):
    """The image a data URI holds, read back as pixels; fails unless it is a real PNG."""
    head, _, payload = uri.partition(",")
    assert head == "data:image/png;base64", uri[:40]
    raw = base64.b64decode(payload, validate=True)
    assert raw.startswith(PNG_MAGIC)
    return matplotlib.image.imread(io.BytesIO(raw), format="png")


def bands(fig) -> list[tuple[float, float]]:
    """The shaded predicted windows of a gap figure, bottom to top, left to right."""
    shaded = [c for c in fig.axes[0].collections if c.get_gid() == "predicted-band"]
    return [(float(v[:, 1].min()), float(v[:, 1].max()))
            for v in (c.get_paths()[0].vertices for c in shaded)]


@pytest.fixture
def suite(tmp_path) -> Path:
    return make_suite(tmp_path / "suite")


def test_a_suite_report_embeds_every_figure_as_a_png_that_decodes(suite):
    page = read_page(write_report(suite).read_text())
    kinds = [img.get("data-figure") for img in page.images]
    # the miimon sweep, the runs no sweep covers, the CDF, capacity, 3 + 3 + 2 trial plots
    assert kinds == ["gap", "gap", "cdf", "capacity"] + ["thumbnail"] * 8
    for img in page.images:
        pixels = decoded(img["src"])
        assert pixels.shape[0] > 20 and pixels.shape[1] > 20, img["alt"]
    assert "Gap against miimon (bond-active-backup)" in page.text
    assert "Gap of 03-vrrp-master-death" in page.text  # the one no sweep covers


def test_the_verdict_tables_say_pass_fail_or_no_expectations_row_by_row(suite):
    page = read_page(write_report(suite).read_text())
    by_trial = {(r["data-run"], r["data-trial"]): r["data-verdict"]
                for r in page.rows["trial-verdicts"]}
    assert by_trial == {
        **{("01-bond-active-backup-miimon=100", n): "pass" for n in "123"},
        ("02-bond-active-backup-miimon=500", "1"): "pass",
        ("02-bond-active-backup-miimon=500", "2"): "fail",
        ("02-bond-active-backup-miimon=500", "3"): "pass",
        ("03-vrrp-master-death", "1"): "none", ("03-vrrp-master-death", "2"): "none"}
    by_run = {r["data-run"]: r["data-verdict"] for r in page.rows["run-verdicts"]}
    assert by_run == {"01-bond-active-backup-miimon=100": "pass",
                      "02-bond-active-backup-miimon=500": "fail",
                      "03-vrrp-master-death": "none", "04-bond-single-switch-death": "none"}
    # one failed trial fails the whole suite
    assert page.ids["overall"]["data-verdict"] == "fail"
    assert "verdict: FAIL - 1 of 6 trial(s) failed an expectation" in page.text
    assert "verdict: FAIL - 1 of 3 trial(s) failed an expectation" in page.text
    assert "verdict: PASS - 3 of 3 trial(s) met every expectation" in page.text
    assert "failover_gap_ms 480 above max 400" in page.text
    assert "no expectations" in page.text
    # the failed run is named with why, not left out
    assert "run failed: the lab could not be built" in page.text
    assert "no summary.csv: no trial finished" in page.text


def test_a_sweep_is_drawn_against_its_parameter_with_each_runs_band(suite):
    runs = report.load_runs(suite)
    sweeps = report.swept([r for r in runs if len(r.rows)])
    assert [(scenario, name, [r.params[name] for r in group])
            for scenario, name, group in sweeps] == [("bond-active-backup", "miimon",
                                                      [100, 500])]
    positions = [report.position(r, f"miimon={r.params['miimon']}") for r in sweeps[0][2]]
    assert [p.band for p in positions] == [(0.0, 100.0), (0.0, 500.0)]
    assert bands(report_figures.gap_figure(positions, "miimon")) == [(0.0, 100.0),
                                                                     (0.0, 500.0)]


def test_the_band_is_the_predicted_figures_and_absent_without_a_prediction(tmp_path):
    vrrp = report.load_runs(make_suite(tmp_path / "s"))[2]
    takeover = report.position(vrrp, "vrrp")
    assert takeover.figure == "vrrp_takeover_ms"  # not the gap: the window is about this
    assert takeover.values == (2890.0, 3080.0) and takeover.band == (2600.0, 3600.0)
    bare = make_run(tmp_path / "bare", [trial(40.0, band=None, basis="no model: degrade"),
                                        trial(45.0, band=None, basis="no model: degrade")])
    unpredicted = report.position(report.load_runs(bare)[0], "bare")
    assert unpredicted.band is None
    assert bands(report_figures.gap_figure([unpredicted], "run")) == []
    page = read_page(write_report(bare).read_text())
    assert "no model: degrade" in page.text  # why there is no band


def test_a_folder_from_before_verdicts_and_generic_predictions_still_reports(tmp_path):
    """As the MC-LAG runs of the time wrote them: no verdict columns, the window only in
    mclag_predicted_*."""
    rows = [{"failover_gap_ms": gap, "throughput_before_mbps": 20.0,
             "throughput_during_mbps": 19.8, "capacity_retained_pct": 99.0,
             "mclag_predicted_figure": "failover_gap_ms", "mclag_predicted_min_ms": 0,
             "mclag_predicted_max_ms": 100, "mclag_within_prediction": gap <= 100,
             "mclag_prediction": "carrier loss: at worst the next MII check"}
            for gap in (14.0, 24.0, 156.7)]
    run = make_run(tmp_path / "ld7", rows, scenario="mclag-leaf-death")
    page = read_page(write_report(run).read_text())
    assert [r["data-verdict"] for r in page.rows["trial-verdicts"]] == ["none"] * 3
    assert page.text.count("no expectations") >= 4  # the run, its three trials
    assert page.text.count("0.0 to 100.0") == 3
    assert "mclag-leaf-death" in page.text
    position = report.position(report.load_runs(run)[0], "ld7")
    assert position.band == (0.0, 100.0)
    assert [w.within for w in report.load_runs(run)[0].windows()] == [True, True, False]


def test_thumbnails_link_to_the_full_plots_relative_to_the_report(suite, tmp_path):
    elsewhere = tmp_path / "reports" / "r.html"
    elsewhere.parent.mkdir()
    for out, given in ((suite / "report.html", None), (elsewhere, elsewhere)):
        hrefs = _hrefs(write_report(suite, given).read_text())
        assert len(hrefs) == 8
        for href in hrefs:
            assert not Path(href).is_absolute()
            target = (out.parent / urllib.parse.unquote(href)).resolve()
            assert target.name == "trial.png" and target.is_file(), href
    cards = report.trial_cards(report.load_runs(suite), suite / "report.html")
    undrawn = [c for c in cards if c["thumbnail"] is None]
    assert [(c["run"], c["trial"]) for c in undrawn] == [("04-bond-single-switch-death",
                                                         "trial-001")]
    assert "redlab plot" in undrawn[0]["fix"]


def _hrefs(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('<a href="')[1:]]


def test_a_thumbnail_is_a_small_copy_of_the_trial_plot(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 9), dpi=110)  # as harness/results/plot.py saves trial.png
    FigureCanvasAgg(fig)
    fig.add_subplot().plot(range(100), [i % 7 for i in range(100)])
    fig.savefig(tmp_path / "trial.png")
    small = report_figures.thumbnail(tmp_path / "trial.png")
    pixels = decoded("data:image/png;base64," + base64.b64encode(small).decode())
    assert pixels.shape[:2] == (270, report_figures.THUMB_WIDTH_PX)  # 1540 x 990, scaled
    assert len(small) < (tmp_path / "trial.png").stat().st_size / 3


def test_the_environment_names_what_differs_and_where_the_probe_error_comes_from(tmp_path):
    root = tmp_path / "suite"
    make_run(root / "01-a", [trial(20.0)], kernel="6.1.176")
    make_run(root / "02-b", [trial(25.0)], kernel="6.8.0", params={"miimon": 50})
    env = dict(report.environment(report.load_runs(root), None))
    assert env["lab kind"] == "uml" and env["keepalived"] == "Keepalived v2.2.7"
    assert env["kernel"] == "6.1.176 (01-a); 6.8.0 (02-b)"
    assert "the probe interval, median 1 ms, stands for it" in env["probe error"]
    calibration = tmp_path / "cal"
    calibration.mkdir()
    (calibration / "calibration.csv").write_text("requested_ms,error_ms\n20,0.4\n100,-2.5\n")
    env = dict(report.environment(report.load_runs(root), calibration))
    assert env["probe error"].startswith("2.5 ms, the largest error of the calibration")


def test_a_run_with_no_finished_trial_anywhere_is_bad_input(tmp_path):
    run = make_run(tmp_path / "run", None, status="failed", error="no bonding module")
    with pytest.raises(ConfigError, match="no finished trial.*no bonding module"):
        write_report(run)
    assert sorted(p.name for p in run.iterdir()) == ["metadata.json"]


def test_the_capacity_figure_is_left_out_without_throughput(tmp_path):
    run = make_run(tmp_path / "run", [trial(20.0, throughput_before_mbps=math.nan,
                                            throughput_during_mbps=math.nan)])
    page = read_page(write_report(run).read_text())
    assert "capacity" not in [img.get("data-figure") for img in page.images]
    assert "No throughput was measured" in page.text


# -- through the real command line --------------------------------------------------------

def test_redlab_report_writes_report_html_into_the_folder(tmp_path):
    run = make_run(tmp_path / "run", [trial(20.0, "pass"), trial(30.0, "pass")],
                   expect={"failover_gap_ms": {"max": 150}})
    done = redlab("report", str(run), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {run / 'report.html'}"
    page = read_page((run / "report.html").read_text())
    assert [r["data-verdict"] for r in page.rows["trial-verdicts"]] == ["pass", "pass"]


def _empty(path: Path) -> Path:
    path.mkdir()
    return path


def _no_run(path: Path) -> Path:
    (path / "notes").mkdir(parents=True)
    (path / "notes" / "todo.txt").write_text("not a run")
    return path


def _no_trial(path: Path) -> Path:
    return make_run(path, None, status="interrupted")


@pytest.mark.parametrize("build, said", [
    (_empty, "holds no metadata.json"),
    (_no_run, "holds no metadata.json"),
    (lambda p: p, "is not a folder"),
    (_no_trial, "holds no finished trial"),
], ids=["empty folder", "folder with no run", "missing folder", "run with no trial"])
def test_bad_input_exits_2_with_one_error_and_writes_nothing(tmp_path, build, said):
    folder = build(tmp_path / "folder")
    before = sorted(tmp_path.rglob("*"))
    done = redlab("report", str(folder), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and said in done.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_a_bad_calibration_exits_2_and_leaves_the_old_report_alone(tmp_path):
    run = make_run(tmp_path / "run", [trial(20.0)])
    (run / "report.html").write_text("the report of yesterday")
    done = redlab("report", str(run), "--calibration", str(tmp_path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "holds no calibration.csv" in done.stderr
    assert (run / "report.html").read_text() == "the report of yesterday"
    assert sorted(p.name for p in run.iterdir()) == ["metadata.json", "report.html",
                                                     "summary.csv", "trial-001"]


def test_a_run_is_told_apart_by_its_own_parameters_not_another_scenarios():
    """A suite of a bond and a VRRP run: the bond's row names no VRRP parameter."""
    bond = report.Run("01-bond", Path("01-bond"), {"scenario": {"name": "bond"},
                                                   "params": {"miimon": 100}}, pd.DataFrame())
    vrrp = report.Run("02-vrrp", Path("02-vrrp"), {"scenario": {"name": "vrrp"},
                                                   "params": {"advert_int": 0.1}}, pd.DataFrame())
    rows = {r["run"]: r for r in report.run_rows([bond, vrrp])}
    assert [r["differ"] for r in rows.values()] == ["miimon=100", "advert_int=0.1"]
