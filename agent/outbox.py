"""The agent's store-and-forward buffer: results wait here until the broker acknowledges them.

A result is committed to this SQLite file before it counts as taken; it leaves only after the
broker's PUBACK.

Durability, and why not an fsync per write: the file is in WAL mode with
``synchronous=NORMAL``. A commit appends to the write-ahead log with ``write()`` and returns;
the log is fsynced when SQLite checkpoints it into the database. So a process crash or
``kill -9`` loses nothing committed (the operating system holds the written pages), and a
restart replays exactly what was not acknowledged. A power loss or kernel crash may lose the
transactions committed since the last checkpoint, but never corrupts the file, and what it
loses was observed in the last moments before the machine died. ``synchronous=FULL`` (one
fsync per commit, in the event loop) made the outbox cost more than the polling it buffers.
Callers batch: the agent's sink (``agent.runner.OutboxSink``) writes all results handed over
in one event-loop turn in one transaction.

The buffer is bounded three ways (count, bytes, age). Beyond a bound the
oldest results are dropped, counted, and a gap record kept; gap records travel to the
collector with the next batch, so the report can show exactly what is missing instead of
silently lying. A corrupt file is moved aside and a fresh one started: the agent keeps working.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, observed REAL
);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dropped INTEGER NOT NULL, first_observed TEXT, last_observed TEXT, recorded_at REAL NOT NULL,
    gap_id TEXT, published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Gap:
    dropped: int
    first_observed: str | None
    last_observed: str | None
    gap_id: str = ""
    recorded_at: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        return {
            "gap_id": self.gap_id,
            "dropped": self.dropped,
            "first_observed": self.first_observed,
            "last_observed": self.last_observed,
            "recorded_at": datetime.fromtimestamp(self.recorded_at, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }


#: Marks "not parsed yet" in :meth:`Outbox.put`'s per-call cache (None is a parsed value).
_UNSEEN: Any = object()


def _observed(body: dict[str, Any]) -> float | None:
    text = body.get("observed_at")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class Outbox:
    def __init__(
        self,
        path: Path,
        max_results: int,
        max_bytes: int = 256 * 2**20,
        max_age: float = 30 * 86400.0,
    ) -> None:
        self.path = path
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.max_age = max_age
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        # Running totals: counting a 500,000-row backlog on every put would cost ~20 ms each.
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)
        # A lower bound of the oldest ``observed`` kept: ``min(observed)`` has no index and
        # would scan the whole backlog on every put, so the real query runs only when this
        # bound says that something may have passed the age limit.
        oldest = self._db.execute("SELECT min(observed) FROM outbox").fetchone()[0]
        self._oldest: float = float("inf") if oldest is None else float(oldest)

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM outbox").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "outbox %s is unreadable (%s); moved to %s, starting empty", self.path, exc, aside
            )
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._open()

    def close(self) -> None:
        self._db.close()

    def put(self, results: Sequence[dict[str, Any]]) -> None:
        """Keep ``results`` (wire-shaped dicts) durably; drop the oldest beyond the bounds."""
        if not results:
            return
        # The results of one collection share one ``observed_at``: parse each text once.
        seen: dict[object, float | None] = {}
        rows = []
        for r in results:
            stamp = r.get("observed_at")
            observed = seen.get(stamp, _UNSEEN)
            if observed is _UNSEEN:
                observed = seen[stamp] = _observed(r)
            rows.append((orjson.dumps(r), observed))
        before = self._count, self._bytes, self._oldest
        try:
            self._put(rows)
        except BaseException:
            # Rolled back: the running totals go back to what the file holds.
            self._count, self._bytes, self._oldest = before
            raise

    def _put(self, rows: list[tuple[bytes, float | None]]) -> None:
        with self._tx():
            self._db.executemany("INSERT INTO outbox(body, observed) VALUES (?, ?)", rows)
            self._bytes += sum(len(b) for b, _ in rows)
            self._count += len(rows)
            excess = self.pending() - self.max_results
            if excess > 0:
                seq = self._db.execute(
                    "SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?", (excess - 1,)
                ).fetchone()[0]
                self._drop("seq <= ?", (seq,), "count")
            if self._bytes > self.max_bytes:
                self._drop_bytes()
            for _, observed in rows:
                if observed is not None and observed < self._oldest:
                    self._oldest = observed
            cutoff = time.time() - self.max_age
            if self._oldest < cutoff:
                oldest = self._db.execute("SELECT min(observed) FROM outbox").fetchone()[0]
                if oldest is not None and oldest < cutoff:
                    self._drop("observed < ?", (cutoff,), "age")
                    oldest = self._db.execute("SELECT min(observed) FROM outbox").fetchone()[0]
                self._oldest = float("inf") if oldest is None else float(oldest)

    def _drop_bytes(self) -> None:
        over, seq = self._bytes - self.max_bytes, 0
        for s, size in self._db.execute("SELECT seq, length(body) FROM outbox ORDER BY seq"):
            over -= size
            seq = s
            if over <= 0:
                break
        self._drop("seq <= ?", (seq,), "bytes")

    def _drop(self, where: str, args: tuple[Any, ...], bound: str) -> None:
        """Drop the rows matching ``where`` (always the oldest) and keep a gap record."""
        rows = self._db.execute(
            f"SELECT seq, body FROM outbox WHERE {where} ORDER BY seq", args
        ).fetchall()
        if not rows:
            return
        first = orjson.loads(rows[0][1]).get("observed_at")
        last = orjson.loads(rows[-1][1]).get("observed_at")
        self._db.execute(f"DELETE FROM outbox WHERE {where}", args)
        self._bytes -= sum(len(b) for _, b in rows)
        self._count -= len(rows)
        self._db.execute(
            "INSERT INTO gaps(dropped, first_observed, last_observed, recorded_at, gap_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (len(rows), first, last, time.time(), uuid.uuid4().hex),
        )
        log.warning(
            "outbox over its %s bound: dropped the %d oldest results, observed %s .. %s",
            bound,
            len(rows),
            first,
            last,
        )

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest ``limit`` results with their sequence numbers, still kept."""
        rows = self._db.execute(
            "SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [(seq, orjson.loads(body)) for seq, body in rows]

    def ack(self, up_to_seq: int) -> None:
        """The broker has acknowledged every result up to ``up_to_seq``."""
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox WHERE seq <= ?",
            (up_to_seq,),
        ).fetchone()
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (up_to_seq,))
        self._bytes -= int(size)
        self._count -= int(count)

    def pending(self) -> int:
        return self._count

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def dropped_total(self) -> int:
        row = self._db.execute("SELECT coalesce(sum(dropped), 0) FROM gaps").fetchone()
        return int(row[0])

    def gaps(self, unpublished: bool = False) -> list[Gap]:
        where = " WHERE published = 0" if unpublished else ""
        rows = self._db.execute(
            "SELECT dropped, first_observed, last_observed, coalesce(gap_id, ''), recorded_at"
            f" FROM gaps{where} ORDER BY id"
        ).fetchall()
        return [Gap(*r) for r in rows]

    def gaps_published(self, gap_ids: Sequence[str]) -> None:
        self._db.executemany(
            "UPDATE gaps SET published = 1 WHERE gap_id = ?", [(g,) for g in gap_ids]
        )

    def get_state(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_state(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO kv(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, orjson.dumps(value)),
        )

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
