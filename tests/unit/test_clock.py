"""What a run records of the machine's clock (harness/lab/clock.py)."""

from __future__ import annotations

import json

from harness.lab import clock


def test_the_clock_read_here(monkeypatch):
    monkeypatch.delenv(clock.CLOCK_ENV, raising=False)
    facts = clock.facts()
    source = clock.SOURCE.read_text().strip() if clock.SOURCE.exists() else ""
    assert facts["source"] == source
    assert facts["synchronized"] in (True, False, None)
    assert set(facts["sync_daemons"]) <= set(clock.DAEMONS)


def test_a_guest_records_the_clock_of_its_host(monkeypatch):
    host = {"source": "kvm-clock", "synchronized": True, "sync_daemons": ["chronyd"]}
    monkeypatch.setenv(clock.CLOCK_ENV, json.dumps(host))
    assert clock.facts() == host
