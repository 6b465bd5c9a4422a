"""keepalived VRRP options, keepalived.conf rendering, keepalived's own check, notify lines.

Pure unit tests, except the ``keepalived -t`` ones: keepalived checks that the interface
exists, so they run it in a throw-away network namespace holding a veth pair (root only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from harness.errors import ConfigError, LabError
from harness.tech.vrrp.config import RunFiles, check_config, command, render_config
from harness.tech.vrrp.notify import NotifyFifo, StateChange, parse_notify
from harness.tech.vrrp.options import VrrpOptions, master_down_interval, skew_time

BASE = {"interface": "eth0", "virtual_router_id": 51, "virtual_ipaddress": ["192.0.2.254/24"]}


def options(**changes) -> VrrpOptions:
    return VrrpOptions(**{**BASE, **changes})


def refused(match: str, **changes) -> None:
    with pytest.raises(ConfigError, match=match):
        options(**changes)


# -- options -------------------------------------------------------------------------------
def test_defaults_are_keepalived_defaults():
    o = options()
    assert (o.version, o.advert_int, o.priority, o.state) == (2, 1.0, 100, "BACKUP")
    assert o.preempt is True and o.nopreempt is False
    assert (o.garp_master_delay, o.garp_master_repeat, o.garp_master_refresh) == (5, 5, 0)
    assert o.unicast_peer == [] and o.use_vmac is False


def test_version_2_takes_whole_seconds_only():
    refused("version 2 carries whole seconds", advert_int=0.1)
    refused("version 2 carries whole seconds", advert_int=1.5)
    refused("version 2 carries whole seconds", advert_int=256)
    assert options(advert_int=3).advert_text == "3"


def test_version_3_takes_centiseconds_from_10_ms_to_40_95_s():
    assert options(version=3, advert_int=0.01).advert_text == "0.01"
    assert options(version=3, advert_int=0.1).advert_text == "0.1"
    assert options(version=3, advert_int=40.95).advert_text == "40.95"
    refused("centiseconds", version=3, advert_int=0.005)
    refused("centiseconds", version=3, advert_int=0.015)
    refused("centiseconds", version=3, advert_int=41)


def test_out_of_range_and_unknown_options_are_named():
    refused("priority", priority=0)
    refused("priority", priority=256)
    refused("virtual_router_id", virtual_router_id=256)
    refused("version", version=4)
    refused("state", state="FAULT")
    refused("preempt_delay", preempt_delay=1001)
    refused("garp_master_repeat", garp_master_repeat=0)
    refused("garp_master_delay", garp_master_delay=-1)
    refused("advert_intt", advert_intt=1)
    refused("interface", interface="a-very-long-ifname0")


def test_nopreempt_is_the_inverse_of_preempt():
    assert options(nopreempt=True).preempt is False
    assert options(preempt=False).nopreempt is True
    refused("contradict", preempt=True, nopreempt=True)


def test_nopreempt_and_preempt_delay_need_initial_state_backup():
    refused("nopreempt needs initial state BACKUP", nopreempt=True, state="MASTER")
    refused("preempt_delay needs initial state BACKUP", preempt_delay=2, state="MASTER")
    refused("nothing|no preemption", nopreempt=True, preempt_delay=2)
    refused("priority 255", nopreempt=True, priority=255)


def test_address_families_must_agree():
    refused("IPv4 only", virtual_ipaddress=["2001:db8::1/64"])
    assert options(version=3, virtual_ipaddress=["2001:db8::1/64"]).version == 3
    refused("mixes IPv4 and IPv6", version=3,
            virtual_ipaddress=["192.0.2.254/24", "2001:db8::1/64"])
    refused("family", unicast_peer=["2001:db8::2"])
    refused("more than once", unicast_peer=["192.0.2.2", "192.0.2.2"])
    refused("more than once", virtual_ipaddress=["192.0.2.254/24", "192.0.2.254/32"])
    refused("virtual_ipaddress", virtual_ipaddress=["not-an-address"])
    refused("virtual_ipaddress", virtual_ipaddress=[])


def test_tracking_is_checked():
    refused("own interface", track_interface=["eth0"])
    refused("more than once", track_interface=["up0", "up0"])
    refused("not found", track_script="/nonexistent/check-uplink")
    refused("weight", track_script={"script": "/bin/true", "weight": 254})
    refused("interval", track_script={"script": "/bin/true", "interval": 0})
    refused("priority 255", priority=255, track_script={"script": "/bin/true", "weight": -20})
    o = options(track_interface="up0", track_script="true")
    assert o.track_interface == ["up0"] and o.track_script[0].script == "true"


def test_virtual_mac_is_the_rfc_one_only_with_use_vmac():
    assert options(virtual_router_id=51).virtual_mac is None
    assert options(virtual_router_id=51, use_vmac=True).virtual_mac == "00:00:5e:00:01:33"
    assert options(version=3, virtual_ipaddress="2001:db8::1/64", use_vmac=True,
                   virtual_router_id=7).virtual_mac == "00:00:5e:00:02:07"


# -- prediction ----------------------------------------------------------------------------
def test_master_down_interval_follows_each_rfc():
    # RFC 5798 (v3): skew scales with the advert interval; 156/256 x 0.1 s, kept in whole
    # microseconds as keepalived does
    assert skew_time(100, 0.1, 3) == 0.060937
    assert master_down_interval(100, 0.1, 3) == pytest.approx(0.360937)
    assert master_down_interval(100, 0.01, 3) == pytest.approx(0.036093)
    # RFC 3768 (v2): skew is (256 - priority)/256 s whatever the interval
    assert master_down_interval(100, 1, 2) == pytest.approx(3.609375)
    assert master_down_interval(100, 2, 2) == pytest.approx(6.609375)
    assert master_down_interval(255, 1, 2) < master_down_interval(1, 1, 2)


# -- rendering -----------------------------------------------------------------------------
def instance_lines(text: str) -> list[str]:
    body = text.split("vrrp_instance VI_1 {", 1)[1]
    return [line.strip() for line in body.splitlines()]


def test_rendered_config_carries_every_option(tmp_path):
    o = options(version=3, advert_int=0.1, priority=200, preempt_delay=1.5,
                track_interface=["up0"], track_script={"script": "/bin/true", "weight": -20},
                unicast_peer=["192.0.2.2"], use_vmac=True, garp_master_delay=0,
                garp_master_repeat=2, garp_master_refresh=10)
    text = render_config("r1", o, tmp_path / "notify.fifo")
    assert "router_id r1" in text
    assert f"vrrp_notify_fifo {tmp_path / 'notify.fifo'}" in text
    assert "enable_script_security" in text and "script_user root" in text
    assert 'script "/bin/true"' in text and "weight -20" in text
    lines = instance_lines(text)
    for want in ("state BACKUP", "interface eth0", "virtual_router_id 51", "priority 200",
                 "version 3", "advert_int 0.1", "preempt_delay 1.5", "use_vmac",
                 "vmac_xmit_base", "garp_master_delay 0", "garp_master_repeat 2",
                 "garp_master_refresh 10", "192.0.2.2", "up0", "chk_1", "192.0.2.254/24"):
        assert want in lines, want
    assert "nopreempt" not in lines


def test_rendered_config_without_scripts_or_peers_stays_plain(tmp_path):
    text = render_config("r2", options(nopreempt=True), tmp_path / "f")
    lines = instance_lines(text)
    assert "nopreempt" in lines and "use_vmac" not in lines
    assert not any(w in text for w in ("vrrp_script", "unicast_peer",
                                       "vmac_xmit_base", "track_"))


def test_command_runs_in_foreground_with_pid_files_of_its_own(tmp_path):
    a, b = RunFiles.in_folder(tmp_path / "r1"), RunFiles.in_folder(tmp_path / "r2")
    argv = command(a)
    assert argv[0] == "keepalived" and "--dont-fork" in argv and "--vrrp" in argv
    assert f"--pid={a.pid}" in argv and f"--vrrp_pid={a.vrrp_pid}" in argv
    assert not set(command(a)[1:]) & set(command(b)[1:]) - {
        "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp"}


# -- notifications -------------------------------------------------------------------------
def test_notify_lines_are_parsed():
    c = parse_notify('INSTANCE "VI_1" MASTER 200\n', "r1", 5)
    assert c == StateChange(5, "r1", "VI_1", "MASTER", 200)
    assert parse_notify('INSTANCE "VI_1" STOP', "r1", 5).priority is None
    assert parse_notify("garbage", "r1", 5) is None


def test_fifo_lines_are_stamped_when_read(tmp_path):
    got: list[StateChange] = []
    fifo = NotifyFifo(tmp_path / "n.fifo", "r1", tmp_path / "notify.log", got.append)
    fifo.start()
    try:
        before = time.time_ns()
        fd = os.open(tmp_path / "n.fifo", os.O_WRONLY | os.O_NONBLOCK)  # as keepalived does
        os.write(fd, b'INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MAS')
        os.write(fd, b'TER 100\n')
        os.close(fd)
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        after = time.time_ns()
    finally:
        fifo.stop()
    assert [c.state for c in got] == ["BACKUP", "MASTER"]
    assert all(before <= c.t_ns <= after for c in got)
    assert not (tmp_path / "n.fifo").exists()
    assert (tmp_path / "notify.log").read_text().splitlines()[1].endswith("MASTER 100")


# -- keepalived's own check ----------------------------------------------------------------
@pytest.fixture
def netns_with_eth0():
    """A throw-away network namespace (a sleeping process) with eth0 up."""
    if os.geteuid() != 0 or shutil.which("keepalived") is None:
        pytest.skip("needs root and keepalived")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not make a namespace"
            time.sleep(0.01)
        for cmd in (["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
                    ["ip", "link", "set", "eth0", "up"]):
            subprocess.run(["nsenter", f"--net={netns}", *cmd], check=True)
        yield netns
    finally:
        holder.kill()
        holder.wait()


def test_keepalived_accepts_a_rendered_config(tmp_path, netns_with_eth0):
    path = tmp_path / "keepalived.conf"
    for o in (options(), options(version=3, advert_int=0.01, nopreempt=True, use_vmac=True,
                                 unicast_peer=["192.0.2.2"], track_interface=["eth1"],
                                 track_script={"script": "/bin/true", "weight": -20})):
        path.write_text(render_config("r1", o, tmp_path / "notify.fifo"))
        check_config(path, netns_with_eth0)


def test_keepalived_complaints_are_quoted(tmp_path, netns_with_eth0):
    path = tmp_path / "keepalived.conf"
    text = render_config("r1", options(version=3, advert_int=0.1), tmp_path / "f")
    path.write_text(text.replace("version 3", "version 2"))  # what our check refuses
    with pytest.raises(ConfigError, match="must be an integer"):
        check_config(path, netns_with_eth0)
    missing = render_config("r1", options(interface="nosuch0"), tmp_path / "f")
    path.write_text(missing)
    with pytest.raises(ConfigError, match="nosuch0 .* doesn't exist"):
        check_config(path, netns_with_eth0)


def test_a_config_check_that_does_not_answer_is_one_clear_error(tmp_path, monkeypatch):
    """Seen in a starved User-mode Linux guest: keepalived -t took over 5 s, and the run
    ended in a traceback instead of an error that says what happened."""
    def too_slow(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", too_slow)
    with pytest.raises(LabError, match="did not answer within 5 s") as caught:
        check_config(tmp_path / "keepalived.conf")
    assert "too loaded" in caught.value.fix
