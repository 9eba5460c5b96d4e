"""What the notification layer is given (Notice), what it sends (Batch) and what it reports
back (Outcome).

Plain values only: the incident engine and the store are free to change how incidents are kept,
as long as they can say, for each event worth telling a person about, one Notice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

__all__ = ["KINDS", "Batch", "Kind", "Notice", "Outcome"]

#: Why a person is told: a new fault, a hand-over to the next tier, a passed deadline (the
#: contracts' "automatic timeout warning"), the fault is gone, or a periodic reminder.
Kind = Literal["opened", "escalated", "breached", "resolved", "reminder"]
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True, slots=True)
class Notice:
    """One event of one incident that someone must hear about.

    ``number`` is the ticket number people quote on the phone (``FM-202611-0001``);
    ``level`` is the contract's fault level (1 = system down … 4 = a question) and ``tier``
    the maintenance tier now responsible (1 service desk, 2 response owner, 3 maintainer).
    ``at`` is when the event happened, ``deadline`` when the current SLA clock runs out.
    """

    number: str
    site: str
    target: str
    level: int
    tier: int
    kind: Kind
    title: str
    summary: str
    at: datetime
    deadline: datetime | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        # Checked here, not only in the engine: a notice with level 7 would silently match no
        # route and nobody would be paged.
        if not self.number:
            raise ValueError("notice needs an incident number")
        if self.level not in (1, 2, 3, 4):
            raise ValueError(f"notice {self.number}: level must be 1-4, not {self.level!r}")
        if self.tier not in (1, 2, 3):
            raise ValueError(f"notice {self.number}: tier must be 1-3, not {self.tier!r}")
        if self.kind not in KINDS:
            raise ValueError(f"notice {self.number}: unknown kind {self.kind!r}")
        for name in ("at", "deadline"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"notice {self.number}: {name} must carry a time zone")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one delivery attempt of one message on one channel.

    Reported for every attempt, failed ones included, so the incident timeline shows that the
    customer's engineer was paged at 02:13 and when the SMS gateway refused it. ``final`` is
    true when no further attempt will be made for this message. ``detail`` is safe to store
    and show: it never contains a password, token or signed URL.
    """

    channel: str
    ok: bool
    detail: str
    attempts: int
    sent_at: datetime
    final: bool = True


@dataclass(slots=True, eq=False)
class Batch:
    """The notices grouped into one message for one channel.

    ``id`` is stable across retries (webhooks send it so that receivers can drop duplicates).
    ``delivered`` records the parts of a message already accepted (one e-mail recipient group,
    one SMS number), so a retry after a partial failure does not page the same person twice.
    """

    channel: str
    notices: tuple[Notice, ...]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    delivered: set[str] = field(default_factory=set)

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(n.number for n in self.notices)

    @property
    def count(self) -> int:
        return len(self.notices)
