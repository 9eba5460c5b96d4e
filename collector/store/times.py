"""Time handling shared by the store modules."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything in fieldmon is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    value = utc(dt)
    return value.isoformat().replace("+00:00", "Z") if value else None
