"""Open vSwitch: bridges and LAGs with LACP, on the kernel or the userspace datapath.

- :mod:`~harness.tech.ovs.bridge`: the daemons, bridges and LAGs (ovs-vsctl), every LAG
  option checked and read back (the LAG vocabulary, defined once);
- :mod:`~harness.tech.ovs.ctl`: running ovs-vsctl and ovs-appctl, with timeouts and errors
  that say what to do;
- :mod:`~harness.tech.ovs.log`: LAG members enabled and disabled, from ovs-vswitchd's log;
- :mod:`~harness.tech.ovs.prediction`: carrier versus MII detection, the window a LAG's
  members losing carrier is held to;
- :mod:`~harness.tech.ovs.plugin`: Open vSwitch as a lab technology (harness.tech.base).
"""
