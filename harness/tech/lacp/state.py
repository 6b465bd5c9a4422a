"""LACP's own vocabulary, whoever reports it: the port state bits, a port's identity.

The Linux bond (:mod:`harness.tech.lacp.linux`) and Open vSwitch
(:mod:`harness.tech.lacp.ovs`) print the same LACPDU fields in their own words; both are
read into these types so that :mod:`harness.tech.lacp.check` compares them as equals.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

NO_SYSTEM = "00:00:00:00:00:00"


class PortState(IntFlag):
    """Actor/partner state octet of an LACPDU (IEEE 802.1AX-2014, 6.4.2.3)."""

    ACTIVITY = 0x01         # active LACP (else passive)
    TIMEOUT = 0x02          # short timeout: asks the partner for a PDU every second
    AGGREGATION = 0x04      # aggregatable (else individual)
    SYNCHRONIZATION = 0x08  # in the right aggregator, in sync with the partner
    COLLECTING = 0x10
    DISTRIBUTING = 0x20
    DEFAULTED = 0x40        # no PDU received: partner information is the default
    EXPIRED = 0x80          # PDUs stopped: partner information is running out

    @property
    def letters(self) -> str:
        """Eight positions, one per bit in order, a letter when set: ``ASGNCD..``."""
        return "".join(letter if self & bit else "." for bit, letter in _LETTERS)


_LETTERS = tuple(zip(PortState, "ASGNCDFE", strict=True))
LEGEND = ("A activity, S short timeout, G aggregatable, N in sync, C collecting,"
          " D distributing, F defaulted, E expired")
NEGOTIATED = PortState.SYNCHRONIZATION | PortState.COLLECTING | PortState.DISTRIBUTING
STALE = PortState.DEFAULTED | PortState.EXPIRED


@dataclass(frozen=True)
class LacpInfo:
    """One port's identity and state as carried in an LACPDU (actor or partner part)."""

    system: str            # system id (MAC), lower case
    system_priority: int
    key: int
    port: int
    port_priority: int
    state: PortState


@dataclass(frozen=True)
class Aggregator:
    """The aggregator a bond's members are in: the Linux bond's "Active Aggregator Info"."""

    id: int
    ports: int
    actor_key: int
    partner_key: int
    partner_mac: str


def int_or_zero(text: str | None) -> int:
    """A number both ends print; 0 when absent or not a number."""
    return int(text) if text and text.strip().isdigit() else 0


def int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None
