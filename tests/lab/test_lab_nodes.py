"""Lab nodes without shells (harness/lab/nodes.py): each host is a network namespace of
its own, held by a fork of redlab-netns, that programs enter with ``mnexec -a`` and see
their own /sys in; nothing types into it; and the netlink socket opened inside it leaves
the calling thread where it was. Natively, on the ``path`` topology (cli - sw - srv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.errors import LabError
from harness.journal import Journal
from harness.lab.running import Lab
from harness.naming import new_run_id
from harness.topology.loader import build_topology

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]


def netns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_each_host_is_a_namespace_of_its_own_held_without_a_shell(tmp_path: Path) -> None:
    here = netns("thread-self")
    run_id = new_run_id()
    with Journal(run_id) as journal:
        topo, _ = build_topology("path", {})
        with Lab(topo, run_id, journal, workdir=tmp_path) as lab:
            pids = {node: lab.pid(node) for node in ("cli", "srv", "sw")}
            for pid in pids.values():
                assert Path(f"/proc/{pid}/comm").read_text().strip() == "redlab-netns"
                assert os.getpgid(pid) == pid  # the journal kills its process group
            assert netns(pids["sw"]) == here  # a switch stays in the root namespace
            assert len({netns(pids["cli"]), netns(pids["srv"]), here}) == 3
            # the socket opened inside cli's namespace left this thread where it was
            assert lab.ipr("cli").link_lookup(ifname="eth0")
            assert netns("thread-self") == here
            # a program in srv sees srv's interfaces and srv's /sys, as under mnexec -n
            out, _ = lab.popen("srv", ["ls", "/sys/class/net"],
                               stdout=subprocess.PIPE).communicate(timeout=10)
            assert sorted(out.decode().split()) == ["eth0", "lo"]
            mac = lab.ipr("srv").get_links(ifname="eth0")[0].get("IFLA_ADDRESS")
            out, _ = lab.popen("srv", ["cat", "/sys/class/net/eth0/address"],
                               stdout=subprocess.PIPE).communicate(timeout=10)
            assert out.decode().strip() == mac
            with pytest.raises(LabError, match="has no shell"):
                lab.net.get("cli").cmd("ifconfig", "lo", "up")
    for node, pid in pids.items():  # gone, and reaped: no zombie under any name
        assert not Path(f"/proc/{pid}").exists(), node
