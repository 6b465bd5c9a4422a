"""Choosing the host CPU a User-mode Linux guest is held on (harness/lab/uml_cpu.py)."""

from __future__ import annotations

import pytest

from harness.lab import uml_cpu


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[int, set[int]]:
    """pid -> affinity; pid 0 is this process, the others running guests."""
    cpus: dict[int, set[int]] = {0: {0, 1, 2, 3}}
    monkeypatch.setattr(uml_cpu.os, "sched_getaffinity", lambda pid: cpus[pid])
    monkeypatch.setattr(uml_cpu, "running_guests", lambda: [p for p in cpus if p])
    monkeypatch.setattr(uml_cpu.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv(uml_cpu.PIN_ENV, raising=False)
    return cpus


def test_the_first_guest_takes_the_highest_cpu(host: dict[int, set[int]]) -> None:
    assert uml_cpu.pinned(["linux.uml", "mem=1G"]) == [
        "/usr/bin/taskset", "--cpu-list", "3", "linux.uml", "mem=1G"]


def test_a_cpu_held_by_a_running_guest_is_passed_over(host: dict[int, set[int]]) -> None:
    host.update({101: {3}, 102: {2}, 103: {0, 1, 2, 3}})  # 103: an unpinned guest
    assert uml_cpu.choose() == 1
    host.update({104: {1}, 105: {0}})
    assert uml_cpu.choose() == 3  # all held once: the least held, highest first


def test_only_the_cpus_this_process_may_use_are_chosen(host: dict[int, set[int]]) -> None:
    host[0] = {0, 2}
    host[101] = {2}
    assert uml_cpu.choose() == 0


@pytest.mark.parametrize("why", ["one cpu", "switched off", "no taskset"])
def test_the_command_is_left_alone_when_pinning_cannot_help(
        host: dict[int, set[int]], monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    if why == "one cpu":
        host[0] = {1}
    elif why == "switched off":
        monkeypatch.setenv(uml_cpu.PIN_ENV, "0")
    else:
        monkeypatch.setattr(uml_cpu.shutil, "which", lambda name: None)
    assert uml_cpu.pinned(["linux.uml"]) == ["linux.uml"]

