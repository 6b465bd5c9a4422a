"""First-hop redundancy: two (or three) keepalived routers share the LAN's default
gateway, a virtual IP, in front of an upstream network with a server behind it.

                      srv 198.51.100.10/24   default via 198.51.100.254 (upstream VIP)
                       | eth0
                       | p0
          +------------------------------+
          |             wan              |   Linux bridge (the upstream network)
          +------------------------------+
              p1 |         p2 |        (p3)
            eth1 |       eth1 |        (r3)
      198.51.100.1           198.51.100.2
               [r1]          [r2]           routers: IPv4 forwarding, keepalived
       192.0.2.1 |    192.0.2.2 |           priority 200 / 100 (/ 50), VRID 51
            eth0 |       eth0 |
              p1 |         p2 |        (p3)
          +------------------------------+
          |             lan              |   Linux bridge
          +------------------------------+
                       | p0
                       | eth0
                      cli 192.0.2.10/24   default via 192.0.2.254 (LAN VIP)

One vrrp_instance per router, advertised on the LAN (eth0), moves two virtual addresses
together: 192.0.2.254 on eth0, the LAN's gateway, and 198.51.100.254 on eth1, the
address the upstream side routes the LAN's prefix to.  So return traffic follows the
master as well: whichever router holds the gateway also holds the way back.

What the instance watches is the point of the uplink scenarios.  keepalived always
tracks its own interface (eth0): a master whose LAN cable fails goes FAULT and the
backup takes both addresses.  The uplink (eth1) is watched only when asked for
(``track_interface=eth1``; otherwise its address is marked ``no_track``, or keepalived
would track the interface of an address given a ``dev`` on its own): without it a master whose
uplink fails stays MASTER, keeps the LAN's gateway and blackholes every packet to the
upstream network while VRRP looks healthy on the LAN.

Parameters carry keepalived's own names (keepalived.conf(5), vrrp_instance) and apply to
every router, except ``priority`` (one per router, r1 first) and ``unicast_peer`` (a
switch here: each router lists the others' LAN addresses instead of multicasting).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.tech.vrrp.options import vrrp_options
from harness.topology.model import Topology

LAN, UPSTREAM = "192.0.2", "198.51.100"  # TEST-NET-1 and -2: documentation ranges
VIP_HOST = 254
CLIENT_HOST = SERVER_HOST = 10


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routers: int = Field(2, ge=2, le=3)
    version: int = Field(3, ge=2, le=3, description="VRRP version")
    advert_int: float = Field(1.0, description="s; version 3 takes 0.01 to 40.95")
    priority: list[int] = Field([200, 100], description="one per router, r1 first")
    preempt: bool | None = None
    nopreempt: bool | None = None
    preempt_delay: float = Field(0.0, ge=0, description="s a backup waits to preempt")
    track_interface: list[str] = Field([], description="router interfaces to track, e.g."
                                                          " eth1 (the uplink)")
    track_script: str | None = None
    use_vmac: bool = False
    garp_master_delay: int = 5
    garp_master_repeat: int = 5
    garp_master_refresh: int = 0
    unicast_peer: bool = False
    virtual_router_id: int = 51

    @field_validator("priority", "track_interface", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``--param priority=200,100`` gives a string; a YAML list passes through."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _one_priority_per_router(self) -> Params:
        if len(self.priority) != self.routers:
            raise ValueError(f"priority lists {len(self.priority)} value(s) for"
                             f" {self.routers} routers: give one per router, r1 first")
        return self


def router_options(p: Params, number: int) -> dict[str, Any]:
    """keepalived options for router r<number>, checked here (a mistake is a ConfigError
    naming the option before anything exists)."""
    others = [n for n in range(1, p.routers + 1) if n != number]
    options = {
        "interface": "eth0",
        "virtual_router_id": p.virtual_router_id,
        # keepalived would track eth1 for the address on it: only if asked to here
        "virtual_ipaddress": [f"{LAN}.{VIP_HOST}/24", f"{UPSTREAM}.{VIP_HOST}/24 dev eth1"
                              + ("" if "eth1" in p.track_interface else " no_track")],
        "priority": p.priority[number - 1],
        **p.model_dump(include={"version", "advert_int", "preempt", "nopreempt",
                                "preempt_delay", "track_interface", "use_vmac",
                                "garp_master_delay", "garp_master_repeat",
                                "garp_master_refresh"}, exclude_none=True),
        "unicast_peer": [f"{LAN}.{n}" for n in others] if p.unicast_peer else [],
    }
    if p.track_script:
        options["track_script"] = p.track_script
    vrrp_options(options)
    return options


def build(p: Params) -> Topology:
    t = Topology("vrrp_gateway", __doc__ or "")
    cli, srv = t.add_host("cli"), t.add_host("srv")
    lan, wan = t.add_switch("lan"), t.add_switch("wan")
    t.add_link(cli, "eth0", lan, "p0")
    t.add_link(srv, "eth0", wan, "p0")
    t.add_address(cli, "eth0", f"{LAN}.{CLIENT_HOST}/24")
    t.add_address(srv, "eth0", f"{UPSTREAM}.{SERVER_HOST}/24")
    for n in range(1, p.routers + 1):
        router = t.add_router(f"r{n}")
        t.add_link(router, "eth0", lan, f"p{n}")
        t.add_link(router, "eth1", wan, f"p{n}")
        t.add_address(router, "eth0", f"{LAN}.{n}/24")
        t.add_address(router, "eth1", f"{UPSTREAM}.{n}/24")
        t.add_vrrp(router, **router_options(p, n))
    t.add_route(cli, "default", f"{LAN}.{VIP_HOST}")
    t.add_route(srv, "default", f"{UPSTREAM}.{VIP_HOST}")
    return t
