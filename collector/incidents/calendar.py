"""Service calendars: how much contract time passes between two instants.

A 7x24 contract counts every second. A working-hours contract counts only its daily hours
on working days of the Chinese calendar, where statutory holidays are off and the adjusted
weekend days (调休) are working days; the ``chinese-calendar`` package holds that table.
For a year it does not know yet, plain Monday-Friday is used and a warning is logged once;
the State Council publishes next year's table in autumn, often before a new release of the
package, so a contract can list ``holidays`` and ``workdays`` itself, and those win.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


class Calendar(Protocol):
    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when ``amount`` of contract time has passed after ``start``."""
        ...

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Contract time that passes from ``start`` to ``end`` (zero if end <= start)."""
        ...


class AlwaysOn:
    """7x24 including holidays."""

    def add(self, start: datetime, amount: timedelta) -> datetime:
        return start + amount

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))


_warned_years: set[int] = set()


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning(
                "the Chinese holiday table has no data for %d; counting Monday-Friday", day.year
            )
        return day.weekday() < 5


@dataclass(frozen=True)
class WorkingHours:
    """Working days of the Chinese calendar, ``start``-``end`` local time each day."""

    tz: ZoneInfo
    start: time = time(9, 0)
    end: time = time(18, 0)
    #: Days off and adjusted working days given in configuration; they override the table.
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    _max_days: int = field(default=3660, repr=False)

    def _working(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day in self.workdays or is_working_day(day)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if not self._working(day):
            return None
        return (
            datetime.combine(day, self.start, self.tz),
            datetime.combine(day, self.end, self.tz),
        )

    def add(self, start: datetime, amount: timedelta) -> datetime:
        local = start.astimezone(self.tz)
        day = local.date()
        left = amount
        for _ in range(self._max_days):
            window = self._window(day)
            if window is not None:
                begin = max(window[0], local)
                if begin < window[1]:
                    available = window[1] - begin
                    if left <= available:
                        return begin + left
                    left -= available
            day += timedelta(days=1)
            local = datetime.combine(day, time(0, 0), self.tz)
        raise ValueError(f"{amount} of working time does not fit in {self._max_days} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        if end <= start:
            return timedelta(0)
        a, b = start.astimezone(self.tz), end.astimezone(self.tz)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            window = self._window(day)
            if window is not None:
                lo, hi = max(window[0], a), min(window[1], b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


def make_calendar(
    kind: str,
    tz: ZoneInfo,
    hours: tuple[time, time] | None = None,
    holidays: frozenset[date] = frozenset(),
    workdays: frozenset[date] = frozenset(),
) -> Calendar:
    if kind == "7x24":
        return AlwaysOn()
    if kind == "workdays-cn":
        start, end = hours or (time(9, 0), time(18, 0))
        return WorkingHours(tz, start, end, holidays, workdays)
    raise ValueError(f"unknown calendar {kind!r} (7x24 or workdays-cn)")
