"""snmpsim variation module for the demo site: values that follow the wall clock.

snmpsim loads this file itself (``--variation-modules-dir``) and calls ``variate`` for every
record tagged ``<tag>:fmdemo``. A recording written once would otherwise freeze time: the
uptime would never grow, interface counters would never move (no traffic rates) and a device
clock would fall behind the agent's by the age of the file. The record's value names what to
compute:

``uptime,boot=<epoch s>``
    sysUpTime in hundredths of a second since ``boot``.
``counter,base=<n>,rate=<per s>,since=<epoch s>,bits=<32|64>``
    an interface counter growing at ``rate`` since ``since``, wrapping like the real one.
``clock,offset=<s>,zone=<minutes east of UTC>``
    HOST-RESOURCES hrSystemDate (SNMPv2-TC DateAndTime, 11 octets) ``offset`` seconds off the
    true time, so clock drift can be injected.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any


def _settings(value: Any) -> tuple[str, dict[str, float]]:
    raw = value.decode() if isinstance(value, bytes) else str(value)
    kind, _, rest = raw.partition(",")
    out: dict[str, float] = {}
    for part in rest.split(","):
        key, sep, number = part.partition("=")
        if sep:
            out[key.strip()] = float(number)
    return kind.strip(), out


def date_and_time(moment: datetime, zone_minutes: int) -> bytes:
    """SNMPv2-TC DateAndTime with the zone octets, for ``moment`` shown in that zone."""
    local = moment.astimezone(UTC) + timedelta(minutes=zone_minutes)
    sign = "+" if zone_minutes >= 0 else "-"
    hours, minutes = divmod(abs(zone_minutes), 60)
    return (
        local.year.to_bytes(2, "big")
        + bytes([local.month, local.day, local.hour, local.minute, local.second])
        + bytes([local.microsecond // 100_000, ord(sign), hours, minutes])
    )


def compute(kind: str, settings: dict[str, float], now: float) -> tuple[str, str | int]:
    """The snmprec tag and value for one record at ``now`` (epoch seconds)."""
    if kind == "uptime":
        return "67", max(0, int((now - settings["boot"]) * 100)) % 2**32
    if kind == "counter":
        bits = int(settings.get("bits", 64))
        grown = settings.get("base", 0) + settings.get("rate", 0) * (now - settings["since"])
        return ("70" if bits == 64 else "65"), int(max(grown, 0)) % 2**bits
    if kind == "clock":
        moment = datetime.fromtimestamp(now + settings.get("offset", 0), UTC)
        return "4x", date_and_time(moment, int(settings.get("zone", 0))).hex()
    raise ValueError(f"fmdemo: unknown record kind {kind!r}")


def init(**context: Any) -> None:
    """Nothing to set up: every answer is computed from the record and the time."""


def variate(oid: Any, tag: str, value: Any, **context: Any) -> tuple[Any, str, Any]:
    """Answer one GET/GETNEXT for a ``:fmdemo`` record; SET is refused like a read-only MIB."""
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    if context["setFlag"]:
        return context["origOid"], tag, context["errorStatus"]
    kind, settings = _settings(value)
    new_tag, new_value = compute(kind, settings, time.time())
    return oid, new_tag, new_value


def shutdown(**context: Any) -> None:
    """Nothing to release."""
