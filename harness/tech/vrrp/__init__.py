"""keepalived VRRP: options checked, keepalived.conf rendered and tested, one daemon per
router, and the lab's routers that run them.

Modules, one job each (import names from the module that holds them):

- :mod:`~harness.tech.vrrp.options`: the option model (``VrrpOptions`` with keepalived's
  own names, checked before anything exists), the sysctls a router needs, and the
  protocol's own timers (skew time, master down interval).
- :mod:`~harness.tech.vrrp.config`: keepalived.conf rendered and put through
  ``keepalived -t``; each daemon's files and command line; keepalived's version.
- :mod:`~harness.tech.vrrp.notify`: the notify FIFO, read in a thread and each state change
  stamped on the harness's clock.
- :mod:`~harness.tech.vrrp.daemon`: one router's keepalived in the foreground
  (``Keepalived``), and which virtual addresses a namespace holds.
- :mod:`~harness.tech.vrrp.plugin`: the keepalived of every VRRP router in a running lab
  (``VrrpRouters``), started, elected, restarted and stopped with it.
"""
