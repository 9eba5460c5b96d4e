"""The incident state machine: given what is open and what just arrived, what to do.

Pure functions over plain values and an explicit ``now``, so every rule (open, repeat,
hysteresis on recovery, agent offline) is testable without a database, a broker or sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from checks.status import Status


@dataclass(frozen=True, slots=True)
class Policy:
    """When incidents open and close; per collector, overridable per contract later."""

    #: Statuses that open an incident. CRIT by default: a WARN is shown in reports, not paged.
    open_on: frozenset[Status] = frozenset({Status.CRIT})
    #: Consecutive OK results needed before an incident resolves itself (hysteresis).
    resolve_after_ok: int = 1
    #: Fault level of "agent offline" incidents (the site is unwatched, not necessarily down).
    agent_offline_level: int = 3


@dataclass(frozen=True, slots=True)
class OpenIncident:
    id: int
    level: int
    occurrences: int


Action = Literal["open", "repeat", "resolve", "none"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""


def on_result(
    incident: OpenIncident | None, status: Status, ok_streak: int, policy: Policy
) -> Decision:
    """Decide for one (target, check) result.

    ``ok_streak`` counts consecutive OK results including this one (0 if this one is not OK).
    UNKNOWN never resolves: not being able to measure a fault is not evidence it is gone.
    """
    failing = status in policy.open_on
    if incident is None:
        return Decision("open", f"status {status.name}") if failing else Decision("none")
    if failing:
        return Decision("repeat")
    if status == Status.OK and ok_streak >= policy.resolve_after_ok:
        return Decision("resolve", f"OK for {ok_streak} consecutive check(s)")
    return Decision("none")


def on_agent_state(incident: OpenIncident | None, state: str) -> Decision:
    """An agent's retained status changed.

    ``offline`` is the broker publishing the agent's last will: it vanished, the site is
    unwatched, that is an incident. ``stopped`` is an orderly shutdown by an operator: shown,
    not paged.
    """
    if state == "stopped":
        return Decision("none")
    if state == "offline":
        return Decision("repeat") if incident else Decision("open", "agent went offline")
    if incident is not None:
        return Decision("resolve", "agent back online")
    return Decision("none")


def incident_number(incident_id: int, opened_at: datetime) -> str:
    """Ticket number assigned automatically (the contracts' tracking system, point 1)."""
    return f"INC-{opened_at:%Y%m}-{incident_id:06d}"
