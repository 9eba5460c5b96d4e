"""The agent's outbox on a real SQLite file: bounds by count, bytes and age, gap records that
say what was dropped, acknowledgement, and a corrupt file moved aside."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.outbox import Outbox
from checks.result import Result
from checks.status import Status
from checks.wire import result_to_wire


def results(n: int, start: datetime | None = None, pad: int = 0) -> list[dict[str, object]]:
    t0 = start or datetime.now(UTC)
    return [
        result_to_wire(
            Result(
                target="h",
                target_class="linux-server",
                check="cpu.usage",
                status=Status.OK,
                value=float(i),
                summary="x" * pad,
                observed_at=t0 + timedelta(seconds=i),
            )
        )
        for i in range(n)
    ]


def test_count_bound_drops_oldest_and_records_the_gap(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_results=100)
    batch = results(130)
    box.put(batch)
    assert box.pending() == 100
    kept = [r for _, r in box.peek(1000)]
    assert kept[0]["msg_id"] == batch[30]["msg_id"], "the oldest go first"
    [gap] = box.gaps()
    assert gap.dropped == 30 and gap.first_observed == batch[0]["observed_at"]
    assert gap.last_observed == batch[29]["observed_at"] and gap.gap_id
    assert box.dropped_total() == 30
    assert [g.gap_id for g in box.gaps(unpublished=True)] == [gap.gap_id]
    box.gaps_published([gap.gap_id])
    assert box.gaps(unpublished=True) == []


def test_byte_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_results=10_000, max_bytes=50_000)
    box.put(results(100, pad=900))  # ~1.1 KB each
    assert box.pending_bytes <= 50_000
    assert 30 < box.pending() < 50
    assert box.dropped_total() == 100 - box.pending()
    # The running byte count survives a restart.
    before = box.pending_bytes
    box.close()
    again = Outbox(tmp_path / "o.sqlite", max_results=10_000, max_bytes=50_000)
    assert again.pending_bytes == before
    count = again.pending()
    again.ack(again.peek(10)[-1][0])
    assert again.pending() == count - 10
    assert 0 < again.pending_bytes < before


def test_age_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_results=1000, max_age=3600)
    old = results(5, start=datetime.now(UTC) - timedelta(hours=3))
    box.put(old)
    assert box.pending() == 0 and box.gaps()[0].dropped == 5  # too old on arrival
    box.put(results(3))
    assert box.pending() == 3 and box.dropped_total() == 5


def test_ack_and_restart_replay_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_results=1000)
    batch = results(10)
    box.put(batch)
    box.ack(box.peek(4)[-1][0])
    box.close()  # as after a kill: what was not acknowledged is still there, in order
    again = Outbox(tmp_path / "o.sqlite", max_results=1000)
    assert [r["msg_id"] for _, r in again.peek(100)] == [r["msg_id"] for r in batch[4:]]


def test_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox(path, max_results=1000)
    box.put(results(2))
    assert box.pending() == 2
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert time.time() - int(aside[0].rsplit("-", 1)[1]) < 60
