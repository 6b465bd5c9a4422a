"""A bond's status file as the watchers read it (harness.tech.bond.status)."""

from harness.tech.bond import status

TEXT = """Ethernet Channel Bonding Driver: v6.1

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: None
Currently Active Slave: eth1
MII Status: up
"""


def test_the_active_member_is_named_and_none_is_none():
    assert status.active_member_in(TEXT) == "eth1"
    assert status.active_member_in(TEXT.replace("eth1", "None")) is None
    assert status.active_member_in("Bonding Mode: IEEE 802.3ad Dynamic link aggregation") is None


def test_a_status_file_is_new_text_only_when_it_changed(monkeypatch):
    reads = iter([TEXT, TEXT, TEXT.replace("eth1", "eth0")])
    monkeypatch.setattr(status, "status_text", lambda pid, name: next(reads))
    watched = status.StatusFile(1, "bond0")
    assert watched.changed() == TEXT
    assert watched.changed() is None  # the same text: nothing to parse
    assert "Currently Active Slave: eth0" in (watched.changed() or "")
