"""SLA clocks and escalation tiers, as pure functions of an incident's clock and ``now``.

The contracts promise, per fault level, a response time, on-site time and resolve time
(defaults below follow ../shared/DOMAIN.md), counted on the contract's calendar, with the
clock stopped while the incident waits on the customer or a maintenance window runs. Tiers:
tier 1 from opening; tier 2 (the named response owner) once a configured share of the resolve
time has passed unresolved; tier 3 (the product's maintainer) before half of it has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from collector.incidents.calendar import AlwaysOn, Calendar

DeadlineKind = Literal["respond", "onsite", "restore", "resolve"]
KINDS: tuple[DeadlineKind, ...] = ("respond", "onsite", "restore", "resolve")


@dataclass(frozen=True, slots=True)
class LevelTargets:
    respond: timedelta | None
    onsite: timedelta | None
    restore: timedelta | None
    resolve: timedelta

    def get(self, kind: DeadlineKind) -> timedelta | None:
        value: timedelta | None = getattr(self, kind)
        return value


#: Level 1 system down: 2 h; level 2 severely degraded: 4 h; level 3 partial: 3 days; level 4
#: questions: 7 days; respond within 5 min (10 for levels 3-4); on site within half the time.
DEFAULT_TARGETS: Mapping[int, LevelTargets] = {
    1: LevelTargets(timedelta(minutes=5), timedelta(hours=1), None, timedelta(hours=2)),
    2: LevelTargets(timedelta(minutes=5), timedelta(hours=2), None, timedelta(hours=4)),
    3: LevelTargets(timedelta(minutes=10), None, None, timedelta(days=3)),
    4: LevelTargets(timedelta(minutes=10), None, None, timedelta(days=7)),
}


@dataclass(frozen=True)
class SlaPolicy:
    calendar: Calendar = field(default_factory=AlwaysOn)
    targets: Mapping[int, LevelTargets] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    #: Share of the resolve time after which an unresolved incident goes to tier 2 / tier 3.
    tier2_share: float = 0.25
    tier3_share: float = 0.45

    def for_level(self, level: int) -> LevelTargets:
        return self.targets.get(level) or DEFAULT_TARGETS[max(1, min(4, level))]


@dataclass(frozen=True, slots=True)
class Pause:
    start: datetime
    end: datetime | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Clock:
    """What the SLA depends on, as stored with the incident."""

    opened_at: datetime
    level: int
    pauses: Sequence[Pause] = ()
    responded_at: datetime | None = None
    onsite_at: datetime | None = None
    restored_at: datetime | None = None
    resolved_at: datetime | None = None

    def done_at(self, kind: DeadlineKind) -> datetime | None:
        if kind == "resolve":
            return self.resolved_at
        if kind == "restore":
            return self.restored_at or self.resolved_at
        value: datetime | None = getattr(
            self, f"{kind}_at" if kind != "respond" else "responded_at"
        )
        return value


def paused(clock: Clock, policy: SlaPolicy, until: datetime) -> timedelta:
    """Contract time spent paused up to ``until``."""
    total = timedelta(0)
    for p in clock.pauses:
        end = min(p.end or until, until)
        total += policy.calendar.between(p.start, end)
    return total


def elapsed(clock: Clock, policy: SlaPolicy, now: datetime) -> timedelta:
    """Contract time the incident has been running, pauses excluded."""
    end = min(now, clock.resolved_at) if clock.resolved_at else now
    return policy.calendar.between(clock.opened_at, end) - paused(clock, policy, end)


def deadline(clock: Clock, policy: SlaPolicy, kind: DeadlineKind, now: datetime) -> datetime | None:
    """When ``kind`` is due, pauses so far included (a running pause moves it on)."""
    target = policy.for_level(clock.level).get(kind)
    if target is None:
        return None
    return policy.calendar.add(clock.opened_at, target + paused(clock, policy, now))


def deadlines(clock: Clock, policy: SlaPolicy, now: datetime) -> dict[DeadlineKind, datetime]:
    out: dict[DeadlineKind, datetime] = {}
    for kind in KINDS:
        due = deadline(clock, policy, kind, now)
        if due is not None:
            out[kind] = due
    return out


def breached(clock: Clock, policy: SlaPolicy, now: datetime) -> set[DeadlineKind]:
    """Deadlines missed: not done by their time (done late counts as missed too)."""
    out: set[DeadlineKind] = set()
    for kind, due in deadlines(clock, policy, now).items():
        done = clock.done_at(kind)
        if (done is None and now > due) or (done is not None and done > due):
            out.add(kind)
    return out


def tier(clock: Clock, policy: SlaPolicy, now: datetime) -> int:
    """Escalation tier due now (1, 2 or 3); a resolved incident keeps the tier it reached."""
    total = policy.for_level(clock.level).resolve
    share = elapsed(clock, policy, now) / total if total else 1.0
    if share >= policy.tier3_share:
        return 3
    if share >= policy.tier2_share:
        return 2
    return 1


def time_left(clock: Clock, policy: SlaPolicy, now: datetime) -> timedelta:
    """Contract time left until the resolve deadline (negative once breached)."""
    return policy.for_level(clock.level).resolve - elapsed(clock, policy, now)
