"""Expectations and verdicts (harness/results/verdicts.py) on rows with known answers, and
the commands' verdicts and exit codes without a lab: `redlab verdict` on a hand-written
run folder, `redlab run` given a typo in expect: (it fails before any lab), and `run` and
`suite` with their lab part replaced by rows whose verdicts are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness import cli
from harness.errors import ConfigError
from harness.measure.vrrp_timing import COLUMNS as VRRP_COLUMNS
from harness.results import console, recheck, summary, verdicts
from harness.scenario.model import load_scenario
from harness.scenario.suite import load_suite

from ..conftest import SCENARIOS, redlab
from .test_summary import write_run


def expect(doc: dict) -> dict[str, verdicts.Bound]:
    return verdicts.parse(doc, "expect: in the test", "correct the test")


def judge(row: dict, doc: dict) -> verdicts.TrialVerdict:
    return verdicts.judge(row, expect(doc))


# -- bounds --------------------------------------------------------------------------

def test_a_numeric_bound_passes_inside_and_fails_outside_saying_by_how_much():
    bounds = {"failover_gap_ms": {"max": 150, "reason": "one miimon period"},
              "capacity_retained_pct": {"min": 45}}
    held = judge({"failover_gap_ms": 150.0, "capacity_retained_pct": 45}, bounds)
    assert held.verdict == "pass" and held.columns() == {"verdict": "pass",
                                                         "verdict_failed": ""}
    broken = judge({"failover_gap_ms": 212.4, "capacity_retained_pct": 30.5}, bounds)
    assert broken.columns() == {"verdict": "fail", "verdict_failed":
                                "failover_gap_ms 212.4 above max 150;"
                                " capacity_retained_pct 30.5 below min 45"}
    assert broken.failed[0].describe() == "failover_gap_ms 212.4 above max 150 - one miimon period"
    both = {"x": {"min": 35, "max": 65}}
    assert [judge({"x": v}, both).verdict for v in (34.9, 35, 65, 65.1)] == [
        "fail", "pass", "pass", "fail"]


@pytest.mark.parametrize("measured", [math.nan, np.float64("nan"), None, ""],
                         ids=["nan", "numpy-nan", "none", "blank"])
def test_a_figure_that_was_not_measured_fails_a_numeric_bound(measured):
    verdict = judge({"failover_gap_ms": measured}, {"failover_gap_ms": {"max": 150}})
    assert verdict.columns() == {"verdict": "fail",
                                 "verdict_failed": "failover_gap_ms not measured (max 150)"}


def test_yes_no_and_text_figures_are_held_to_a_value():
    bounds = {"recovered_before_restore": True, "vrrp_new_master": {"equals": "r2"}}
    assert judge({"recovered_before_restore": True, "vrrp_new_master": "r2"},
                 bounds).verdict == "pass"
    # as pandas reads them back: numpy's bool, and "True" where a column also holds blanks
    assert judge({"recovered_before_restore": np.bool_(True), "vrrp_new_master": "r2"},
                 bounds).verdict == "pass"
    assert judge({"recovered_before_restore": "True", "vrrp_new_master": "r2"},
                 bounds).verdict == "pass"
    failed = judge({"recovered_before_restore": False, "vrrp_new_master": ""}, bounds)
    assert failed.columns()["verdict_failed"] == (
        "recovered_before_restore false, expected true; vrrp_new_master '', expected r2")
    # no failure, no answer: not a pass
    assert judge({"recovered_before_restore": ""}, {"recovered_before_restore": True}
                 ).columns()["verdict_failed"] == "recovered_before_restore not measured" \
        " (expected true)"


def test_no_expectation_is_no_verdict_and_exit_0():
    assert judge({"failover_gap_ms": 1.0}, {}).columns() == {"verdict": "",
                                                            "verdict_failed": ""}
    assert verdicts.run_verdict(["", ""]) == "" and verdicts.exit_code(["", ""]) == 0


def test_the_run_passes_only_when_every_trial_passes():
    assert verdicts.run_verdict(["pass", "pass"]) == "pass"
    assert verdicts.run_verdict(["pass", "fail", "pass"]) == "fail"
    assert [verdicts.exit_code(v) for v in (["pass"], ["pass", "fail"], [])] == [0, 1, 0]
    rows = [{"trial": 1, "verdict": "pass"}, {"trial": 2, "verdict": "fail"},
            {"trial": 3, "verdict": "pass"}]
    text, verdict = console.run_line(rows)
    assert verdict == "fail" and "1 of 3 trial(s) failed" in text


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "message"), [
    ({"failover_gap_ms": {"max": "fast"}}, "failover_gap_ms.max: Input should be a valid number"),
    ({"failover_gap_ms": {"max": True}}, "failover_gap_ms.max: Input should be a valid number"),
    ({"failover_gap_ms": 150}, "a number alone is not a bound: write {max: 150}"),
    ({"failover_gap_ms": {"mx": 150}}, "failover_gap_ms.mx: unknown key"),
    ({"failover_gap_ms": {"reason": "why"}}, "give min, max or equals"),
    ({"failover_gap_ms": {"min": 200, "max": 150}}, "min 200 is above max 150"),
    ({"failover_gap_ms": {"equals": 3}}, "equals: 3 is neither true/false nor a text"),
    ({"failover_gap_ms": {"equals": True, "max": 1}}, "cannot be combined"),
    ({"failover_gap_ms": None}, "no bound given"),
    ({"verdict": "pass"}, "verdict is the verdict itself"),
], ids=["text-max", "bool-max", "number-alone", "typo-key", "no-bound", "min-above-max",
        "number-equals", "equals-and-max", "empty", "the-verdict"])
def test_a_bound_of_the_wrong_type_is_one_clear_error(doc, message):
    with pytest.raises(ConfigError, match="expect: in the test is not valid") as info:
        expect(doc)
    assert message in info.value.problem


@pytest.mark.parametrize(("row", "doc", "message"), [
    ({"recovered_before_restore": True}, {"recovered_before_restore": {"max": 1}},
     "recovered_before_restore is yes/no (True): expect true or false, not max 1"),
    ({"active_after": "srv:eth1"}, {"active_after": {"min": 1}},
     "active_after is a text ('srv:eth1'), not a number"),
    ({"failover_gap_ms": 12.0}, {"failover_gap_ms": True},
     "failover_gap_ms is 12.0, not yes/no: expect min/max"),
    ({"failover_gap_ms": 12.0}, {"failover_gap_ms": "fast"},
     "failover_gap_ms is 12, not a text: expect min/max"),
], ids=["max-on-yes-no", "min-on-text", "yes-on-number", "text-on-number"])
def test_a_bound_of_the_wrong_kind_for_its_figure_is_bad_input_not_a_failure(row, doc, message):
    with pytest.raises(ConfigError) as info:
        judge(row, doc)
    assert message in info.value.problem


def test_names_the_row_lacks_are_bad_input_with_the_close_matches():
    row = {"failover_gap_ms": 1.0, "failover_gap_floor_ms": 1.0, "lost_packets": 3}
    with pytest.raises(ConfigError) as info:
        verdicts.judge(row, expect({"failover_gap": {"max": 1}, "zzz": {"max": 1},
                                    "lost_packets": {"max": 5}}), "trial-001's summary row")
    problem = info.value.problem
    assert ("failover_gap is not a figure of trial-001's summary row (did you mean"
            " failover_gap_ms or failover_gap_floor_ms?)") in problem
    assert "zzz is not a figure of trial-001's summary row\n" in problem + "\n"
    assert "lost_packets" not in problem


def test_a_typo_of_a_known_figure_fails_before_the_run():
    known = verdicts.known_before_run(["miimon", "bond_mode"])
    for typo, meant in (("failover_gap", "failover_gap_ms"),
                        ("capacity_retained", "capacity_retained_pct"), ("mimon", "miimon"),
                        ("within_predicton", "within_prediction")):
        with pytest.raises(ConfigError, match=f"{typo} \\(did you mean {meant}"):
            verdicts.check_before_run(expect({typo: {"max": 1}}), known, "scenario s.yaml")


def test_no_technology_column_is_taken_for_a_typo_before_the_run():
    """A technology's columns are only known once a trial ran: none of today's may be
    refused before the run for looking like a base column."""
    technology_columns = [
        *VRRP_COLUMNS, "active_before", "active_after", "failover_detected_ms",
        "lacp_member_left_ms", "probe_sends_in_failover", "mclag_roles_after",
        "mclag_detect_ms", "mclag_detected", "mclag_detect_predicted_min_ms",
        "mclag_detect_predicted_max_ms", "mclag_action_ms", "mclag_action", "split_srv_ms",
        "mclag_predicted_figure", "mclag_predicted_min_ms", "mclag_predicted_max_ms",
        "mclag_prediction", "mclag_within_prediction", "spread_srv_bond0",
        "members_used_srv_bond0"]
    verdicts.check_before_run(expect({c: {"max": 1} for c in technology_columns}),
                              verdicts.known_before_run(["miimon"]), "scenario s.yaml")


def test_every_column_of_a_trial_without_technology_is_known_before_the_run(tmp_path):
    run = write_run(tmp_path / "run", {1: {}})
    row = summary.trial_row(run / "trial-001")
    unknown = set(row) - verdicts.known_before_run(["miimon"]) - set(verdicts.COLUMNS)
    assert not unknown, f"add {sorted(unknown)} to verdicts.known_before_run"


# -- scenarios and suites ----------------------------------------------------------------

SCENARIO = (SCENARIOS / "bond-active-backup.yaml").read_text()


def test_a_suite_run_adds_to_and_replaces_its_scenarios_expectations(tmp_path):
    (tmp_path / "s.yaml").write_text(
        SCENARIO.split("\nexpect:")[0] + "\nexpect:\n  failover_gap_ms: {max: 150}\n"
        "  capacity_retained_pct: {min: 45}\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: b\nintent: i\nruns:\n  - scenario: s.yaml\n"
                     "    sweep: {miimon: [10, 500]}\n"
                     "    expect: {failover_gap_ms: {max: 600, reason: longest miimon}}\n")
    runs = load_suite(suite).runs
    assert len(runs) == 2 and all(r.expect == runs[0].expect for r in runs)
    merged = load_scenario(tmp_path / "s.yaml").with_expect(runs[0].expect).expect
    assert {k: b.to_doc() for k, b in merged.items()} == {
        "failover_gap_ms": {"max": 600, "reason": "longest miimon"},
        "capacity_retained_pct": {"min": 45}}


def test_a_bad_bound_in_a_suite_run_is_named_by_its_place(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: b\nintent: i\nruns:\n  - scenario: s.yaml\n"
                     "    expect: {failover_gap_ms: {max: fast}}\n")
    with pytest.raises(ConfigError, match=r"runs.0.expect.failover_gap_ms.max: Input should"):
        load_suite(suite)


# -- a stored run's verdicts -------------------------------------------------------------

def hand_written_run(root: Path, doc: dict) -> Path:
    """Two trials: the first loses 40 probes (a 41 ms outage), the second nothing."""
    run = write_run(root, {1: {"lost": set(range(100, 140))}, 2: {}})
    meta = json.loads((run / "metadata.json").read_text())
    meta["scenario"]["expect"] = doc
    (run / "metadata.json").write_text(json.dumps(meta))
    return run


def test_the_verdict_columns_are_recomputed_from_the_run_folder(tmp_path):
    run = hand_written_run(tmp_path / "run", {"failover_gap_ms": {"max": 20}})
    rows = summary.summarize_run(run)
    assert [(r["verdict"], r["verdict_failed"]) for r in rows] == [
        ("fail", "failover_gap_ms 41 above max 20"), ("pass", "")]
    assert [(r["verdict"], r["verdict_failed"]) for r in recheck.stored_rows(run)] == [
        ("fail", "failover_gap_ms 41 above max 20"), ("pass", "")]


def test_redlab_verdict_holds_a_stored_run_to_new_bounds_and_writes_nothing(tmp_path):
    run = hand_written_run(tmp_path / "run", {"failover_gap_ms": {"max": 20, "reason": "r"}})
    summary.summarize_run(run)
    written = (run / "summary.csv").read_bytes()
    failing = redlab("verdict", str(run))
    assert failing.returncode == 1, failing.stderr
    assert "trial 1: FAIL: failover_gap_ms 41 above max 20 - r" in failing.stdout
    assert "verdict: FAIL - 1 of 2 trial(s) failed an expectation" in failing.stdout
    looser = tmp_path / "looser.yaml"
    looser.write_text("expect:\n  failover_gap_ms: {max: 150}\n"
                      "  recovered_before_restore: true\n")
    holding = redlab("verdict", str(run), "--expect", str(looser))
    assert holding.returncode == 0, holding.stdout + holding.stderr
    assert "verdict: PASS - 2 of 2 trial(s) met every expectation" in holding.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text("expect:\n  failover_gap: {max: 150}\n")
    bad = redlab("verdict", str(run), "--expect", str(typo))
    assert bad.returncode == 2 and "did you mean failover_gap_ms" in bad.stderr
    assert (run / "summary.csv").read_bytes() == written


# -- redlab run and suite -----------------------------------------------------------------

@pytest.mark.parametrize(("bound", "message"), [
    ("failover_gap: {max: 150}", "failover_gap (did you mean failover_gap_ms"),
    ("failover_gap_ms: {max: fast}", "expect.failover_gap_ms.max: Input should be a valid"),
], ids=["misspelt-figure", "text-bound"])
def test_bad_expectations_fail_redlab_run_before_any_lab(tmp_path, bound, message):
    """Nothing is created: the run folder, the first thing a run makes, does not exist."""
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(SCENARIO.split("\nexpect:")[0] + f"\nexpect:\n  {bound}\n")
    out = tmp_path / "out"
    done = redlab("run", str(scenario), "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def rows_judged(*found: str) -> list[dict]:
    return [{"trial": n, "verdict": v, "verdict_failed": "x" if v == "fail" else ""}
            for n, v in enumerate(found, start=1)]


@pytest.mark.parametrize(("found", "code"), [(("pass", "pass"), 0), (("pass", "fail"), 1),
                                             (("", ""), 0)])
def test_redlab_run_exits_1_only_when_a_trial_failed_an_expectation(monkeypatch, found, code):
    monkeypatch.setattr(cli, "_run", lambda *args: rows_judged(*found))
    done = CliRunner().invoke(cli.app, ["run", str(SCENARIOS / "bond-active-backup.yaml")])
    assert done.exit_code == code, done.output


def test_the_guest_side_run_takes_the_suite_runs_expectations_from_the_host(monkeypatch):
    got = []
    monkeypatch.setattr(cli, "_run", lambda *args: got.append(args[7]) or [])  # expect
    done = CliRunner().invoke(cli.app, ["run", str(SCENARIOS / "bond-active-backup.yaml"),
                                        "--expect-json", '{"failover_gap_ms": {"max": 150}}'])
    assert done.exit_code == 0, done.output
    assert [{k: b.to_doc() for k, b in e.items()} for e in got] == [
        {"failover_gap_ms": {"max": 150}}]


def test_redlab_suite_judges_every_run_and_exits_1_when_one_failed(monkeypatch, tmp_path):
    seen = []

    def fake_run(path, params, repeat, out, lab, deadline, run_id, expect):
        seen.append(expect)
        out.mkdir(parents=True)  # as a run does; no summary.csv: the medians are empty
        return rows_judged("fail" if params.get("miimon") == "500" else "pass")

    monkeypatch.setattr(cli, "_run", fake_run)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: b\nintent: i\nruns:\n  - scenario: s.yaml\n"
                     "    sweep: {miimon: [100, 500]}\n"
                     "    expect: {failover_detected_ms: {max: 600}}\n")
    done = CliRunner().invoke(cli.app, ["suite", str(suite), "--out", str(tmp_path / "out")])
    assert done.exit_code == 1, done.output
    table = [line for line in done.output.splitlines() if line.startswith("│")]
    assert [row.split("│")[-2].strip() for row in table] == ["PASS", "FAIL"]  # a row a run
    assert "02-s-miimon=500: verdict: FAIL - 1 of 1 trial(s)" in done.output
    assert [{k: b.to_doc() for k, b in e.items()} for e in seen] == [
        {"failover_detected_ms": {"max": 600}}] * 2


def test_a_guests_exit_1_is_a_failed_verdict_only_for_a_run_that_completed(tmp_path):
    """Inside User-mode Linux, `redlab run` exits 1 for a failed expectation as for a lab
    error: the host tells them apart by the run folder, so a suite goes on after the one
    and stops at the other."""
    run = hand_written_run(tmp_path / "run", {"failover_gap_ms": {"max": 20}})
    summary.summarize_run(run)
    meta = json.loads((run / "metadata.json").read_text())
    for status, code, expected in (("complete", 1, True), ("failed", 1, False),
                                   ("complete", 2, False)):
        (run / "metadata.json").write_text(json.dumps({**meta, "status": status}))
        assert recheck.failed_verdict(run, code) is expected, (status, code)
    (run / "metadata.json").write_text(json.dumps({**meta, "status": "complete"}))
    (run / "summary.csv").write_text("trial,verdict\n1,pass\n")
    assert not recheck.failed_verdict(run, 1)


@pytest.mark.parametrize("status", ["complete", "failed"])
def test_a_verdict_from_user_mode_linux_reaches_the_host_and_an_error_stays_one(
        monkeypatch, tmp_path, status):
    """`redlab run` on a host without bonding: the guest's run exits 1; the host returns
    the run's rows (a suite goes on, `run` exits 1) for a failed verdict, and passes a
    lab error's exit on as before.  A suite run's expectations go to the guest."""
    import typer

    import harness.lab

    sent = []

    def guest(args, out, run_id, deadline, requires, extra_modules=(), check=True):
        sent.append(args)
        run = hand_written_run(out, {"failover_gap_ms": {"max": 20}})
        summary.summarize_run(run)
        meta = json.loads((run / "metadata.json").read_text())
        (run / "metadata.json").write_text(json.dumps({**meta, "status": status}))
        return 1

    monkeypatch.delenv("REDLAB_LAB", raising=False)
    monkeypatch.setattr(harness.lab, "choose_lab", lambda lab, needs: "uml")
    monkeypatch.setattr(cli, "_in_uml", guest)
    extra = expect({"capacity_retained_pct": {"min": 45}})
    args = (SCENARIOS / "bond-active-backup.yaml", {}, 1, tmp_path / "run", "auto", 60.0, None,
            extra)
    if status == "complete":
        rows = cli._run(*args)
        assert [r["verdict"] for r in rows] == ["fail", "pass"]
    else:
        with pytest.raises(typer.Exit) as info:
            cli._run(*args)
        assert info.value.exit_code == 1
    (guest_args,) = sent
    assert json.loads(guest_args[guest_args.index("--expect-json") + 1]) == {
        "capacity_retained_pct": {"min": 45}}


def test_expectations_survive_the_round_trip_through_metadata_json():
    # the run folder stores the scenario as model_dump(mode="json"): unset bounds as null
    scenario = load_scenario(SCENARIOS / "mclag-leaf-death.yaml")
    stored = json.loads(json.dumps(scenario.model_dump(mode="json")))["expect"]
    assert stored["failover_gap_ms"]["equals"] is None  # what made the parse fail
    again = verdicts.parse(stored, "expect: of a stored run", "fix it")
    assert again == scenario.expect
