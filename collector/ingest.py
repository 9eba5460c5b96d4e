"""From an MQTT message to stored state: topic check, validation, deduplication, incidents.

Never raises for a bad payload: it is rejected, counted by reason and logged (rate-limited,
so a misbehaving agent cannot flood the log), and the collector goes on.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.topics import TopicParts, parse_topic
from checks.wire import Rejected, RejectReason, WireGap, decode_payload, decode_status
from collector.derived import add_derived
from collector.incidents.rules import Rules
from collector.metrics import IngestCounters
from collector.store.db import AgentBatches, IngestStats, Store

log = logging.getLogger(__name__)

#: At most this many results in one transaction of :meth:`Ingestor.handle_all` (a single
#: larger message is still stored whole): transactions stay short, and what a crash rolls
#: back (to be redelivered) stays small.
MAX_GROUP_RESULTS = 2_000


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while messages are stored.

    Why: storing a group builds tens of thousands of row dicts and results that live until
    its commit, and a collection in the middle of it walked all of them for nothing
    (reference counting frees them at the end; nothing on this path makes cycles): 5-10 %
    of ingest CPU. Collections resume afterwards, as often as before. Only the store
    thread stores, so pausing here does not race another pause."""
    if not gc.isenabled():
        yield  # already paused (by a caller of handle_all, or by whoever embeds us)
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A result message that passed validation, waiting to be stored."""

    msg: Message
    parts: TopicParts
    results: list[Result]
    gaps: list[WireGap]


class Ingestor:
    def __init__(
        self,
        store: Store,
        classes: Mapping[str, DeviceClass],
        rules: Rules,
        counters: IngestCounters,
        on_raised: Callable[[IngestStats], None] | None = None,
    ) -> None:
        self.store = store
        self.classes = classes
        self.rules = rules
        self.counters = counters
        self.on_raised = on_raised or (lambda stats: None)
        self._last_logged: dict[tuple[str, str], float] = {}

    def handle(self, msg: Message, now: datetime | None = None) -> IngestStats | None:
        """Process one message; returns None when it was rejected."""
        with _collector_paused():
            return self._handle(msg, now)

    def _handle(self, msg: Message, now: datetime | None = None) -> IngestStats | None:
        now = now or datetime.now(UTC)
        try:
            parts = parse_topic(msg.topic)
        except ValueError as exc:
            self._reject(msg.topic, Rejected(RejectReason.TOPIC, str(exc)))
            return None
        try:
            if parts.kind == "status":
                status = decode_status(msg.payload, parts)
                stats = self.store.set_agent_state(
                    parts.site,
                    parts.agent,
                    status.state,
                    status.at,
                    status.version,
                    self.rules,
                    now,
                )
            # An on-site inspection run (agent inspect) is stored like any results, so the
            # month's inspection record holds what was measured during the visit.
            elif parts.kind in ("results", "inspection"):
                results, gaps = decode_payload(msg.payload, parts)
                results = add_derived(
                    self.store, self.classes, self.rules, parts.site, results, now
                )
                stats = self.store.ingest(
                    parts.site, parts.agent, results, self.classes, self.rules, now, gaps
                )
                self.counters.results.inc(stats.accepted)
                self.counters.duplicates.inc(stats.duplicates)
            else:
                return IngestStats()
        except Rejected as rej:
            self._reject(msg.topic, rej)
            return None
        except SQLAlchemyError:
            raise  # the database is unwell: not acknowledged, retried by the caller
        except Exception as exc:
            # A payload that passed validation yet broke processing is a fieldmon bug. It is
            # counted and logged with its traceback, and skipped: retrying it for ever would
            # stall ingest for every agent behind it.
            log.exception("processing a message on %r failed", msg.topic[:200])
            self._reject(msg.topic, Rejected(RejectReason.PROCESSING, f"{type(exc).__name__}"))
            return None
        self.on_raised(stats)
        for number in stats.opened:
            log.info("incident %s opened (%s)", number, msg.topic)
        for number in stats.resolved:
            log.info("incident %s resolved", number)
        return stats

    def handle_all(self, msgs: Sequence[Message]) -> None:
        """Process messages in order, like :meth:`handle` one by one, but with consecutive
        result (and inspection) messages stored in one transaction (up to
        :data:`MAX_GROUP_RESULTS` results, any mix of agents): one commit instead of one per
        message, which matters most with many agents sending one message each. Rejects
        are still counted per message; if storing the group breaks for any reason other
        than the database, each message is stored on its own instead, so one bad message
        cannot take the others with it."""
        with _collector_paused():
            self._handle_all(msgs)

    def _handle_all(self, msgs: Sequence[Message]) -> None:
        group: list[_Decoded] = []
        for msg in msgs:
            try:
                parts = parse_topic(msg.topic)
            except ValueError as exc:
                self._reject(msg.topic, Rejected(RejectReason.TOPIC, str(exc)))
                continue
            if parts.kind not in ("results", "inspection"):
                self._store_group(group)
                group = []
                self._handle(msg)
                continue
            try:
                results, gaps = decode_payload(msg.payload, parts)
            except Rejected as rej:
                self._reject(msg.topic, rej)
                continue
            except Exception as exc:
                log.exception("processing a message on %r failed", msg.topic[:200])
                self._reject(msg.topic, Rejected(RejectReason.PROCESSING, f"{type(exc).__name__}"))
                continue
            results = add_derived(
                self.store, self.classes, self.rules, parts.site, results, datetime.now(UTC)
            )
            if group and sum(len(d.results) for d in group) + len(results) > MAX_GROUP_RESULTS:
                self._store_group(group)
                group = []
            group.append(_Decoded(msg, parts, results, gaps))
        self._store_group(group)

    def _store_group(self, group: Sequence[_Decoded]) -> None:
        if not group:
            return
        if len(group) == 1:
            self._store_one(group[0], datetime.now(UTC))
            return
        # Consecutive messages of one agent form one run, applied as one batch list.
        runs: list[list[_Decoded]] = []
        for d in group:
            if runs and (runs[-1][0].parts.site, runs[-1][0].parts.agent) == (
                d.parts.site,
                d.parts.agent,
            ):
                runs[-1].append(d)
            else:
                runs.append([d])
        try:
            all_stats = self.store.ingest_groups(
                [
                    AgentBatches(
                        run[0].parts.site,
                        run[0].parts.agent,
                        [d.results for d in run],
                        [g for d in run for g in d.gaps],
                    )
                    for run in runs
                ],
                self.classes,
                self.rules,
                datetime.now(UTC),
            )
        except SQLAlchemyError:
            raise  # the database is unwell: not acknowledged, retried by the caller
        except Exception:
            # Rolled back: store them one by one so that only a broken one is skipped.
            for d in group:
                self._store_one(d, datetime.now(UTC))
            return
        for run, stats in zip(runs, all_stats, strict=True):
            self.counters.results.inc(stats.accepted)
            self.counters.duplicates.inc(stats.duplicates)
            self._raised(stats, run[0].msg.topic)

    def _store_one(self, d: _Decoded, now: datetime) -> IngestStats | None:
        """The storing half of :meth:`handle` for a decoded result message."""
        try:
            stats = self.store.ingest(
                d.parts.site, d.parts.agent, d.results, self.classes, self.rules, now, d.gaps
            )
            self.counters.results.inc(stats.accepted)
            self.counters.duplicates.inc(stats.duplicates)
        except Rejected as rej:
            self._reject(d.msg.topic, rej)
            return None
        except SQLAlchemyError:
            raise
        except Exception as exc:
            log.exception("processing a message on %r failed", d.msg.topic[:200])
            self._reject(d.msg.topic, Rejected(RejectReason.PROCESSING, f"{type(exc).__name__}"))
            return None
        self._raised(stats, d.msg.topic)
        return stats

    def _raised(self, stats: IngestStats, topic: str) -> None:
        self.on_raised(stats)
        for number in stats.opened:
            log.info("incident %s opened (%s)", number, topic)
        for number in stats.resolved:
            log.info("incident %s resolved", number)

    def _reject(self, topic: str, rej: Rejected) -> None:
        self.counters.rejected.labels(reason=rej.reason.value).inc()
        key = (rej.reason.value, topic)
        mono = time.monotonic()
        if mono - self._last_logged.get(key, -1e9) >= 60:
            self._last_logged[key] = mono
            log.warning(
                "rejected message on %r: %s: %s (further rejects of this kind on this "
                "topic are counted, logged again after 60s)",
                topic[:200],
                rej.reason.value,
                rej.detail[:300],
            )
        if len(self._last_logged) > 10_000:
            self._last_logged.clear()
