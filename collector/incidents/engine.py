"""The incident state machine: given what is open, what just arrived and its context, what
to do.

Pure functions over plain values and an explicit context, so every rule (open, repeat,
hysteresis on recovery, flapping, maintenance windows, a parent device that is down, agent
offline) is testable without a database, a broker or sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from checks.status import Status

#: Checks whose failure means "the device is gone": children behind it fail with it.
REACHABILITY = frozenset({"snmp.reachable", "host.reachable", "data.stale"})


@dataclass(frozen=True, slots=True)
class Policy:
    """When incidents open and close; per collector, overridable per contract."""

    #: Statuses that open an incident. CRIT by default: a WARN is shown in reports, not paged.
    open_on: frozenset[Status] = frozenset({Status.CRIT})
    #: Consecutive OK results needed before an incident resolves itself (hysteresis).
    resolve_after_ok: int = 1
    #: Fault level of "agent offline" incidents (the site is unwatched, not necessarily down).
    agent_offline_level: int = 3
    #: An agent's last will opens its incident only if the agent is still offline this long
    #: after: a broker restart delivers every agent's will, and they reconnect within their
    #: backoff. Zero opens at once.
    agent_offline_grace: timedelta = timedelta(seconds=90)
    #: This many status changes within ``flap_window`` mark a check as flapping.
    flap_threshold: int = 6
    flap_window: timedelta = timedelta(hours=1)
    #: Child incidents opened this long before their parent's are folded into the parent's.
    dependency_window: timedelta = timedelta(minutes=10)
    #: A target is stale after this many of its usual intervals without a result.
    stale_intervals: float = 3.0
    stale_level: int = 3
    #: Per check id, the fault level this contract wants instead of the catalogue's.
    level_overrides: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OpenIncident:
    id: int
    level: int
    occurrences: int
    flapping: bool = False
    number: str = ""


@dataclass(frozen=True, slots=True)
class Context:
    """What the decision needs to know beyond the result itself."""

    flapping: bool = False
    in_maintenance: bool = False
    #: The open "device gone" incident of the nearest parent that is down, if any.
    parent_down: OpenIncident | None = None


Action = Literal["open", "repeat", "resolve", "attach", "suppress", "hold", "none"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""
    #: Set when the incident should now be marked flapping.
    mark_flapping: bool = False


def on_result(
    incident: OpenIncident | None,
    status: Status,
    ok_streak: int,
    policy: Policy,
    ctx: Context | None = None,
) -> Decision:
    """Decide for one (target, check) result.

    ``ok_streak`` counts consecutive OK results including this one (0 if this one is not OK).
    UNKNOWN never resolves: not being able to measure a fault is not evidence it is gone.
    """
    ctx = ctx or Context()
    failing = status in policy.open_on
    if incident is None:
        if not failing:
            return Decision("none")
        if ctx.in_maintenance:
            return Decision("suppress", "inside a maintenance window")
        if ctx.parent_down is not None:
            return Decision("attach", f"parent down: {ctx.parent_down.number}")
        return Decision("open", f"status {status.name}", mark_flapping=ctx.flapping)
    mark = ctx.flapping and not incident.flapping
    if failing:
        return Decision("repeat", mark_flapping=mark)
    if status == Status.OK and ok_streak >= policy.resolve_after_ok:
        if ctx.flapping:
            return Decision("hold", "flapping: waiting for it to settle", mark_flapping=mark)
        return Decision("resolve", f"OK for {ok_streak} consecutive check(s)")
    return Decision("none", mark_flapping=mark)


def on_agent_state(incident: OpenIncident | None, state: str, grace: timedelta) -> Decision:
    """An agent's retained status changed.

    ``offline`` is the broker publishing the agent's last will: it vanished, the site is
    unwatched, that is an incident — after ``grace`` (the clock sweep opens it then, see
    :func:`offline_too_long`), at once without one. ``stopped`` is an orderly shutdown by an
    operator: shown, not paged.
    """
    if state == "stopped":
        return Decision("none")
    if state == "offline":
        if incident:
            return Decision("repeat")
        if grace > timedelta(0):
            return Decision("hold", "agent went offline; waiting for the grace to pass")
        return Decision("open", "agent went offline")
    if incident is not None:
        return Decision("resolve", "agent back online")
    return Decision("none")


def offline_too_long(state: str, since: datetime, now: datetime, policy: Policy) -> bool:
    """An agent offline (or silent) past the grace gets its incident from the clock sweep."""
    return state in ("offline", "silent") and now - since >= policy.agent_offline_grace


def is_stale(last_seen: datetime, cadence: float | None, now: datetime, policy: Policy) -> bool:
    """No result for ``stale_intervals`` of the target's usual interval (60 s if unknown)."""
    interval = cadence if cadence and cadence > 0 else 60.0
    return (now - last_seen).total_seconds() > policy.stale_intervals * interval


def is_flapping(changes_in_window: int, policy: Policy) -> bool:
    return changes_in_window >= policy.flap_threshold


def incident_number(incident_id: int, opened_at: datetime) -> str:
    """Readable ticket number assigned automatically (the contracts' tracking system, point 1)."""
    return f"FM-{opened_at:%Y%m}-{incident_id:04d}"
