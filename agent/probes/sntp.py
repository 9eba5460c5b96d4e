"""Clock offset against an NTP server with one SNTP (RFC 4330) request.

Written here rather than pulled in as a dependency: the exchange is one 48-byte datagram each
way, and the agent needs it asynchronous with a hard timeout, which the small NTP client
libraries on PyPI do not offer.
"""

from __future__ import annotations

import asyncio
import struct
import time

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def _to_ntp(ts: float) -> bytes:
    secs = int(ts) + NTP_EPOCH_OFFSET
    frac = int((ts % 1) * 2**32)
    return struct.pack("!II", secs, frac)


def _from_ntp(raw: bytes) -> float:
    secs: int
    frac: int
    secs, frac = struct.unpack("!II", raw)
    return secs - NTP_EPOCH_OFFSET + frac / 2**32


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[tuple[bytes, float]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if not self.reply.done():
            self.reply.set_result((data, time.time()))

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def clock_offset(server: str, port: int = 123, wait: float = 2.0) -> float:
    """Seconds this host's clock is behind (+) or ahead (-) of ``server``.

    Raises TimeoutError or OSError when the server does not answer usefully, ValueError on a
    malformed or unsynchronised reply.
    """
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Exchange, remote_addr=(server, port))
    try:
        t1 = time.time()
        # LI=0, VN=4, Mode=3 (client); transmit timestamp echoed back as originate.
        packet = bytes([0x23]) + bytes(39) + _to_ntp(t1)
        transport.sendto(packet)
        data, t4 = await asyncio.wait_for(proto.reply, wait)
    finally:
        transport.close()
    if len(data) < 48:
        raise ValueError(f"NTP reply of {len(data)} bytes is too short")
    mode, stratum = data[0] & 0x7, data[1]
    if mode not in (4, 5) or stratum == 0 or stratum > 15:
        raise ValueError(f"NTP server not usable (mode {mode}, stratum {stratum})")
    if data[24:32] != _to_ntp(t1):
        raise ValueError("NTP reply does not answer our request")
    t2, t3 = _from_ntp(data[32:40]), _from_ntp(data[40:48])
    return ((t2 - t1) + (t3 - t4)) / 2
