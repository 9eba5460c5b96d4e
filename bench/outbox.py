"""Outbox: results/s written and replayed by the agent's store-and-forward buffer, and its
memory while the broker is down.

Why: while the broker is unreachable every result of every target waits in the outbox
(``agent.outbox.Outbox``, a SQLite file); the agent must keep writing at its polling rate
without its memory growing with the backlog, and once the broker is back it must replay the
backlog faster than new results arrive.

What is measured, in this process, on a temporary file:

* **write**, broker down: batches of 14 wire-shaped results (one ``linux-server``
  collection) handed to the agent's own sink, ``agent.runner.OutboxSink``, inside a running
  event loop, exactly as the scheduler does, until the backlog reaches ``BACKLOG`` results;
  results/s, and the process's RSS (``/proc/self/status`` VmRSS) sampled every 10 % of the
  backlog: the figure is the growth from the first to the last sample (flat = the backlog
  lives on disk, not in memory);
* **replay**, broker back: what the publisher does per batch (``peek(500)`` then ``ack`` of
  the last sequence number), until the outbox is empty; results/s.

Anchor: the plainest way to do the same on the same kind of file (WAL, same synchronous
setting): ``orjson.dumps`` and one ``executemany`` of the batch into a bare table, one
transaction per batch, then for replay ``SELECT … LIMIT 500`` and ``DELETE … WHERE seq <= ?``.
Ratio = anchor rate ÷ fieldmon rate for writing (higher is worse); replay is printed beside.

Run: ``.venv/bin/python -m bench.outbox [--quick]``.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from agent.outbox import Outbox
from agent.runner import OutboxSink
from bench._common import Deadline, Row, emit, median, parse_args, spread
from checks.result import Result
from checks.status import Status
from checks.wire import result_to_wire

BATCH = 14
REPLAY_BATCH = 500


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def collection(n: int) -> list[Result]:
    """One linux-server collection's worth of results (fresh objects every time)."""
    now = datetime.now(UTC)
    return [
        Result(
            target=f"host-{n % 50:02d}",
            target_class="linux-server",
            check=f"check.{i}",
            status=Status.OK,
            value=float(i),
            unit="%",
            summary="within threshold",
            observed_at=now,
            facts={"n": str(n)},
        )
        for i in range(BATCH)
    ]


async def write_fieldmon(path: Path, backlog: int) -> tuple[float, float, list[float]]:
    """Results/s into a broker-down outbox, RSS growth (MiB) and the RSS samples."""
    outbox = Outbox(path, max_results=backlog * 2)
    sink = OutboxSink(outbox)
    samples = [rss_mib()]
    step = max(1, backlog // 10)
    written = 0
    started = time.perf_counter()
    while written < backlog:
        sink(collection(written))
        written += BATCH
        await asyncio.sleep(0)  # one loop turn, as between two collections
        if written // step != (written - BATCH) // step:
            samples.append(rss_mib())
    sink.flush()
    elapsed = time.perf_counter() - started
    assert outbox.pending() == written, (outbox.pending(), written)
    outbox.close()
    return written / elapsed, samples[-1] - samples[1], samples


def replay_fieldmon(path: Path) -> float:
    outbox = Outbox(path, max_results=10_000_000)
    total = outbox.pending()
    started = time.perf_counter()
    done = 0
    while batch := outbox.peek(REPLAY_BATCH):
        outbox.ack(batch[-1][0])
        done += len(batch)
    elapsed = time.perf_counter() - started
    assert done == total and outbox.pending() == 0, (done, total)
    outbox.close()
    return done / elapsed


def anchor(path: Path, backlog: int) -> tuple[float, float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)")
    written = 0
    started = time.perf_counter()
    while written < backlog:
        bodies = [(orjson.dumps(result_to_wire(r)),) for r in collection(written)]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t(body) VALUES (?)", bodies)
        db.execute("COMMIT")
        written += BATCH
    write_rate = written / (time.perf_counter() - started)
    started = time.perf_counter()
    done = 0
    query = "SELECT seq, body FROM t ORDER BY seq LIMIT ?"
    while rows := db.execute(query, (REPLAY_BATCH,)).fetchall():
        decoded = [orjson.loads(body) for _, body in rows]
        db.execute("DELETE FROM t WHERE seq <= ?", (rows[-1][0],))
        done += len(decoded)
    replay_rate = done / (time.perf_counter() - started)
    db.close()
    return write_rate, replay_rate


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "outbox", argv)
    backlog, max_rounds = (56_000, 2) if args.quick else (210_000, 6)
    deadline = Deadline(args.budget)
    folder = Path(tempfile.mkdtemp(prefix="fm-bench-outbox-"))
    writes: list[float] = []
    replays: list[float] = []
    a_writes: list[float] = []
    a_replays: list[float] = []
    growth: list[float] = []
    last = 0.0
    try:
        rounds = 0
        while rounds < max_rounds and (rounds < 2 or deadline.allows(last)):
            t0 = time.perf_counter()
            path = folder / f"fm-{rounds}.sqlite"
            order = [0, 1] if rounds % 2 == 0 else [1, 0]
            for which in order:
                if which == 0:
                    rate, grew, _ = asyncio.run(write_fieldmon(path, backlog))
                    writes.append(rate)
                    growth.append(grew)
                    replays.append(replay_fieldmon(path))
                else:
                    w, r = anchor(folder / f"anchor-{rounds}.sqlite", backlog)
                    a_writes.append(w)
                    a_replays.append(r)
            rounds += 1
            last = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_round = [a / f for a, f in zip(a_writes, writes, strict=True)]
    ratio = median(per_round)
    print(
        f"outbox: {rounds} rounds of {backlog} results (batches of {BATCH}) written with the "
        f"broker down, then replayed in batches of {REPLAY_BATCH}; {deadline.elapsed():.1f} s"
    )
    print(
        f"  write  fieldmon {median(writes):8.0f} results/s (rounds {spread(writes)})   "
        f"anchor {median(a_writes):8.0f} results/s"
    )
    print(
        f"  replay fieldmon {median(replays):8.0f} results/s (rounds {spread(replays)})   "
        f"anchor {median(a_replays):8.0f} results/s"
    )
    print(
        f"  RSS growth while the backlog grew from 10 % to 100 % of {backlog}: "
        f"{median(growth):.2f} MiB (rounds {spread(growth)})"
    )
    print(f"  RATIO anchor ÷ fieldmon write rate: {ratio:.2f} (rounds {spread(per_round)})")
    emit(
        [
            Row(
                benchmark="outbox",
                what=(
                    f"results/s written into the agent's outbox through OutboxSink with the "
                    f"broker down ({backlog} results, batches of {BATCH}), and replayed "
                    f"(peek/ack of {REPLAY_BATCH}); RSS growth over the backlog"
                ),
                anchor="orjson + executemany into a bare SQLite table, same file settings",
                ratio=ratio,
                figures=(
                    f"write {median(writes):.0f} vs {median(a_writes):.0f} results/s; replay "
                    f"{median(replays):.0f} vs {median(a_replays):.0f} results/s; RSS growth "
                    f"{median(growth):.2f} MiB over {backlog} results"
                ),
                extra={
                    "write_rate": median(writes),
                    "replay_rate": median(replays),
                    "anchor_write_rate": median(a_writes),
                    "anchor_replay_rate": median(a_replays),
                    "rss_growth_mib": median(growth),
                },
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
