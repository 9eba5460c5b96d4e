"""What every probe returns and the small interface the scheduler calls."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Protocol

from agent.config import TargetConfig
from checks.result import Value
from checks.status import Status


@dataclass(frozen=True, slots=True)
class Observation:
    """A measured value for one check (and item), before thresholds are applied.

    ``status`` is set only when the probe itself knows the verdict, typically UNKNOWN with a
    reason in ``summary`` when the device did not answer or did not expose the data.
    """

    check: str
    value: Value
    item: str = ""
    summary: str = ""
    unit: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    status: Status | None = None


def unknown(check: str, reason: str, item: str = "") -> Observation:
    return Observation(check=check, value=None, item=item, summary=reason, status=Status.UNKNOWN)


class Probe(Protocol):
    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        """Measure ``checks`` (catalogue ids) on ``target``. Must not raise for device faults."""
        ...

    async def close(self) -> None:
        """Release sockets/sessions."""
        ...
