"""Reading SNMP values defensively: what every SNMP measurement in the agent shares.

Why a module of its own: recorded devices return numbers as strings ("15 PERCENT"), strings
with NULs, CR/LF and wrapping quotes, sentinels instead of readings, and rows with holes. Each
helper here turns one such value into a clean Python value or ``None``; callers turn ``None``
into an UNKNOWN result *with a reason for that one item*, never into an exception that would
cost every other item of the collection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from agent.snmp_client import SnmpValue

MAX_VALUE_LEN = 200
MAX_FACT_LEN = 1000

#: "15 PERCENT", "15%", "15", " 15.5 " (Hikvision cameras report usage as such strings).
_NUMBER_TEXT = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*(?:%|percent)?\s*", re.IGNORECASE)


def text(value: SnmpValue | None) -> str:
    """A display string for any SNMP value: octet strings are decoded as UTF-8 (undecodable
    bytes replaced, not fatal), NULs dropped and surrounding whitespace trimmed."""
    if value is None:
        return ""
    raw = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return raw.replace("\x00", "").strip()


def descr_lines(value: SnmpValue | None) -> list[str]:
    """sysDescr as readable lines: some agents store it with CR/LF and wrapping quotes."""
    body = text(value)
    if len(body) >= 2 and body[0] == body[-1] == '"':
        body = body[1:-1]
    lines = (" ".join(line.split()) for line in body.splitlines())
    return [line for line in lines if line]


def as_int(value: SnmpValue | None) -> int | None:
    """An INTEGER/Gauge/Counter, or a string holding only an integer; otherwise ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if value is None or isinstance(value, float):
        return None
    try:
        return int(text(value))
    except ValueError:
        return None


def as_number(value: SnmpValue | None) -> float | None:
    """A number from an integer or from text such as "15 PERCENT" or "41.5"; else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _NUMBER_TEXT.fullmatch(text(value))
    return float(match.group(1)) if match else None


def as_percent(value: SnmpValue | None) -> float | None:
    """A usage percentage 0–100 (see :func:`as_number`); anything outside is not a reading."""
    number = as_number(value)
    return number if number is not None and 0 <= number <= 100 else None


def column(rows: Iterable[tuple[str, SnmpValue]], oid: str) -> dict[str, SnmpValue]:
    """Walk result of one table column keyed by row index (the OID suffix)."""
    cut = len(oid) + 1
    return {row_oid[cut:]: value for row_oid, value in rows}


def index_key(index: str) -> tuple[int, ...]:
    """Sort key of a row index ("10.2" after "9.7"), tolerant of odd arcs."""
    return tuple(int(p) for p in index.split(".") if p.isdigit())


def unique_items(labels: Mapping[str, str]) -> dict[str, str]:
    """Item name per row index: the label, and ``label#index`` where several rows share one
    (an item must be unique per target and check, or two components would share incidents)."""
    repeated = Counter(labels.values())
    return {i: f"{label}#{i}" if repeated[label] > 1 else label for i, label in labels.items()}


def clip(value: str, limit: int = MAX_VALUE_LEN) -> str:
    return value[:limit]
