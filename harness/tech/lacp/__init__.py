"""LACP (IEEE 802.1AX) on either end of a LAG: read back, and checked for agreement.

- :mod:`~harness.tech.lacp.state`: the protocol's vocabulary, whoever reports it: the
  port state bits and their letters, a port's identity (``LacpInfo``), an aggregator.
- :mod:`~harness.tech.lacp.linux`: a Linux 802.3ad bond's view, ``/proc/net/bonding``.
- :mod:`~harness.tech.lacp.ovs`: Open vSwitch's view, ``ovs-appctl lacp/show`` and
  ``bond/show``, ``ovs-dpctl show`` (and why a young kernel datapath loses LACPDUs).
- :mod:`~harness.tech.lacp.check`: whether the two ends of one LAG negotiated.
- :mod:`~harness.tech.lacp.prediction`: the timeout a member whose LACPDUs stop is held to.
"""
