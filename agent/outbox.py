"""The agent's store-and-forward buffer: results wait here until the broker acknowledges them.

A result is written (and fsynced) before it counts as taken; it leaves only after the
broker's PUBACK. If the buffer is full the oldest results are dropped, counted, and a gap
record kept, so the collector can show exactly what is missing instead of silently lying.
A corrupt file is moved aside and a fresh one started: the agent keeps working.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dropped INTEGER NOT NULL, first_observed TEXT, last_observed TEXT, recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Gap:
    dropped: int
    first_observed: str | None
    last_observed: str | None


class Outbox:
    def __init__(self, path: Path, max_results: int) -> None:
        self.path = path
        self.max_results = max_results
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
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
        """Keep ``results`` (wire-shaped dicts) durably; drop the oldest beyond the bound."""
        if not results:
            return
        with self._tx():
            self._db.executemany(
                "INSERT INTO outbox(body) VALUES (?)", [(orjson.dumps(r),) for r in results]
            )
            excess = self.pending() - self.max_results
            if excess > 0:
                self._drop_oldest(excess)

    def _drop_oldest(self, n: int) -> None:
        rows = self._db.execute(
            "SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", (n,)
        ).fetchall()
        first = orjson.loads(rows[0][1]).get("observed_at")
        last = orjson.loads(rows[-1][1]).get("observed_at")
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
        self._db.execute(
            "INSERT INTO gaps(dropped, first_observed, last_observed, recorded_at)"
            " VALUES (?, ?, ?, ?)",
            (len(rows), first, last, time.time()),
        )
        log.warning(
            "outbox full (%d results): dropped the %d oldest, observed %s .. %s",
            self.max_results,
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
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (up_to_seq,))

    def pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def dropped_total(self) -> int:
        row = self._db.execute("SELECT coalesce(sum(dropped), 0) FROM gaps").fetchone()
        return int(row[0])

    def gaps(self) -> list[Gap]:
        rows = self._db.execute(
            "SELECT dropped, first_observed, last_observed FROM gaps ORDER BY id"
        ).fetchall()
        return [Gap(*r) for r in rows]

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
