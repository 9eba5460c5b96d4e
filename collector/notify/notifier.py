"""The notifier: routes notices to channels, groups them, paces and retries the messages.

Why each piece exists:

- Grouping. When a switch fails, every camera behind it fails within seconds. The engine opens
  one incident per camera, but people must get one page saying "500 cameras at east-gate",
  not 500 pages (and the robots would block us after 20). Notices for a channel that arrive
  within ``window`` seconds of the first become one message listing the count and the first
  few.
- Rate limiting. Each channel sends at most ``rate_limit`` messages per ``rate_period``;
  notices that arrive while it is at its limit wait and join the next message instead of
  being refused by the robot.
- Retries with exponential backoff, bounded in number, so a mail server restart costs a delay,
  not a lost page, and a dead gateway costs a few attempts, not a retry storm.
- Every attempt is reported through ``on_outcome`` for the incident timeline: the contracts
  promise a record of who was told what and when, failures included.
- ``submit`` never raises and never blocks: the ingest path that calls it must not be slowed
  down or broken by a mail server.

Each channel has its own lane (one task), so a slow SMS gateway never delays DingTalk.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Self

from collector.notify.channel import Channel, build_channel
from collector.notify.config import ChannelBase, NotifyConfig
from collector.notify.errors import NotifyError
from collector.notify.model import Batch, Kind, Notice, Outcome
from collector.notify.redact import Scrubber, ScrubFilter
from collector.notify.render import DEFAULT_TZ

__all__ = ["Notifier", "OutcomeCallback"]

log = logging.getLogger(__name__)

#: ``on_outcome(notice_numbers, outcome)``; may be a coroutine function (e.g. a store write in
#: an executor). Called once per delivery attempt.
OutcomeCallback = Callable[[tuple[str, ...], Outcome], Awaitable[None] | None]

#: Loggers of the libraries the channels use that print request URLs (httpx: at INFO). Filters
#: apply only to a logger's own records, so each is named exactly.
_SCRUBBED_LOGGERS = ("httpx",)


@dataclass(slots=True)
class _Pending:
    """Notices waiting to become the channel's next message."""

    due: float
    #: Keyed by (incident, kind): the same event submitted twice is listed once.
    notices: dict[tuple[str, Kind], Notice] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Lane:
    name: str
    channel: Channel
    config: ChannelBase
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: _Pending | None = None
    inflight: Batch | None = None
    attempts: int = 0
    #: Monotonic times of the attempts inside the current rate period.
    sent: deque[float] = field(default_factory=deque)

    def rate_wait(self, now: float) -> float:
        """Seconds until one more message is allowed (0: now)."""
        period = self.config.rate_period
        while self.sent and self.sent[0] <= now - period:
            self.sent.popleft()
        if len(self.sent) < self.config.rate_limit:
            return 0.0
        return self.sent[0] + period - now


class Notifier:
    """Delivers notices on the channels their routes name.

    Use it as a task: ``asyncio.create_task(notifier.run(stop))`` and set ``stop`` to end it,
    or ``async with notifier:``. On stop, pending messages go out at once, without waiting for
    their window or the rate limit, retried until ``flush_timeout``; whatever is still
    undelivered then is reported as a final failed outcome. ``submit`` must be called from the
    event loop's thread (it is synchronous and cheap). An instance runs once: after a stop,
    further notices are logged and dropped.
    """

    def __init__(
        self,
        config: NotifyConfig,
        on_outcome: OutcomeCallback,
        *,
        tz: tzinfo = DEFAULT_TZ,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        """``channels`` replaces the channels built from ``config`` by the same name (for
        channels the configuration cannot describe); their pacing still comes from
        ``config.channels``."""
        self.config = config
        self._on_outcome = on_outcome
        given = dict(channels or {})
        unknown = sorted(set(given) - set(config.channels))
        if unknown:
            raise ValueError(f"channels {unknown} are not in the configuration")
        self._lanes: dict[str, _Lane] = {}
        for name, cfg in config.channels.items():
            channel = given.get(name) or build_channel(name, cfg, tz)
            self._lanes[name] = _Lane(name, channel, cfg)
        self._scrubber = Scrubber()
        for lane in self._lanes.values():
            self._scrubber.add(lane.channel.secrets())
            self._scrubber.add(lane.config.secret_values())
        self._stopping = False
        self._closed = False
        self._deadline = float("inf")
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the caller's side ---------------------------------------------------------------

    def submit(self, notice: Notice) -> None:
        """Queue ``notice`` for every channel its routes name. Never raises."""
        try:
            self._submit(notice)
        except Exception:
            log.exception("notify: could not queue %s", getattr(notice, "number", notice))

    def _submit(self, notice: Notice) -> None:
        routes = self.config.route(notice)
        if not routes:
            log.debug("notify: no route for %s (%s) at %s", notice.number, notice.kind, notice.site)
            return
        if self._closed:
            log.warning(
                "notify: stopped; %s (%s) not sent to %s",
                notice.number,
                notice.kind,
                ", ".join(routes),
            )
            return
        now = time.monotonic()
        for name, window in routes.items():
            lane = self._lanes[name]
            if lane.pending is None:
                lane.pending = _Pending(due=now + window)
            else:
                # A notice with a shorter window (level 1) pulls the whole group forward.
                lane.pending.due = min(lane.pending.due, now + window)
            lane.pending.notices[(notice.number, notice.kind)] = notice
            lane.wake.set()

    async def __aenter__(self) -> Self:
        self._stop_requested.clear()
        self._task = asyncio.create_task(self.run(self._stop_requested), name="notifier")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_requested.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- the task ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then flush within ``flush_timeout`` and return."""
        scrub = ScrubFilter(self._scrubber)
        for name in _SCRUBBED_LOGGERS:
            logging.getLogger(name).addFilter(scrub)
        tasks = [
            asyncio.create_task(self._lane_loop(lane), name=f"notify-{lane.name}")
            for lane in self._lanes.values()
        ]
        try:
            await stop.wait()
        finally:
            await self._shutdown(tasks)
            for name in _SCRUBBED_LOGGERS:
                logging.getLogger(name).removeFilter(scrub)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        timeout = self.config.flush_timeout
        self._stopping = True
        self._deadline = time.monotonic() + timeout
        for lane in self._lanes.values():
            lane.wake.set()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._closed = True
        for lane in self._lanes.values():
            left: list[tuple[tuple[str, ...], int]] = []
            if lane.inflight is not None:
                left.append((lane.inflight.numbers, lane.attempts))
            if lane.pending is not None:
                left.append((tuple(n.number for n in lane.pending.notices.values()), 0))
            lane.inflight = lane.pending = None
            for numbers, attempts in left:
                await self._report(
                    numbers,
                    Outcome(
                        channel=lane.name,
                        ok=False,
                        detail=f"not delivered: collector stopping (flush_timeout {timeout:g} s)",
                        attempts=attempts,
                        sent_at=datetime.now(UTC),
                        final=True,
                    ),
                )
            with contextlib.suppress(Exception):
                await lane.channel.aclose()

    async def _wait(self, lane: _Lane, seconds: float | None) -> None:
        """Sleep until ``seconds`` pass or the lane is woken (a notice arrived, or stop)."""
        lane.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lane.wake.wait(), seconds)

    async def _lane_loop(self, lane: _Lane) -> None:
        while True:
            if lane.pending is None:
                if self._stopping:
                    return
                await self._wait(lane, None)
                continue
            now = time.monotonic()
            if not self._stopping:
                # Checked again after every wake-up: the due time may have moved forward, and
                # notices arriving during a rate-limit wait simply join this group.
                wait = max(lane.pending.due - now, lane.rate_wait(now))
                if wait > 0:
                    await self._wait(lane, wait)
                    continue
            batch = Batch(lane.name, tuple(lane.pending.notices.values()))
            lane.pending = None
            await self._deliver(lane, batch)

    async def _deliver(self, lane: _Lane, batch: Batch) -> None:
        retry = self.config.retry
        # Left set if the task is cancelled at the flush deadline: _shutdown reports it then.
        lane.inflight, lane.attempts = batch, 0
        while True:
            lane.attempts += 1
            lane.sent.append(time.monotonic())
            ok, detail = await self._attempt(lane, batch)
            final = ok or lane.attempts >= retry.attempts
            pause = 0.0
            if not final:
                now = time.monotonic()
                pause = max(retry.delay(lane.attempts), lane.rate_wait(now))
                if self._stopping:
                    final = now + pause >= self._deadline
            outcome = Outcome(lane.name, ok, detail, lane.attempts, datetime.now(UTC), final)
            if final:
                lane.inflight = None
            await self._report(batch.numbers, outcome)
            if final:
                return
            if not self._stopping:
                await self._wait_retry(lane, pause)
            else:
                await asyncio.sleep(pause)

    async def _wait_retry(self, lane: _Lane, seconds: float) -> None:
        """Back off, but not past a stop: then the flush deadline decides what is left."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            # New notices wake the lane too; they wait for the next message, so sleep on.
            await self._wait(lane, left)

    async def _attempt(self, lane: _Lane, batch: Batch) -> tuple[bool, str]:
        timeout = lane.config.timeout
        try:
            async with asyncio.timeout(timeout):
                detail = await lane.channel.send(batch)
        except NotifyError as exc:
            return False, self._scrubber.scrub(str(exc))
        except TimeoutError:
            return False, f"{lane.name}: no answer within {timeout:g} s"
        except Exception as exc:
            # A bug in one channel must not take down the others or the collector.
            text = self._scrubber.scrub(f"{type(exc).__name__}: {exc}")
            log.error("notify %s: unexpected error: %s", lane.name, text)
            return False, f"unexpected error: {text}"
        return True, self._scrubber.scrub(detail)

    async def _report(self, numbers: tuple[str, ...], outcome: Outcome) -> None:
        if outcome.ok:
            log.info(
                "notify %s: delivered %d notice(s) on attempt %d: %s",
                outcome.channel,
                len(numbers),
                outcome.attempts,
                outcome.detail,
            )
        else:
            log.warning(
                "notify %s: %d notice(s) not delivered (attempt %d%s): %s",
                outcome.channel,
                len(numbers),
                outcome.attempts,
                ", giving up" if outcome.final else ", will retry",
                outcome.detail,
            )
        try:
            result = self._on_outcome(numbers, outcome)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("notify %s: on_outcome callback failed", outcome.channel)
