"""Inside a UML guest: a Linux 802.3ad bond against an Open vSwitch LACP LAG.

    network namespace (helper process)       root namespace
    +------------------------------+        +---------------------------------+
    | bond0  802.3ad, lacp_rate    |        | br0  OVS, datapath system or    |
    |        fast, miimon 100      |        |      netdev                     |
    |   v1 ------------------------+--veth--+-- p1   lag0: lacp=active,       |
    |   v2 ------------------------+--veth--+-- p2   balance-tcp, lacp-time   |
    +------------------------------+        |        fast                     |
                                            +---------------------------------+

Run by tests/lab/test_lacp_parse.py as ``python -m tests.lacp_pair <datapath>`` in a guest
booted with ``start_ovs=True`` and the bonding, veth and tun modules.  It polls until
both ends agree (harness.tech.lacp.check.wait_negotiated) or the LACP timeout passes, then
prints one JSON object with the raw texts both ends printed, so the host checks them
with the same parsers and keeps them for a reader.

On the kernel datapath the first bridge is created only after 10 s of uptime: before
that ovs-vswitchd 3.1 gives the new datapath no upcall handler and drops every LACPDU
(harness/tech/lacp/ovs.py says why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pyroute2 import IPRoute

from harness import timeouts
from harness.errors import LabError
from harness.tech.lacp import check as lacp_check
from harness.tech.lacp import linux as lacp_linux
from harness.tech.lacp import ovs as lacp_ovs
from harness.tech.ovs.ctl import vsctl

BOND, LAG, BRIDGE = "bond0", "lag0", "br0"
LINKS = {"v1": "p1", "v2": "p2"}  # bond member -> OVS LAG member, cabled by a veth pair
KERNEL_DP_MIN_UPTIME_S = 10.5
BOND_8023AD = 4


def uptime_s() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def output(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          timeout=timeouts.OVS_COMMAND + 1)
    return done.stdout + done.stderr


def build(ns_path: str, datapath: str) -> None:
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        with IPRoute() as root:
            for bond_side, ovs_side in LINKS.items():
                root.link("add", ifname=ovs_side, kind="veth",
                          peer={"ifname": bond_side, "net_ns_fd": fd})
    finally:
        os.close(fd)
    with IPRoute(netns=ns_path, flags=0) as ns:
        ns.link("add", ifname=BOND, kind="bond", bond_mode=BOND_8023AD, bond_miimon=100,
                bond_ad_lacp_rate=1)
        bond = ns.link_lookup(ifname=BOND)[0]
        for member in LINKS:
            ns.link("set", index=ns.link_lookup(ifname=member)[0], master=bond)
            ns.link("set", index=ns.link_lookup(ifname=member)[0], state="up")
        ns.link("set", index=bond, state="up")
    with IPRoute() as root:
        for port in LINKS.values():
            root.link("set", index=root.link_lookup(ifname=port)[0], state="up")
    vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, f"datapath_type={datapath}",
          "--", "add-bond", BRIDGE, LAG, *LINKS.values(), "lacp=active",
          "bond_mode=balance-tcp", "other_config:lacp-time=fast")


def main(datapath: str) -> int:
    started = uptime_s()
    if datapath == "system":
        timeouts.wait_for("10 s of uptime before the first kernel datapath",
                          lambda: uptime_s() >= KERNEL_DP_MIN_UPTIME_S,
                          KERNEL_DP_MIN_UPTIME_S + 5, 0.05)
    helper = subprocess.Popen(["unshare", "--net", "sleep", "600"], stdin=subprocess.DEVNULL)
    try:
        ns_path = f"/proc/{helper.pid}/ns/net"
        own = os.readlink("/proc/self/ns/net")
        timeouts.wait_for("the helper's own network namespace",
                          lambda: os.readlink(ns_path) != own, timeouts.PROCESS_EXIT)
        report: dict[str, object] = {"datapath": datapath, "uptime_at_start_s": started,
                                     "uptime_at_bridge_s": uptime_s()}
        build(ns_path, datapath)
        built = time.monotonic()
        try:
            lacp_check.wait_negotiated(lambda: (lacp_linux.read_linux(BOND, helper.pid),
                                                lacp_ovs.read_ovs(LAG)), links=LINKS)
            report["negotiated_s"] = round(time.monotonic() - built, 3)
        except LabError as exc:
            report["error"] = str(exc)
        report.update(
            linux=Path(f"/proc/{helper.pid}/net/bonding/{BOND}").read_text(),
            lacp=output("ovs-appctl", "lacp/show", LAG),
            bond=output("ovs-appctl", "bond/show", LAG),
            dpctl=output("ovs-appctl", "dpctl/show"))
        print(json.dumps(report))
        return 0 if "negotiated_s" in report else 1
    finally:
        helper.kill()
        helper.wait()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("system", "netdev"):
        sys.exit("usage: python -m tests.lacp_pair system|netdev")
    sys.exit(main(sys.argv[1]))
