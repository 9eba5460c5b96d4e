"""The result of one check on one target: what the agent measured and what it concluded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from checks.status import Status

Value = float | str | None


@dataclass(frozen=True, slots=True)
class Result:
    """One verdict, as published by an agent and stored by the collector.

    ``item`` names the instance when a check runs per mount, per interface or per component
    ("/var", "GigabitEthernet0/1"); it is empty for single-instance checks. ``msg_id`` is unique
    per result so that QoS 1 redelivery and outbox replay can be deduplicated.
    """

    target: str
    target_class: str
    check: str
    status: Status
    value: Value = None
    unit: str = ""
    summary: str = ""
    item: str = ""
    observed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    facts: dict[str, str] = field(default_factory=dict)
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def key(self) -> str:
        """``check`` or ``check[item]``: what one open incident per (target, check) keys on."""
        return f"{self.check}[{self.item}]" if self.item else self.check
