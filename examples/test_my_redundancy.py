"""Your own redundancy checks, under plain pytest, with RedLab's ``redlab`` fixture.

Installing RedLab registers the fixture (a pytest11 plugin): copy this file beside your
own tests and run

    pytest examples/test_my_redundancy.py --junitxml=redundancy.xml -o junit_family=xunit1

Each trial's figures land in the XML as properties of its test case, named
01-bond-active-backup.trial1.failover_gap_ms and so on (xunit1: xunit2, pytest's
default, has no place for them), and each run's folder (summary.csv, events, plots) in
the test's tmp_path, or under --redlab-results DIR.  The labs are real: kernel bonds
and keepalived, natively or inside User-mode Linux when this kernel lacks a module.
Each trial takes 20-30 s; these two tests run 6 trials, about 2.5 minutes.
"""


def test_active_backup_fails_over_within_150_ms(redlab):
    # the bond's own check: miimon 100 ms, so the gap is one MII period plus the switch
    summary = redlab.run("scenarios/bond-active-backup.yaml", params={"miimon": 100},
                         repeat=3, expect={"failover_gap_ms": {"max": 150}})
    assert summary.verdict == "pass", summary.failed
    assert summary["recovered_before_restore"].all()
    # a figure of your own: the traffic kept at least half its rate during the failure
    assert (summary["throughput_during_mbps"] >= 0.5 * summary["throughput_before_mbps"]).all()


def test_the_backup_router_takes_the_gateway_within_half_a_second(redlab):
    # advert_int 0.1 s: keepalived's master down interval is 3 x 0.1 s plus skew, 0.36 s
    summary = redlab.run("vrrp-master-death", params={"advert_int": 0.1}, repeat=3)
    assert (summary["vrrp_new_master"] == "r2").all()
    assert summary["failover_gap_ms"].median() < 500
