"""From what the incident engine raised to notices people receive, and back to the timeline.

The engine runs in the database thread, the API in FastAPI's pool and the notifier in the
event loop: everything raised is handed to the loop with ``call_soon_threadsafe`` and only
after its transaction committed, so nobody is told about an incident that was rolled back.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from collector.notify.model import Notice, Outcome
from collector.notify.notifier import Notifier
from collector.store.db import Store
from collector.store.incident_ops import IngestStats, Raised

log = logging.getLogger(__name__)


def notice_of(raised: Raised) -> Notice:
    return Notice(
        number=raised.number,
        site=raised.site,
        target=raised.target,
        level=min(4, max(1, raised.level)),
        tier=min(3, max(1, raised.tier)),
        kind=raised.kind,  # type: ignore[arg-type]
        title=raised.title,
        summary=raised.summary,
        at=raised.at,
        deadline=raised.deadline,
    )


class Bridge:
    def __init__(
        self, store: Store, executor: ThreadPoolExecutor, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.store = store
        self.executor = executor
        self.loop = loop
        self.notifier: Notifier | None = None

    def raised(self, stats: IngestStats) -> None:
        """Called from any thread after a commit."""
        if self.notifier is None or not stats.raised:
            return
        for r in stats.raised:
            self.loop.call_soon_threadsafe(self._submit, notice_of(r))

    def _submit(self, notice: Notice) -> None:
        if self.notifier is not None:
            self.notifier.submit(notice)

    def outcome(self, numbers: tuple[str, ...], outcome: Outcome) -> asyncio.Future[None]:
        return self.loop.run_in_executor(
            self.executor,
            self.store.record_notification,
            numbers,
            outcome.channel,
            outcome.ok,
            outcome.detail,
            outcome.attempts,
            outcome.final,
            outcome.sent_at,
        )
