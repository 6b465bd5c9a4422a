"""The cluster's pure parts and its checks before any trial: which cluster --cluster
names, the trials' shuffled order, which workers were lost under a trial, and the one
clear error for a worker that cannot run trials or a scheduler or host out of reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import connect
from harness.cluster.gather import lost_workers, trial_tasks
from harness.cluster.trial import TrialResult, TrialTask, command, pack, unpack
from harness.errors import ConfigError
from harness.scenario.suite_runner import Options, prepare

from ..conftest import SCENARIOS

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize(("text", "spec"), [
    ("ssh://a,b", connect.ClusterSpec("ssh", hosts=("a", "b"))),
    ("ssh://a", connect.ClusterSpec("ssh", hosts=("a",))),
    ("tcp://sched", connect.ClusterSpec("tcp", address="tcp://sched:8786")),
    ("tcp://sched:9000", connect.ClusterSpec("tcp", address="tcp://sched:9000")),
    ("local://3", connect.ClusterSpec("local", workers=3)),
])
def test_cluster_names(text, spec):
    assert connect.parse(text) == spec
    assert connect.parse(spec.describe()) == spec


@pytest.mark.parametrize("text", ["sched:8786", "ssh://", "ssh://,", "tcp://s:x",
                                  "local://0", "local://two", "http://s"])
def test_a_cluster_name_that_is_none_says_how_to_write_one(text):
    with pytest.raises(ConfigError) as err:
        connect.parse(text)
    assert text in err.value.problem and "local://2" in err.value.fix


def planned(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: t\nintent: t\nruns:\n  - scenario: {SCENARIOS}/path-cut.yaml\n"
                     "    repeat: 3\n    sweep: {traffic.rate: [20M, 10M, 5M]}\n")
    plan = prepare(suite, Options(out=tmp_path / "out"))
    return plan


def test_every_trial_is_a_task_once_in_an_order_the_seed_repeats(tmp_path):
    plan = planned(tmp_path)
    one = trial_tasks(plan, plan.runs, "auto", 900, seed=7)
    again = trial_tasks(plan, plan.runs, "auto", 900, seed=7)
    other = trial_tasks(plan, plan.runs, "auto", 900, seed=8)
    pairs = [(t.label, t.trial) for t in one]
    assert sorted(pairs) == sorted((r.label, k) for r in plan.runs for k in (1, 2, 3))
    assert pairs == [(t.label, t.trial) for t in again] != [(t.label, t.trial) for t in other]
    assert pairs != sorted(pairs)  # shuffled: not run after run, trial after trial
    assert len({t.key for t in one}) == 9
    assert one[0].params["traffic.rate"] in ("20M", "10M", "5M")
    assert "path-cut" in one[0].scenario_text


def test_a_trial_command_is_the_users_own_and_dies_with_its_worker(tmp_path):
    task = TrialTask("k", "01-x", 2, "x.yaml", "", {"miimon": "50"}, {}, "uml", 300.0)
    argv = command(task, tmp_path / "x.yaml", tmp_path / "run")
    assert argv[:4] == ["setpriv", "--pdeathsig", "TERM", "--"]
    assert argv[5:8] == ["-m", "harness", "run"]
    assert "--repeat" in argv and argv[argv.index("--repeat") + 1] == "1"
    assert argv[argv.index("--param") + 1] == "miimon=50"
    assert argv[argv.index("--lab") + 1] == "uml"


def test_the_workers_lost_under_a_trial_are_the_other_starts():
    done = TrialResult("k", "h2", "tcp://b:2", 0, "", 1.0, b"")
    starts = [{"key": "k", "host": "h1", "worker": "tcp://a:1"},
              {"key": "k", "host": "h2", "worker": "tcp://b:2"}]
    assert lost_workers(starts, done) == [{"host": "h1", "worker": "tcp://a:1"}]
    assert lost_workers(starts[1:], done) == []


def test_a_trial_folder_travels_whole_and_nothing_lands_outside(tmp_path):
    run = tmp_path / "run"
    (run / "trial-001").mkdir(parents=True)
    (run / "trial-001" / "events.csv").write_text("t_ns,kind\n")
    (run / "metadata.json").write_text("{}")
    unpack(pack(run), tmp_path / "back")
    assert (tmp_path / "back" / "trial-001" / "events.csv").read_text() == "t_ns,kind\n"
    unpack(pack(tmp_path / "absent"), tmp_path / "empty")  # a trial that wrote nothing
    assert not any((tmp_path / "empty").iterdir())


def test_a_scheduler_out_of_reach_is_named_with_how_to_start_one(monkeypatch):
    monkeypatch.setattr(connect, "CONNECT_S", 1.0)
    spec = connect.parse("tcp://127.0.0.1:9")  # discard: nothing listens
    with pytest.raises(ConfigError) as err, connect.client_for(spec):
        pass
    assert "tcp://127.0.0.1:9" in err.value.problem and "dask worker" in err.value.fix


def test_an_ssh_host_out_of_reach_is_named_before_anything_starts():
    with pytest.raises(ConfigError) as err:
        connect._check_ssh_host("redlab-no-such-host.invalid", "python3")
    assert "redlab-no-such-host.invalid" in err.value.problem


def test_a_worker_without_the_lab_resource_is_refused():
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as c, \
            distributed.Client(c) as client, pytest.raises(ConfigError) as err:
        connect.check_workers(client)
    assert "offers no 'lab' resource" in err.value.problem
    assert "--resources lab=1" in err.value.fix


def test_a_worker_without_redlab_set_up_is_named_with_the_set_up_command(monkeypatch):
    monkeypatch.setattr(connect, "worker_facts",
                        lambda: {"host": "w1", "python": "p", "missing": ["redlab-probe"]})
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                                  resources={"lab": 1}) as c, \
            distributed.Client(c) as client, pytest.raises(ConfigError) as err:
        connect.check_workers(client)
    assert "host w1" in err.value.problem and "redlab-probe" in err.value.problem
    assert "scripts/bootstrap setup" in err.value.fix


def test_a_worker_that_can_run_trials_passes():
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                                  resources={"lab": 1}) as c, \
            distributed.Client(c) as client:
        facts = connect.check_workers(client)
    (fact,) = facts.values()
    assert fact["missing"] == []


def test_a_resumed_cluster_suite_keeps_measured_trials_and_sets_aside_the_rest(tmp_path):
    from harness.cluster.gather import PARTS, ClusterSuiteRunner

    plan = planned(tmp_path)
    first, second = plan.runs[0], plan.runs[1]
    gathered = plan.root / first.label
    (gathered / PARTS).mkdir(parents=True)
    for trial, files in ((1, ("trial.json", "placement.json")), (2, ("events.csv",))):
        (gathered / f"trial-00{trial}").mkdir()
        for name in files:
            (gathered / f"trial-00{trial}" / name).write_text("{}")
    (plan.root / second.label / "trial-001").mkdir(parents=True)  # made on one machine
    runner = ClusterSuiteRunner(plan, None, connect.parse("local://1"), "auto", 900)
    assert runner._resumed_trials(first) == {1}
    assert (plan.root / "incomplete" / first.label / "trial-002" / "events.csv").is_file()
    assert runner._resumed_trials(second) == set()
    assert not (plan.root / second.label).exists()
    assert (plan.root / "incomplete" / second.label / "trial-001").is_dir()
    assert runner._resumed_trials(plan.runs[2]) == set()


def test_a_worker_boots_its_shared_guest_only_for_trials_that_need_one():
    from harness.cluster.worker_guest import needs_guest
    from harness.lab import capabilities

    assert not needs_guest(SCENARIOS / "path-cut.yaml", {}, "auto")  # veth and a bridge
    assert needs_guest(SCENARIOS / "bond-active-backup.yaml", {}, "auto") == (
        not capabilities.probe("bonding"))
    assert not needs_guest(SCENARIOS / "bond-active-backup.yaml", {}, "native")
