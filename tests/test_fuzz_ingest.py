"""The fast slice of the ingest fuzzing (the 10,000-case run is ``bench/fuzz_ingest.py``).

``Ingestor.handle`` on a real SQLite store gets hostile and valid messages from the
strategies in :mod:`bench.fuzz_ingest`: it never raises, a reject grows the sum of the reject
counter's reasons by exactly one and nothing else does, and one message never takes more
than :data:`bench.fuzz_ingest.PEAK_BOUND` of Python heap (the bound is justified there).
Then the edges the strategies leave out on purpose, because they crash ingest today.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from bench.fuzz_ingest import (
    HUGE,
    MESSAGES,
    PEAK_BOUND,
    RESULTS_TOPIC,
    Tally,
    rejected_total,
    run_case,
)
from bench.ingest import make_ingestor
from collector.ingest import Ingestor, Message

EXAMPLES = 300


@pytest.fixture(scope="module")
def ingestor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingestor]:
    ing = make_ingestor(tmp_path_factory.mktemp("fuzz") / "collector.db")
    yield ing
    ing.store.engine.dispose()


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="collector")


def _assert_clean(tally: Tally) -> None:
    assert not tally.crashes, {k: tally.examples[k] for k in tally.crashes}
    assert not tally.miscounted, tally.miscounted[:3]
    assert tally.peak <= PEAK_BOUND, (tally.peak, tally.peak_payload)


def test_fuzzed_messages_never_crash_and_every_reject_is_counted(ingestor: Ingestor) -> None:
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(MESSAGES)
    def one(msg: Message) -> None:
        run_case(ingestor, msg, tally, trace=len(msg.payload) > 10_000)

    one()
    _assert_clean(tally)
    assert tally.cases >= EXAMPLES and tally.rejected > 0 and tally.accepted > 0


def test_huge_payloads_rejected_with_bounded_memory(ingestor: Ingestor) -> None:
    """Each fixed huge shape once, traced: over the limit refused unparsed, just under it
    parsed within the bound; all rejected and counted."""
    tally = Tally()
    for payload in HUGE:
        run_case(ingestor, Message(RESULTS_TOPIC, payload), tally)
    _assert_clean(tally)
    assert tally.rejected == len(HUGE)


def _one_result(observed_at: str, msg_id: str) -> bytes:
    return orjson.dumps(
        {
            "schema": 1,
            "site": "s1",
            "agent": "a1",
            "sent_at": "2026-11-23T00:00:00Z",
            "results": [
                {
                    "msg_id": msg_id,
                    "target": "edge-host",
                    "class": "linux-server",
                    "check": "cpu.usage",
                    "status": "OK",
                    "value": 1.0,
                    "observed_at": observed_at,
                }
            ],
        }
    )


@pytest.mark.parametrize(
    "observed_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z"], ids=["year1", "year9999"]
)
def test_out_of_range_timestamps_are_rejected_not_raised(
    ingestor: Ingestor, observed_at: str
) -> None:
    tally = Tally()
    msg_id = f"edge-{observed_at[:4]}-0001"
    run_case(ingestor, Message(RESULTS_TOPIC, _one_result(observed_at, msg_id)), tally)
    assert not tally.crashes, dict(tally.crashes)
    assert tally.rejected == 1 and not tally.miscounted


def test_reject_counter_sums_over_reasons(ingestor: Ingestor) -> None:
    """The helper the fuzzing relies on reads the counter the collector exports."""
    before = rejected_total(ingestor)
    assert ingestor.handle(Message("not/a/topic", b"{}")) is None
    assert ingestor.handle(Message(RESULTS_TOPIC, b"{")) is None
    assert rejected_total(ingestor) == before + 2
