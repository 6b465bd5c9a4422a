"""Linux kernel bonds.

- :mod:`~harness.tech.bond.options`: the option vocabulary (names, kinds, ranges, the
  modes that take each) and the check that turns a bond's options into typed settings;
- :mod:`~harness.tech.bond.params`: topology parameters derived from that vocabulary;
- :mod:`~harness.tech.bond.netlink`: creating, starting and reading a bond back through
  pyroute2;
- :mod:`~harness.tech.bond.status`: the bonding driver's status file, which watchers poll;
- :mod:`~harness.tech.bond.prediction`: the link monitor's window (MII or ARP) when
  members lose carrier.
"""
