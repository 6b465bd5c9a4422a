"""MC-LAG: two leaf switches presenting one LACP system (a shared virtual MAC) to every
dual-homed server, with RedLab's own emulation of the pair's control plane.

No MC-LAG daemon ships for a stock Linux (Cisco vPC, Cumulus clagd and SONiC iccpd are
vendor or distribution code), so RedLab runs a small daemon of its own on each leaf,
modelled on what those pairs do; each rule's docstring names the system it follows.

Modules, one job each (import names from the module that holds them):

- :mod:`~harness.tech.mclag.options`: the pair's settings (shared system id, timers,
  policies), checked before anything exists, and its declaration in a topology.
- :mod:`~harness.tech.mclag.plugin`: the pair in a running lab, its agents started and
  stopped with it.
- :mod:`~harness.tech.mclag.control`: the control plane as a pure state machine
  (``Controller``): heartbeats in, actions out; no I/O, no clock of its own.
- :mod:`~harness.tech.mclag.agent`: the per-leaf daemon, ``python -m
  harness.tech.mclag.agent CONFIG.json``: heartbeat frames, the netlink watch of the
  leaf's bonds, and every action carried out on the leaf's kernel.
- :mod:`~harness.tech.mclag.fdb`: the leaf bridge's forwarding database (MACs learned
  here, MACs installed for the peer).
- :mod:`~harness.tech.mclag.splithorizon`: the tc filter that keeps frames from the peer
  link off a dual-homed bond.
"""
