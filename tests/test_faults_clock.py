"""Clock jumps on an agent's host: results stamped far in the future or the past.

Crafted batches go through ``Ingestor.handle`` on a real SQLite store (wired like ``collector
run``), with the collector's own clock passed explicitly. A result from the past is a late
replay: recorded, but it must not move current state or incidents. A result from the future
must be bounded and flagged: it must not become the target's "current" state for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from bench.ingest import make_ingestor
from collector.ingest import Ingestor, Message
from collector.store import schema

TOPIC = "fieldmon/v1/s1/a1/results"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def ingestor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Ingestor]:
    caplog.set_level(logging.WARNING)
    ing = make_ingestor(tmp_path / "collector.db")
    yield ing
    ing.store.engine.dispose()


def _send(ing: Ingestor, msg_id: str, target: str, status: str, at: datetime) -> None:
    payload = orjson.dumps(
        {
            "schema": 1,
            "site": "s1",
            "agent": "a1",
            "sent_at": at.isoformat(),
            "results": [
                {
                    "msg_id": msg_id,
                    "target": target,
                    "class": "linux-server",
                    "check": "mem.usage",
                    "status": status,
                    "value": 99.0 if status == "CRIT" else 20.0,
                    "unit": "%",
                    "observed_at": at.isoformat(),
                }
            ],
        }
    )
    # The collector receives each result a moment after the agent's (sane) clock would have
    # stamped it; ``now`` is the collector's clock.
    assert ing.handle(Message(TOPIC, payload), now=NOW + timedelta(seconds=len(msg_id))) is not None


def _open_incidents(ing: Ingestor, target: str) -> list[str]:
    with ing.store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.incidents.c.number).where(
                schema.incidents.c.target == target,
                schema.incidents.c.state.not_in(["resolved", "closed"]),
            )
        ).all()
    return [r[0] for r in rows]


def _current(ing: Ingestor, target: str) -> tuple[int, datetime]:
    with ing.store.engine.connect() as conn:
        row = conn.execute(
            select(schema.current.c.status, schema.current.c.observed_at).where(
                schema.current.c.target == target
            )
        ).one()
    at = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
    return int(row[0]), at


def _samples(ing: Ingestor, target: str) -> int:
    with ing.store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.inspection.c.samples).where(schema.inspection.c.target == target)
        ).all()
    return sum(int(r[0]) for r in rows)


def test_result_from_the_past_does_not_move_state_or_incidents(ingestor: Ingestor) -> None:
    _send(ingestor, "past-0001", "host-p", "OK", NOW - timedelta(minutes=2))
    _send(ingestor, "past-0002", "host-p", "OK", NOW - timedelta(minutes=1))
    # The host's clock jumped back 36 years for one collection.
    _send(ingestor, "past-0003", "host-p", "CRIT", datetime(1990, 1, 1, tzinfo=UTC))
    status, at = _current(ingestor, "host-p")
    assert status == 0 and at == NOW - timedelta(minutes=1)
    assert _open_incidents(ingestor, "host-p") == []
    assert _samples(ingestor, "host-p") == 3  # recorded (in its own month), not lost


def test_result_from_the_future_is_bounded_and_does_not_stick(
    ingestor: Ingestor, caplog: pytest.LogCaptureFixture
) -> None:
    _send(ingestor, "future-0001", "host-f", "OK", NOW - timedelta(minutes=1))
    # The host's clock jumped to 2099 for one collection, then NTP put it right.
    _send(ingestor, "future-0002", "host-f", "CRIT", datetime(2099, 1, 1, tzinfo=UTC))
    _send(ingestor, "future-0003", "host-f", "OK", NOW)
    _send(ingestor, "future-0004", "host-f", "OK", NOW + timedelta(minutes=1))
    status, at = _current(ingestor, "host-f")
    facts = {
        "current status": status,
        "current observed_at": at.isoformat(),
        "open incidents": _open_incidents(ingestor, "host-f"),
        "future stamp flagged in the log": "future" in caplog.text.lower(),
    }
    assert at <= NOW + timedelta(days=1), facts  # bounded: never 'current' until 2099
    assert status == 0 and facts["open incidents"] == [], facts
    assert facts["future stamp flagged in the log"], facts
