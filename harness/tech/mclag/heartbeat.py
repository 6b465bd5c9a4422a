"""Heartbeat frames and the sockets an MC-LAG agent listens on: raw Ethernet on the peer
link and the keepalive link, and link/FDB notifications from netlink.

- Heartbeats: raw Ethernet (AF_PACKET) to 01:80:c2:00:00:0e (a Linux bridge never
  forwards 01:80:c2:00:00:0X, so they stay on the link), ethertype 0x88B5 (IEEE 802
  local experimental), a JSON payload. Received with ETH_P_ALL, as taps are, before the
  bridge's rx_handler takes the frame; a classic BPF filter on the socket keeps every
  other frame (the data plane crossing the peer link) in the kernel.
- Notifications: a plain netlink socket (see :class:`LinkWatch`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import logging
import socket
import struct
from typing import Any

from pyroute2.netlink.rtnl import RTMGRP_LINK, RTMGRP_NEIGH
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from harness.tech.mclag.control import Message

log = logging.getLogger("redlab.mclag.agent")

ETH_P_ALL = 0x0003
ETHERTYPE = 0x88B5
DESTINATION = bytes.fromhex("0180c200000e")
MIN_FRAME, MAX_FRAME = 60, 1514  # Ethernet without FCS; 1514: a 1500-byte MTU
PACKET_OUTGOING = 4              # sockaddr_ll.sll_pkttype of a frame this host sent
SO_ATTACH_FILTER = 26
AF_BRIDGE = 7
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
# ldh [12]; jeq #ETHERTYPE, accept, drop (tcpdump -dd 'ether proto 0x88b5')
BPF_OURS = ((0x28, 0, 0, 12), (0x15, 0, 1, ETHERTYPE), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0))


def encode_frame(source: bytes, message: Message) -> bytes:
    """The frame that carries ``message`` from the interface whose MAC is ``source``.

    One frame must hold it (about 60 MACs in 1500 bytes): the MACs that do not fit are
    left out, and the peer floods to them instead of sending them the short way."""
    body = dataclasses.asdict(message)
    while True:
        payload = json.dumps(body, separators=(",", ":")).encode()
        if 14 + len(payload) <= MAX_FRAME or not any(body["macs"].values()):
            break
        label = max(body["macs"], key=lambda k: len(body["macs"][k]))
        body["macs"][label] = body["macs"][label][:-1]
    if body != dataclasses.asdict(message):
        log.warning("heartbeat too long for one frame: some learned MACs left out")
    frame = DESTINATION + source + struct.pack("!H", ETHERTYPE) + payload
    return frame.ljust(MIN_FRAME, b"\0")


def decode_frame(frame: bytes) -> Message | None:
    """The message in a heartbeat frame; None for any other frame; ValueError if a
    heartbeat's payload is malformed."""
    if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != ETHERTYPE:
        return None
    try:
        return Message(**json.loads(frame[14:].rstrip(b"\0")))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:  # TypeError: no object
        raise ValueError(f"heartbeat payload is not a JSON object: {exc}") from None


class HeartbeatPort:
    """One path's raw socket: sends heartbeats on ``ifname``, receives the peer's."""

    def __init__(self, path: str, ifname: str) -> None:
        self.path, self.ifname = path, ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                  socket.htons(ETH_P_ALL))
        # struct sock_filter {u16 code; u8 jt, jf; u32 k}; struct sock_fprog {u16; ptr}
        program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i)
                                                       for i in BPF_OURS))
        fprog = struct.pack("HL", len(BPF_OURS), ctypes.addressof(program))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        self.sock.bind((ifname, ETH_P_ALL))
        self.mac: bytes = self.sock.getsockname()[4]

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Message) -> None:
        try:
            self.sock.send(encode_frame(self.mac, message))
        except OSError as exc:  # ENETDOWN while the link is down: nothing goes out, as cut
            log.debug("no heartbeat on %s: %s", self.ifname, exc)

    def receive(self) -> list[bytes]:
        """Every frame waiting, less those this host sent (ETH_P_ALL sees them too)."""
        frames = []
        while True:
            try:
                frame, address = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return frames
            except OSError as exc:  # ENETDOWN, once, when the interface goes down
                log.debug("%s: %s", self.ifname, exc)
                return frames
            if address[2] != PACKET_OUTGOING:
                frames.append(frame)


class LinkWatch:
    """Link and neighbour (bridge FDB) notifications on a plain netlink socket, decoded by
    pyroute2. Not ``IPRoute().bind()``: pyroute2 0.9 reads its socket through asyncio and
    queues what one ``get()`` read beyond the first message, where select cannot see it
    (tried: of four link changes, two came out)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                  socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_NEIGH))
        self.marshal = MarshalRtnl()

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[Any], bool]:
        """The messages waiting, and whether some were lost (the socket overran)."""
        messages: list[Any] = []
        while True:
            try:
                messages += self.marshal.parse(self.sock.recv(1 << 16))
            except (BlockingIOError, InterruptedError):
                return messages, False
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                return messages, True
