"""The lab kernel: feature probes, choosing native or UML, and running commands in UML.

Everything here is real: real network namespaces on the host, real linux.uml guests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import harness.journal
from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.journal import Journal, clean_stale
from harness.lab import capabilities, choose_lab, uml
from harness.lab.uml import GuestSpec, run_in_uml
from harness.naming import new_run_id

from ..conftest import REPO

pytestmark = pytest.mark.lab
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
needs_uml = pytest.mark.skipif(not uml.uml_available(),
                               reason="user-mode-linux (linux.uml + modules) not installed")


@pytest.fixture
def journal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal"
    monkeypatch.setattr(harness.journal, "JOURNAL_DIR", path)
    return path


@pytest.fixture
def journal(journal_dir: Path) -> Iterator[Journal]:
    journal = Journal(new_run_id()).open()
    yield journal
    journal.rollback()


def leftovers(run_id: str) -> list[str]:
    """Control folders and live linux.uml processes of run ``run_id``."""
    found = [str(p) for p in Path(tempfile.gettempdir()).glob(f"redlab-{run_id}-*")]
    marker = f"umid=redlab-{run_id}-".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():  # zombies have an empty cmdline
                found.append(f"process {cmdline.parent.name}")
        except OSError:
            continue
    return found


def run(journal: Journal, script: str, **spec: object) -> uml.GuestResult:
    return run_in_uml(GuestSpec(argv=["/bin/sh", "-c", script], cwd=REPO, **spec),
                      deadline_s=120, journal=journal, stream=False)


# -- capabilities on the host ------------------------------------------------------

@needs_root
def test_host_probe_finds_veth_and_bridge_and_leaves_no_helper() -> None:
    def children() -> set[str]:  # the session's shared guest, if any, is one already
        return set(Path(f"/proc/self/task/{os.getpid()}/children").read_text().split())

    before = children()
    capabilities._cache.clear()
    assert capabilities.probe("veth")
    assert capabilities.probe("bridge")
    assert children() <= before, "the namespace helper process outlived the probe"


@needs_root
def test_host_probe_reports_bonding_missing() -> None:
    if capabilities.probe("bonding"):
        pytest.skip("this host kernel has bonding; the CI kernel this test targets has not")
    assert "bonding" in capabilities.missing(["veth", "bonding"])


def test_unknown_feature_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bondage"):
        capabilities.probe("bondage")


# -- choosing the lab ---------------------------------------------------------------

@needs_root
def test_auto_lab_is_native_when_the_host_has_everything() -> None:
    assert choose_lab("auto", ["veth", "bridge"]) == "native"


@needs_root
@needs_uml
def test_auto_lab_falls_back_to_uml_for_bonding() -> None:
    if capabilities.probe("bonding"):
        pytest.skip("this host kernel has bonding")
    assert choose_lab("auto", ["veth", "bonding"]) == "uml"


@needs_root
def test_native_lab_without_bonding_names_module_package_and_uml() -> None:
    if capabilities.probe("bonding"):
        pytest.skip("this host kernel has bonding")
    with pytest.raises(ConfigError) as err:
        choose_lab("native", ["bonding"])
    message = str(err.value)
    assert "module bonding" in message
    assert "linux-modules" in message
    assert "--lab uml" in message


def test_unknown_lab_is_refused() -> None:
    with pytest.raises(ConfigError, match="vagrant"):
        choose_lab("vagrant", [])


# -- running in UML -----------------------------------------------------------------

@needs_uml
def test_guest_is_its_own_kernel_with_bonding(journal: Journal) -> None:
    result = run(journal, "cat /proc/version && ip link add b0 type bond mode active-backup"
                 " miimon 100 && ip -j -d link show b0")
    assert result.returncode == 0, result.stderr
    version, link_json = result.stdout.split("\n", 1)
    assert version != Path("/proc/version").read_text().strip()
    assert f"Linux version {uml.module_tree().name} " in version
    (link,) = json.loads(link_json)
    assert link["linkinfo"]["info_kind"] == "bond"
    assert link["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert link["linkinfo"]["info_data"]["miimon"] == 100


@needs_uml
def test_exit_code_stdout_and_stderr_come_back_and_stream(
        journal: Journal, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_in_uml(GuestSpec(argv=["/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
                                  cwd=REPO), deadline_s=120, journal=journal)
    assert (result.returncode, result.stdout, result.stderr) == (3, "to-out\n", "to-err\n")
    echoed = capsys.readouterr()
    assert (echoed.out, echoed.err) == ("to-out\n", "to-err\n")
    assert 0 < result.boot_s < timeouts.UML_BOOT
    assert 0 <= result.run_s < result.total_s
    assert result.boot_s + result.run_s <= result.total_s + 0.5  # guest and host clocks


@needs_uml
def test_guest_environment_is_the_one_asked_for(journal: Journal) -> None:
    result = run(journal, 'echo "$REDLAB_LAB $PYTHONDONTWRITEBYTECODE $EXTRA ${mem:-unset}"',
                 env={"EXTRA": "a b'c"})
    assert result.stdout == "uml 1 a b'c unset\n"


@needs_uml
def test_writable_folder_reaches_host_and_root_stays_read_only(
        journal: Journal, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    forbidden = REPO / ".redlab-guest-must-not-write-here"
    try:
        result = run(journal, f"echo from-guest > {out}/file && touch {forbidden}; echo $?",
                     writable=[out])
        assert (out / "file").read_text() == "from-guest\n"
        assert result.stdout.strip() != "0"
        assert not forbidden.exists()
    finally:
        forbidden.unlink(missing_ok=True)


@needs_uml
def test_harness_probe_inside_the_guest_autoloads_and_sees_bonding(journal: Journal) -> None:
    # No modules= on purpose: the probe's `ip link add type bond` must autoload bonding.
    code = "from harness.lab.capabilities import probe; print(probe('bonding'))"
    result = run_in_uml(GuestSpec(argv=[sys.executable, "-c", code], cwd=REPO,
                                  env={"PYTHONPATH": str(REPO)}),
                        deadline_s=120, journal=journal, stream=False)
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


@needs_uml
def test_module_missing_from_uml_tree_is_refused_by_name(journal: Journal) -> None:
    with pytest.raises(ConfigError, match="no_such_mod"):
        run(journal, "true", modules=("no_such_mod",))
    assert leftovers(journal.run_id) == []


@needs_uml
def test_module_failing_to_load_inside_guest_is_named(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uml, "missing_modules", lambda names: [])  # reach the guest's modprobe
    with pytest.raises(LabError, match="module no_such_mod did not load"):
        run(journal, "true", modules=("no_such_mod",))
    assert leftovers(journal.run_id) == []


@needs_uml
def test_deadline_kills_the_guest_and_leaves_nothing(journal: Journal) -> None:
    started = time.monotonic()
    with pytest.raises(LabError, match="did not finish within 8 s") as err:
        run_in_uml(GuestSpec(argv=["sleep", "600"], cwd=REPO), deadline_s=8, journal=journal,
                   stream=False)
    assert time.monotonic() - started < 8 + 5
    assert "console.log" in str(err.value)
    assert leftovers(journal.run_id) == []


@needs_uml
def test_kernel_that_never_reaches_init_is_killed_at_boot_timeout(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeouts, "UML_BOOT", 0.3)  # a real boot takes over a second
    with pytest.raises(LabError, match="did not reach init within 0.3 s"):
        run(journal, "true")
    assert leftovers(journal.run_id) == []


@needs_uml
def test_kernel_dying_before_the_command_reports_its_console(journal: Journal) -> None:
    with pytest.raises(LabError, match="exited before the command finished") as err:
        run(journal, "true", mem_mb=8)  # UML refuses to boot with this little memory
    assert "console.log" in str(err.value)
    assert leftovers(journal.run_id) == []


@needs_uml
def test_two_guests_at_once_are_separate_kernels(journal: Journal) -> None:
    script = "cat /proc/sys/kernel/random/boot_id; echo {}"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda tag: run(journal, script.format(tag)), ["one", "two"]))
    boot_ids = [r.stdout.split()[0] for r in results]
    assert [r.stdout.split()[1] for r in results] == ["one", "two"]
    assert boot_ids[0] != boot_ids[1]
    assert leftovers(journal.run_id) == []


@needs_uml
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one host CPU: nothing to pin")
@pytest.mark.whole_host
def test_each_guest_is_held_on_a_host_cpu_of_its_own(journal: Journal) -> None:
    """Pinned, a guest's system calls stop crossing CPUs (harness/lab/uml_cpu.py); each
    guest gets the CPU fewest running guests hold, so two guests at once on an idle host
    get different CPUs, and every host process of a guest inherits it.  Other guests may
    run meanwhile (the other test stream's shared guest): the CPUs they hold count too."""
    guests, chosen = [], []
    try:
        for _ in range(2):
            load = held_cpus()
            least = min(load[cpu] for cpu in os.sched_getaffinity(0))
            guest = uml.start_guest(GuestSpec(argv=["sleep", "60"], cwd=REPO),
                                    journal=journal, stream=False)
            guests.append(guest)
            timeouts.wait_for("the guest to start its command",
                              lambda g=guest: (g.ctl / "started").exists(), timeouts.UML_BOOT)
            held = {cpus for pid in harness.journal.group_members(guest.proc.pid)
                    if (cpus := affinity(pid))}
            assert len(held) == 1 and len(cpus := next(iter(held))) == 1, held
            chosen.append(next(iter(cpus)))
            assert load[chosen[-1]] == least, (chosen, load)
        if not load - Counter({chosen[0]: 1}):  # no guest but ours: one CPU each
            assert chosen[0] != chosen[1], chosen
    finally:
        for guest in guests:
            guest.end()
    assert leftovers(journal.run_id) == []


def held_cpus() -> Counter[int]:
    """How many running guests are held on each CPU (those held on one CPU)."""
    from harness.lab import uml_cpu

    return Counter(next(iter(cpus)) for pid in uml_cpu.running_guests()
                   if len(cpus := affinity(pid)) == 1)


def affinity(pid: int) -> frozenset[int]:
    """The CPUs ``pid`` may run on; empty once it is gone (a guest's processes come and go)."""
    try:
        return frozenset(os.sched_getaffinity(pid))
    except OSError:
        return frozenset()


# -- a host process that dies while its guest runs ----------------------------------

CHILD = """
import sys
from pathlib import Path
from harness.journal import Journal
from harness.lab.uml import GuestSpec, run_in_uml
journal = Journal(sys.argv[1]).open()  # never rolled back here: the test checks who cleans
run_in_uml(GuestSpec(argv=["sleep", "600"], cwd=Path("/")), deadline_s=600,
           journal=journal, stream=False)
"""


def start_child_guest(journal_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    run_id = new_run_id()
    child = subprocess.Popen([sys.executable, "-c", CHILD, run_id],
                             env={**os.environ, "REDLAB_JOURNAL_DIR": str(journal_dir),
                                  "PYTHONPATH": str(REPO)})
    pattern = f"redlab-{run_id}-*/started"
    timeouts.wait_for("the child's guest to start its command",
                      lambda: list(Path(tempfile.gettempdir()).glob(pattern)),
                      timeouts.UML_BOOT)
    return child, run_id


@needs_uml
def test_ctrl_c_in_host_cleans_up_before_the_journal_is_needed(journal_dir: Path) -> None:
    child, run_id = start_child_guest(journal_dir)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=timeouts.PROCESS_EXIT * 2) != 0
    assert leftovers(run_id) == []
    assert clean_stale() == []  # run_in_uml had already removed all it recorded


@needs_uml
def test_killed_host_leaves_a_guest_that_the_journal_removes(journal_dir: Path) -> None:
    """`redlab clean` on its own: the run's reaper (harness/reaper.py, which would remove
    the guest at once; tests/lab/test_killed_run.py) is killed first, as a crash of the whole
    machine's user session or a kill -9 of both would."""
    child, run_id = start_child_guest(journal_dir)
    journal_path = str(journal_dir / f"{run_id}.jsonl")
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"harness.reaper" in cmdline and journal_path.encode() in cmdline:
            os.kill(pid, signal.SIGKILL)
    child.kill()
    child.wait()
    assert leftovers(run_id), "the guest should outlive a SIGKILLed owner and reaper"
    removed = clean_stale()
    assert any(r.startswith("process ") for r in removed)
    assert any(r.startswith("path ") for r in removed)
    assert leftovers(run_id) == []


@needs_uml
def test_guest_processes_keep_their_avx_registers_across_context_switches(
        journal: Journal, tmp_path: Path) -> None:
    """The XSAVE shim (harness/lab/native/uml_xstate.c) pads UML's FPU writes: what UML
    saved must still be what it restores.  Two guest processes keep values in AVX2
    registers while UML switches between them ~100 times a second; a state restored
    short would mix their registers and break their sums."""
    if "avx2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has no AVX2")
    binary = tmp_path / "fpu_check"
    subprocess.run(["cc", "-O2", "-mavx2", "-o", str(binary),
                    str(REPO / "tests" / "data" / "uml" / "fpu_check.c")], check=True)
    n = 5_000_000_000  # about 1.5 s each on a 2026 Xeon, side by side on UML's one CPU
    result = run(journal, f"{binary} 7 {n} & {binary} 1000 {n} & wait %1 && wait %2",
                 readonly=[tmp_path])
    assert result.returncode == 0, result.stdout + result.stderr
    # sum of seed + i for i < n, modulo 2**32: what the registers must hold at the end
    # (seen once with AVX state dropped: printf itself went wrong and wrote "ok %u")
    expected = {f"ok {(n * seed + n * (n - 1) // 2) % 2**32}" for seed in (7, 1000)}
    assert set(result.stdout.split("\n")) - {""} == expected, result.stdout
