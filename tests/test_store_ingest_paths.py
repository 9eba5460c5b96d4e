"""What the ingest path's shortcuts must leave exactly as before: transitions record the
status they leave, ``since`` moves only on a change, a late result counts in the inspection
record without replacing its latest result, the timeline chain holds with entries written
at the end of a batch, datetimes are stored as SQLAlchemy stores them, and storing pauses
the garbage collector only while it runs."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import DateTime, select
from sqlalchemy.dialects import sqlite

from bench.ingest import make_ingestor
from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from checks.topics import topic
from checks.wire import encode_batch, result_to_wire
from collector.incidents.engine import Policy
from collector.ingest import Message
from collector.store.db import AgentBatches, Store
from collector.store.fastsql import bind_processor
from collector.store.schema import current, transitions

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CLASSES = load_catalogue()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def _r(status: Status, at: datetime, n: int, **kw: Any) -> Result:
    base: dict[str, Any] = dict(
        target="sw-01",
        target_class="snmp-device",
        check="snmp.reachable",
        status=status,
        value="up" if status == Status.OK else "down",
        observed_at=at,
        msg_id=f"msg-{n:06d}",
    )
    base.update(kw)
    return Result(**base)


def _batches(store: Store, *batches: list[Result], now: datetime) -> None:
    """Several batches of one agent in one transaction, as the MQTT consumer groups them."""
    store.ingest_groups([AgentBatches("s1", "a1", list(batches))], CLASSES, Policy(), now)


def _moves(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(transitions.c.from_status, transitions.c.to_status).order_by(transitions.c.id)
        )
        return [tuple(r) for r in rows]


def _since(store: Store) -> datetime:
    with store.engine.connect() as conn:
        value = conn.execute(select(current.c.since)).scalar_one()
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_transitions_record_the_status_they_leave(store: Store) -> None:
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    _batches(store, [_r(Status.OK, at[0], 1)], now=at[0])
    _batches(store, [_r(Status.CRIT, at[1], 2)], now=at[1])
    # Two changes of one check in one batch, then one in the next transaction.
    _batches(store, [_r(Status.WARN, at[2], 3), _r(Status.OK, at[3], 4)], now=at[3])
    _batches(store, [_r(Status.UNKNOWN, at[4], 5)], now=at[4])
    assert _moves(store) == [(None, 0), (0, 3), (3, 1), (1, 0), (0, 2)]


def test_since_moves_only_when_the_status_changes(store: Store) -> None:
    at = [T0 + timedelta(minutes=m) for m in range(8)]
    _batches(store, [_r(Status.OK, at[0], 1)], now=at[0])
    _batches(store, [_r(Status.OK, at[1], 2)], now=at[1])
    assert _since(store) == at[0]
    # A change followed by a repeat in the same transaction keeps the change's time.
    _batches(store, [_r(Status.CRIT, at[2], 3)], [_r(Status.CRIT, at[3], 4)], now=at[3])
    assert _since(store) == at[2]
    _batches(store, [_r(Status.CRIT, at[4], 5)], now=at[4])
    assert _since(store) == at[2]
    # A new check: inserted and repeated in one batch.
    new = [_r(Status.OK, at[5 + i], 10 + i, check="snmp.uptime", value=1.0) for i in range(2)]
    _batches(store, new, now=at[6])
    sinces = {r["check_key"]: r["since"] for r in store.current_rows("s1")}
    assert sinces["snmp.uptime"].replace(tzinfo=UTC) == at[5]


def test_late_results_count_but_keep_the_latest(store: Store) -> None:
    at = [T0 + timedelta(minutes=m) for m in range(6)]
    _batches(store, [_r(Status.OK, at[3], 1, summary="latest")], now=at[3])
    # Late ones alone, then a late one after a newer one held in the same transaction,
    # then a late one before any newer one in a new record's first batch.
    _batches(store, [_r(Status.CRIT, at[0], 2, summary="late")], now=at[4])
    _batches(
        store,
        [_r(Status.WARN, at[5], 3, summary="newest")],
        [_r(Status.CRIT, at[1], 4, summary="late again")],
        now=at[5],
    )
    [row] = store.inspection_rows("s1", "2026-11")
    assert (row["status"], row["summary"], row["worst"], row["samples"]) == (
        Status.WARN,
        "newest",
        Status.CRIT,
        4,
    )
    assert row["failed_samples"] == 3
    assert row["observed_at"].replace(tzinfo=UTC) == at[5]
    new = [
        _r(Status.OK, at[4], 5, check="snmp.uptime", value=2.0, summary="first"),
        _r(Status.CRIT, at[2], 6, check="snmp.uptime", value=1.0, summary="earlier"),
    ]
    _batches(store, new[:1], new[1:], now=at[5])
    up = next(r for r in store.inspection_rows("s1", "2026-11") if r["check"] == "snmp.uptime")
    assert (up["summary"], up["value"], up["worst"], up["samples"]) == ("first", "2", 3, 2)


def test_timelines_written_with_the_batch_stay_chained(store: Store) -> None:
    """Incidents opened and resolved in one transaction, several times over: the entries
    are written when the batch ends, and every hash chains onto the one before."""
    n = 0
    for cycle in range(6):
        results = []
        for t in range(5):
            n += 1
            status = Status.CRIT if (cycle + t) % 2 else Status.OK
            at = T0 + timedelta(minutes=cycle, seconds=t)
            results.append(_r(status, at, n, target=f"sw-{t:02d}"))
        _batches(store, results[:2], results[2:], now=T0 + timedelta(minutes=cycle, seconds=9))
    assert store.verify_all() == []
    numbers = [i["number"] for i in store.incidents(limit=100)]
    assert len(numbers) >= 10
    for number in numbers:
        found = store.incident(number)
        assert found is not None
        inc, events = found
        assert store.verify_timeline(int(inc["id"]))
        assert events[0]["kind"] == "opened"


def test_sqlite_datetime_text_is_sqlalchemys() -> None:
    dialect = sqlite.dialect()
    ours = bind_processor(DateTime(timezone=True), dialect)
    theirs = DateTime(timezone=True)._cached_bind_processor(dialect)
    assert ours is not None and theirs is not None and ours is not theirs
    rng = random.Random(7)
    zones = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), None]
    for _ in range(2000):
        value = datetime(1970, 1, 1) + timedelta(seconds=rng.uniform(0, 4e9))
        value = value.replace(microsecond=rng.choice([0, rng.randint(0, 999_999)]))
        value = value.replace(tzinfo=rng.choice(zones))
        assert ours(value) == theirs(value)
    others: list[Any] = [None, date(2026, 11, 23), datetime(1, 1, 1), datetime(9999, 12, 31)]
    for other in others:
        assert ours(other) == theirs(other)
    with pytest.raises(TypeError):
        ours("2026-11-23 08:00:00")


def test_storing_pauses_the_garbage_collector_only_meanwhile(tmp_path: Path) -> None:
    ingestor = make_ingestor(tmp_path / "collector.db")
    seen: list[bool] = []
    store_ingest_groups = ingestor.store.ingest_groups

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return store_ingest_groups(*args, **kwargs)

    ingestor.store.ingest_groups = spy  # type: ignore[method-assign]
    payload = encode_batch("s1", "a1", [result_to_wire(_r(Status.OK, T0, 1))])
    msgs = [Message(topic("s1", "a1", "results"), payload)]
    try:
        assert gc.isenabled()
        ingestor.handle_all(msgs)
        assert seen == [False] and gc.isenabled()
        gc.disable()
        ingestor.handle(Message(topic("s1", "a1", "results"), payload))
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()
        ingestor.store.close()
