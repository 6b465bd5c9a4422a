"""Which kernel features this machine really has, found by trying them.

Reading ``/proc/config.gz`` or ``lsmod`` says what was built, not what works here (a
module may be missing from disk, a container may forbid it).  So every probe creates the
object itself, in a throw-away network namespace held open by an ``unshare --net``
helper process; killing the helper destroys the namespace and everything probed in it.
The kernel loads missing modules on demand when it can, exactly as a real run would.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import GenericNetlinkSocket, IPRoute
from pyroute2.netlink import genlmsg
from pyroute2.netlink.exceptions import NetlinkError

from harness import timeouts
from harness.errors import ConfigError, LabError

log = logging.getLogger(__name__)

_EXTRA = "linux-modules-extra-$(uname -r) on Ubuntu; Debian's linux-image-* already has it"
_BASE = "linux-modules-$(uname -r) on Ubuntu; Debian's linux-image-* already has it"


@dataclass(frozen=True)
class Feature:
    name: str
    module: str   # kernel module that provides it (also the name inside the UML tree)
    package: str  # where a stock distribution ships that module
    also: tuple[str, ...] = ()  # further modules a guest loads with it (no autoload there)


FEATURES: dict[str, Feature] = {
    "bonding": Feature("bonding", "bonding", _BASE),
    "openvswitch": Feature("openvswitch", "openvswitch",
                           f"{_BASE}; plus the openvswitch-switch package"),
    "netem": Feature("netem", "sch_netem", _EXTRA),
    "tbf": Feature("tbf", "sch_tbf", _BASE),  # token-bucket shaping of rate-limited links
    "team": Feature("team", "team", f"{_EXTRA}; plus libteam-utils for teamd"),
    "8021q": Feature("8021q", "8021q", _BASE),
    "bridge": Feature("bridge", "bridge", _BASE),
    # tc flower on a clsact egress hook, matching the frame's ingress device: an MC-LAG
    # leaf's split horizon (harness.tech.mclag)
    "flower": Feature("flower", "cls_flower", _BASE, also=("sch_ingress", "act_gact")),
    "veth": Feature("veth", "veth", _BASE),
}

# Every topology needs veth pairs and bridges (inside UML both are modules), so every lab
# has them; a scenario's ``requires`` names the others it needs.
LAB_BASE_FEATURES = ("veth", "bridge")
SCENARIO_FEATURES = tuple(name for name in FEATURES if name not in LAB_BASE_FEATURES)

_cache: dict[str, bool] = {}
_lock = threading.Lock()


def feature(name: str) -> Feature:
    try:
        return FEATURES[name]
    except KeyError:
        raise ConfigError(f"unknown kernel feature {name!r}",
                          f"use one of: {', '.join(FEATURES)}") from None


def probe(name: str) -> bool:
    """Whether the running kernel can create ``name`` right now (cached per process)."""
    return not missing([name])


def missing(names: Iterable[str]) -> list[str]:
    """The features among ``names`` this kernel cannot provide, in the order given."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        feature(name)
    with _lock:
        unknown = [name for name in wanted if name not in _cache]
        if unknown:
            _cache.update(_probe_all(unknown))
        return [name for name in wanted if not _cache[name]]


def _probe_all(names: list[str]) -> dict[str, bool]:
    results: dict[str, bool] = {}
    link_features = [name for name in names if name not in ("openvswitch", "flower")]
    if "openvswitch" in names:
        results["openvswitch"] = _genl_family_exists("ovs_datapath")
    if link_features or "flower" in names:
        with _scratch_netns() as netns, IPRoute(netns=netns, flags=0) as ipr:
            for name in link_features:
                results[name] = _PROBES[name](ipr)
                log.debug("kernel feature %s: %s", name, "yes" if results[name] else "no")
            if "flower" in names:
                results["flower"] = _probe_flower(ipr, netns)
    return results


@contextmanager
def _scratch_netns() -> Iterator[str]:
    """A network namespace that lives as long as a helper process; no /var/run/netns entry."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise LabError("cannot probe kernel features: the unshare command is missing",
                       "apt-get install util-linux")
    # sleep outlives any probe; the helper is killed in finally, so the figure is only a
    # backstop for a probe process that itself is SIGKILLed.
    helper = subprocess.Popen([unshare, "--net", "sleep", "3600"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        own = os.readlink("/proc/self/ns/net")
        path = f"/proc/{helper.pid}/ns/net"

        def unshared() -> bool:
            if helper.poll() is not None:
                err = helper.stderr.read().decode(errors="replace") if helper.stderr else ""
                raise LabError(f"cannot create a network namespace to probe kernel features:"
                               f" {err.strip()}", "run as root on a kernel with network"
                               " namespaces (CONFIG_NET_NS)")
            return os.readlink(path) != own

        timeouts.wait_for("the probe helper to enter its network namespace", unshared,
                          timeouts.PROCESS_EXIT)
        yield path
    finally:
        helper.kill()
        helper.wait()
        if helper.stderr:
            helper.stderr.close()


def _creates(ipr: IPRoute, **link: object) -> bool:
    try:
        ipr.link("add", **link)
    except NetlinkError as exc:
        log.debug("probe link %s: %s", link.get("kind"), exc)
        return False
    return True


def _probe_veth(ipr: IPRoute) -> bool:
    return bool(ipr.link_lookup(ifname="pv0")) or _creates(ipr, ifname="pv0", kind="veth",
                                                            peer="pv1")


def _probe_vlan(ipr: IPRoute) -> bool:
    # A VLAN needs a parent: a veth if the kernel has them, else a dummy.
    parent = "pv0" if _probe_veth(ipr) else ("pd0" if _creates(ipr, ifname="pd0",
                                                                kind="dummy") else None)
    if parent is None:
        return False
    return _creates(ipr, ifname="pq0", kind="vlan", link=ipr.link_lookup(ifname=parent)[0],
                    vlan_id=7)


def _qdisc(kind: str, **options: object) -> Callable[[IPRoute], bool]:
    """A probe that installs qdisc ``kind`` on a fresh veth (each probe its own veth)."""
    def probe(ipr: IPRoute) -> bool:
        name = f"pq{kind}"[:15]
        if not _creates(ipr, ifname=name, kind="veth", peer=f"{name}p"[:15]):
            return False
        try:
            ipr.tc("add", kind, ipr.link_lookup(ifname=name)[0], handle="1:", **options)
        except NetlinkError as exc:
            log.debug("probe %s: %s", kind, exc)
            return False
        return True  # the qdisc goes with the namespace
    return probe


def _probe_flower(ipr: IPRoute, netns: str) -> bool:
    """A flower filter matching the ingress device, on a veth's egress (pyroute2 has no
    flower: tc itself asks, as the MC-LAG agent does)."""
    if not _creates(ipr, ifname="pf0", kind="veth", peer="pf1"):
        return False
    tc = shutil.which("tc")
    nsenter = shutil.which("nsenter")
    if tc is None or nsenter is None:
        return False
    for argv in (["qdisc", "add", "dev", "pf0", "clsact"],
                 ["filter", "add", "dev", "pf0", "egress", "pref", "1", "protocol", "all",
                  "flower", "indev", "pf1", "action", "drop"]):
        done = subprocess.run([nsenter, f"--net={netns}", tc, *argv], capture_output=True,
                              timeout=timeouts.SYSCTL, check=False)
        if done.returncode != 0:
            log.debug("probe flower: %s", done.stderr.decode(errors="replace").strip())
            return False
    return True


def _genl_family_exists(family: str) -> bool:
    # Asking the kernel for the family also makes it load the module that registers it
    # (MODULE_ALIAS_GENL_FAMILY), so no separate modprobe is needed.
    sock = GenericNetlinkSocket()
    sock.asyncore.module_err_level = "debug"  # a missing family is an answer, not an error
    try:
        sock.bind(family, genlmsg)
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENOTSUP):
            raise
        return False
    finally:
        sock.close()
    return True


_PROBES: dict[str, Callable[[IPRoute], bool]] = {
    "bonding": lambda ipr: _creates(ipr, ifname="pb0", kind="bond", bond_mode=1),
    "team": lambda ipr: _creates(ipr, ifname="pt0", kind="team"),
    "bridge": lambda ipr: _creates(ipr, ifname="pbr0", kind="bridge"),
    "veth": _probe_veth,
    "8021q": _probe_vlan,
    "netem": _qdisc("netem", delay=1000),
    "tbf": _qdisc("tbf", rate="10mbit", burst=16384, latency="50ms"),
}
