"""Per-member counters: the difference over a trial, shares and how many members carried."""

from harness.measure import counters


def test_difference_shares_and_members_used():
    group = counters.Group("srv", "bond0", ("eth0", "eth1"))
    zero = {k: 0 for k in counters.COUNTERS}
    before = {"eth0": dict(zero, tx_bytes=1000), "eth1": dict(zero, tx_bytes=500)}
    after = {"eth0": dict(zero, tx_bytes=76_000, tx_packets=50),
             "eth1": dict(zero, tx_bytes=25_500, tx_packets=17)}
    rows = counters.difference(group, before, after)
    assert [(r.member, r.tx_bytes, r.tx_share) for r in rows] == [
        ("eth0", 75_000, 0.75), ("eth1", 25_000, 0.25)]
    assert counters.spread(rows, "tx") == "eth0 75% / eth1 25%"
    assert counters.members_used(rows, "tx") == 2
    assert counters.members_used(rows, "tx", floor=0.3) == 1
    # nothing sent: shares are zero, not a division error
    assert all(r.rx_share == 0 for r in rows)
