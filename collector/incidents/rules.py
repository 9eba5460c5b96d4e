"""Per-site rules the collector applies: incident policy, SLA policy and maintenance windows.

Built once from the configuration; the store asks it per site, so one collector can serve
several contracts with different levels, calendars and windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from collector.incidents.engine import Policy
from collector.incidents.sla import SlaPolicy

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """A maintenance window: one-off (``start``/``end``) or weekly (``days``/``at``/``length``)."""

    site: str
    targets: frozenset[str] = frozenset()  # empty: the whole site
    start: datetime | None = None
    end: datetime | None = None
    days: frozenset[str] = frozenset()
    at: time | None = None
    length: timedelta = timedelta(0)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    reason: str = ""

    def covers(self, site: str, target: str, when: datetime) -> bool:
        if site != self.site or (self.targets and target not in self.targets):
            return False
        if self.start is not None and self.end is not None:
            return self.start <= when < self.end
        if self.at is None:
            return False
        local = when.astimezone(self.tz)
        # A weekly window may run past midnight: check today's and yesterday's start.
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            begin = datetime.combine(day, self.at, self.tz)
            if begin <= local < begin + self.length:
                return True
        return False


@dataclass(frozen=True)
class Rules:
    policy: Policy = field(default_factory=Policy)
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    site_policy: Mapping[str, Policy] = field(default_factory=dict)
    site_sla: Mapping[str, SlaPolicy] = field(default_factory=dict)
    windows: Sequence[Window] = ()

    def policy_for(self, site: str) -> Policy:
        return self.site_policy.get(site, self.policy)

    def sla_for(self, site: str) -> SlaPolicy:
        return self.site_sla.get(site, self.sla)

    def configured_window(self, site: str, target: str, when: datetime) -> Window | None:
        for w in self.windows:
            if w.covers(site, target, when):
                return w
        return None
