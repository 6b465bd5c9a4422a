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


class RootLab:
    """What counters.snapshot asks of a lab, for a node in this process's namespace."""

    def netns(self, node):
        return None

    def ifname(self, node, intf):
        return intf


def test_a_snapshot_reads_the_kernels_counters_by_interface_and_zero_for_a_missing_one():
    import socket

    group = counters.Group("here", "lo-group", ("lo", "gone0"))
    before = counters.snapshot(RootLab(), group)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(5):
            sock.sendto(b"x" * 100, ("127.0.0.1", 9))
    after = counters.snapshot(RootLab(), group)
    assert after["lo"]["tx_packets"] - before["lo"]["tx_packets"] >= 5
    assert after["lo"]["tx_bytes"] - before["lo"]["tx_bytes"] >= 5 * 100
    assert after["lo"]["rx_packets"] - before["lo"]["rx_packets"] >= 5  # lo hears itself
    assert after["gone0"] == dict.fromkeys(counters.COUNTERS, 0)


def test_snapshots_read_each_node_once_for_all_its_groups(monkeypatch):
    reads = []
    real = counters.net_dev

    def counted(lab, node):
        reads.append(node)
        return real(lab, node)

    monkeypatch.setattr(counters, "net_dev", counted)
    groups = [counters.Group("here", "a", ("lo",)), counters.Group("here", "b", ("gone0",))]
    taken = counters.snapshots(RootLab(), groups)
    assert reads == ["here"]
    assert set(taken) == {"here:a", "here:b"}
    assert taken["here:a"]["lo"]["rx_bytes"] >= 0
    assert taken["here:b"]["gone0"] == dict.fromkeys(counters.COUNTERS, 0)
