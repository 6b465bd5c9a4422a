"""Samples and figures redrawn from a trial folder alone, on a hand-written trial with known
answers: 1 kHz probe for 200 ms losing packets 100-129 after a cut at 99.5 ms, and ten
0.1 s iperf3 intervals of 10 Mbit/s except a silent fourth one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.measure.probe import Packet
from harness.results.plot import plot_run, plot_trial, trial_figure
from harness.results.samples import build_samples, load_trial, write_samples
from harness.results.summary import failover_outage

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # traffic_start on the lab's wall clock
LOST = range(100, 130)
CUT_NS = T0 + 99 * MS + MS // 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_trial(path: Path, lost: range = LOST, irtt: bool = True) -> Path:
    path.mkdir(parents=True)
    intervals = [{"sum": {"start": i / 10, "end": (i + 1) / 10,
                          "bits_per_second": 0.0 if i == 3 else 10e6}} for i in range(10)]
    (path / "iperf3.json").write_text(json.dumps({"start": {}, "intervals": intervals}))
    if irtt:
        trips = []
        for i in range(200):
            sent = T0 + i * MS
            gone = i in lost
            trips.append({"seqno": i, "lost": "true_down" if gone else "false",
                          "timestamps": {"client": {"send": {"wall": sent},
                                                    "receive": {} if gone else
                                                    {"wall": sent + MS // 2}}}})
        (path / "irtt.json").write_text(json.dumps({"round_trips": trips}))
    with open(path / "events.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["t_ns", "t_s", "kind", "node", "detail"])
        for t_ns, kind, detail in [(T0, "traffic_start", "iperf3 tcp from srv"),
                                   (CUT_NS, "cut", "link_down srv:eth0 <-> sw:p1"),
                                   (T0 + 125 * MS, "bond_active_changed", "eth0 -> eth1"),
                                   (T0 + 150 * MS, "restore", "link_down srv:eth0 <-> sw:p1")]:
            out.writerow([t_ns, (t_ns - T0) / 1e9, kind, "srv", detail])
    return path


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    return write_trial(tmp_path / "run" / "trial-001")


def series(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["series"] == name]


def test_samples_have_one_row_per_interval_packet_and_10_ms_bin(trial):
    frame = build_samples(trial)
    assert list(frame.columns) == ["t_ns", "t_s", "series", "value", "unit"]
    counts = frame.groupby("series").size().to_dict()
    assert counts == {"throughput": 10, "probe_rtt": 170, "probe_lost": 30,
                      "probe_loss_rate": 20}
    units = frame.groupby("series")["unit"].unique().map(list).to_dict()
    assert units == {"throughput": ["Mbit/s"], "probe_rtt": ["ms"], "probe_lost": ["packet"],
                     "probe_loss_rate": ["fraction"]}


def test_throughput_is_in_mbit_per_s_at_each_interval_middle(trial):
    tput = series(build_samples(trial), "throughput")
    assert tput["t_s"].tolist()[:4] == pytest.approx([0.05, 0.15, 0.25, 0.35])
    assert tput["value"].tolist()[:4] == pytest.approx([10.0, 10.0, 10.0, 0.0])
    assert tput["t_ns"].iloc[3] == T0 + 350 * MS


def test_a_lost_probe_is_a_row_at_its_send_time_and_a_received_one_has_its_rtt(trial):
    frame = build_samples(trial)
    lost = series(frame, "probe_lost")
    assert lost["t_s"].iloc[0] == pytest.approx(0.100)
    assert lost["t_ns"].iloc[-1] == T0 + 129 * MS
    assert set(lost["value"]) == {1.0}
    rtt = series(frame, "probe_rtt")
    assert set(rtt["value"]) == {0.5}
    # every packet once: received ones are RTT rows, the others lost rows
    assert sorted(rtt["t_ns"].tolist() + lost["t_ns"].tolist()) == [
        T0 + i * MS for i in range(200)]


def test_loss_rate_is_the_lost_fraction_of_each_10_ms_bin_at_its_middle(trial):
    rate = series(build_samples(trial), "probe_loss_rate")
    by_bin = dict(zip(rate["t_s"].round(3), rate["value"], strict=True))
    assert by_bin[0.095] == 0.0
    assert by_bin[0.105] == by_bin[0.115] == by_bin[0.125] == 1.0
    assert by_bin[0.135] == 0.0
    assert rate["value"].sum() == pytest.approx(3.0)


def test_write_samples_writes_samples_csv_that_reads_back_unchanged(trial):
    path = write_samples(trial)
    assert path == trial / "samples.csv"
    pd.testing.assert_frame_equal(pd.read_csv(path), build_samples(trial), check_dtype=False)


def packets(lost: set[int], n: int = 50) -> list[Packet]:
    return [Packet(i, i * MS, None if i in lost else i * MS + 1, "true" if i in lost
                   else "false") for i in range(n)]


def window(trace: list[Packet], failure_ns: int) -> tuple[int, int | None] | None:
    """The failure's outage as summary.csv and the plot take it (one definition)."""
    outage = failover_outage(trace, failure_ns)
    return None if outage is None else (outage.begin_ns, outage.end_ns)


def test_the_outage_runs_from_the_last_received_send_to_the_first_received_after():
    assert window(packets({20, 21, 22}), 15 * MS) == (19 * MS, 23 * MS)


def test_the_outage_ignores_loss_before_the_failure_and_later_runs():
    trace = packets({5, 20, 21, 22, 40, 41})
    assert window(trace, 10 * MS) == (19 * MS, 23 * MS)


def test_the_outage_covering_the_failure_is_its_own_even_if_it_began_before():
    assert window(packets({8, 9, 10, 11}), 10 * MS) == (7 * MS, 12 * MS)


def test_there_is_no_outage_without_loss_after_the_failure():
    assert window(packets({5}), 10 * MS) is None
    assert window(packets(set()), 0) is None


def test_an_outage_that_never_recovers_has_an_open_end():
    assert window(packets(set(range(45, 50))), 0) == (44 * MS, None)


def test_plot_trial_writes_a_real_png_into_the_trial_folder(trial):
    path = plot_trial(trial)
    assert path == trial / "trial.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 30_000  # three panels, a zoom and labels: not an empty canvas


def test_the_shaded_outage_is_the_derived_window_in_every_panel(trial):
    fig = trial_figure(load_trial(trial))
    spans = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "outage"]
    assert len(spans) == 6  # three panels, whole trial and zoom
    for span in spans:  # packet 99 was the last received, 130 the first after
        assert span.get_x() == pytest.approx(0.099)
        assert span.get_x() + span.get_width() == pytest.approx(0.130)


def test_a_given_gap_replaces_the_derived_one(trial):
    fig = trial_figure(load_trial(trial), gap=(T0 + 100 * MS, T0 + 110 * MS))
    span = next(p for p in fig.axes[0].patches if p.get_gid() == "outage")
    assert (span.get_x(), span.get_width()) == pytest.approx((0.100, 0.010))


def test_a_trial_without_loss_plots_without_shading(tmp_path):
    trial = write_trial(tmp_path / "trial-001", lost=range(0))
    fig = trial_figure(load_trial(trial))
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "outage"]
    assert "no probe lost after the first failure" in fig.get_suptitle()
    assert plot_trial(trial).read_bytes()[:8] == PNG_MAGIC


def test_a_trial_without_a_probe_record_plots_throughput_and_says_so(tmp_path):
    trial = write_trial(tmp_path / "trial-001", irtt=False)
    assert set(build_samples(trial)["series"]) == {"throughput"}
    fig = trial_figure(load_trial(trial))
    assert "missing: no probe record" in fig.get_suptitle()
    assert plot_trial(trial).read_bytes()[:8] == PNG_MAGIC


def test_plot_run_draws_every_trial_titled_with_the_scenario_name(tmp_path):
    run = tmp_path / "run"
    for n in (1, 2):
        write_trial(run / f"trial-00{n}")
    (run / "metadata.json").write_text(json.dumps({
        "scenario": {"name": "bond-active-backup"}, "params": {"miimon": 100}}))
    assert plot_run(run) == [run / "trial-001" / "trial.png", run / "trial-002" / "trial.png"]
    title = trial_figure(load_trial(run / "trial-002")).get_suptitle()
    assert title.startswith("bond-active-backup, trial 2\nmiimon=100")
    assert "\ncut at 0.1" in title and "link_down srv:eth0 <-> sw:p1" in title


def test_plot_run_skips_a_trial_that_stopped_before_traffic_started(tmp_path):
    run = tmp_path / "run"
    write_trial(run / "trial-001")
    (run / "trial-002").mkdir()
    (run / "trial-002" / "events.csv").write_text("t_ns,t_s,kind,node,detail\n")
    assert plot_run(run) == [run / "trial-001" / "trial.png"]
    assert not (run / "trial-002" / "trial.png").exists()


def test_plots_left_by_a_guest_are_drawn_on_the_host_for_measured_trials_only(tmp_path):
    from harness.results.plot import draw_pending
    from harness.results.summary import TRIAL_FILE

    run = tmp_path / "run"
    for n in (1, 2, 3):
        write_trial(run / f"trial-00{n}")
    (run / "metadata.json").write_text(json.dumps({"scenario": {"name": "s"}, "params": {}}))
    (run / "trial-001" / TRIAL_FILE).write_text("{}")
    (run / "trial-002" / TRIAL_FILE).write_text("{}")
    (run / "trial-002" / "trial.png").write_bytes(b"drawn in the guest")
    draw_pending(run)  # trial-003 stopped before its traffic ended: no trial.json
    assert (run / "trial-001" / "trial.png").read_bytes()[:8] == PNG_MAGIC
    assert (run / "trial-001" / "samples.csv").is_file()
    assert (run / "trial-002" / "trial.png").read_bytes() == b"drawn in the guest"
    assert not (run / "trial-003" / "trial.png").exists()


def test_a_suite_draws_nothing_while_its_runs_go_then_every_measured_trial(tmp_path):
    import os

    from harness.results.deferred_plots import DeferredPlots
    from harness.results.store import DEFER_PLOTS_ENV
    from harness.results.summary import TRIAL_FILE

    runs = [tmp_path / "01-a", tmp_path / "02-b"]
    for run in runs:
        write_trial(run / "trial-001")
        (run / "metadata.json").write_text(json.dumps({"scenario": {"name": "s"},
                                                       "params": {}}))
        (run / "trial-001" / TRIAL_FILE).write_text("{}")
    write_trial(runs[1] / "trial-002")  # stopped before its traffic ended: no trial.json
    with DeferredPlots(runs) as plots:
        with plots.deferring():
            assert os.environ.get(DEFER_PLOTS_ENV) == "1"  # the runs draw nothing
        assert DEFER_PLOTS_ENV not in os.environ
    for run in runs:
        assert (run / "trial-001" / "trial.png").read_bytes()[:8] == PNG_MAGIC
    assert not (runs[1] / "trial-002" / "trial.png").exists()
