"""Collector ingest throughput: what one result costs from MQTT payload to committed state.

Why: every result an agent publishes goes through :meth:`collector.ingest.Ingestor.handle`
(topic check, schema v1 validation, deduplication on ``msg_id``, then one transaction writing
current state, transitions, the month's inspection record and incidents). The collector's
PUBACK waits for that commit, so its cost per result bounds how many agents one collector
can serve.

What is timed: ``Ingestor.handle(Message(topic, payload))`` for pre-encoded batches of 500
results (200 targets × 10 checks, four agents of 50 targets each, one batch per agent per
60-second cycle; about 6 % of checks CRIT at any time, so incidents open, repeat and
resolve), into a :class:`collector.store.db.Store` on a temporary SQLite file.

Anchor, measured in the same run and interleaved batch by batch (the order alternates, so a
noisy neighbour hits both alike): the floor of "just writing it down": ``orjson.loads`` of the
same payload and one ``executemany`` of its rows into a plain SQLite table (``msg_id`` primary
key, same file settings: WAL, ``synchronous=FULL``), one commit per batch, exactly as many
commits (fsyncs) as fieldmon does. The anchor's batch takes milliseconds, so it is repeated
:data:`ANCHOR_COPIES` times into identical tables and its median kept. The wiring of the
ingestor mirrors ``collector/runner.py`` (default ``CollectorConfig``, its ``rules()``).

The first cycle (which creates every row) is reported apart; the headline is the median of
the per-cycle ratios over the later cycles. A diagnostic batch at the end counts SQL
statements per result by kind, UPDATEs that matched no row, and the time inside SQLite.

Then a duplicate-replay pass (QoS 1 redelivery, outbox replay): the same payloads again, all
of which must come back as duplicates; its anchor is ``orjson.loads`` plus one
``SELECT … WHERE msg_id IN (…)`` per batch on the plain table.

Run: ``.venv/bin/python -m bench.ingest [--quick]``.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench._common import Deadline, Row, emit, median, parse_args, spread
from checks.catalogue import load_catalogue
from checks.result import Result, Value
from checks.status import Status
from checks.topics import parse_topic, topic
from checks.wire import decode_batch, encode_batch, result_to_wire
from collector.config import load_collector_config
from collector.ingest import Ingestor, Message
from collector.metrics import build_registry
from collector.mqtt_source import tune_gc
from collector.store.db import Store

SITE = "bench-site"
AGENTS = 4
TARGETS_PER_AGENT = 50
CHECKS_PER_TARGET = 10
BATCH = TARGETS_PER_AGENT * CHECKS_PER_TARGET  # 500 results, one message per agent and cycle
CYCLE = timedelta(seconds=60)
#: Per cycle, an OK check turns CRIT with this probability and a CRIT one recovers with the
#: next; the steady share of CRIT checks is about FAIL / (FAIL + RECOVER) = 6 %.
FAIL, RECOVER, WARN_SHARE = 0.02, 0.3, 0.03
SEED = 20261123
#: How many times the anchor writes each batch (into identical tables); the median is used.
ANCHOR_COPIES = 5

#: (check, item, unit, kind) of a linux-server target: ten results per cycle.
LINUX_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    ("host.reachable", "", "", "reach"),
    ("cpu.usage", "", "%", "pct"),
    ("mem.usage", "", "%", "pct"),
    ("swap.usage", "", "%", "pct"),
    ("disk.usage", "/", "%", "pct"),
    ("disk.usage", "/var", "%", "pct"),
    ("disk.inodes", "/", "%", "pct"),
    ("disk.inodes", "/var", "%", "pct"),
    ("load.per_cpu", "", "", "load"),
    ("uptime", "", "s", "uptime"),
)
#: (check, item, unit, kind) of an snmp-device target (an access switch): ten results.
SNMP_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    ("snmp.reachable", "", "", "reach"),
    ("snmp.uptime", "", "s", "uptime"),
    *((("if.oper_status", f"GigabitEthernet0/0/{n}", "", "iface")) for n in range(1, 9)),
)


@dataclass(frozen=True, slots=True)
class Workload:
    """Pre-encoded messages, one list (one batch per agent) per cycle. Encoding is the
    agent's cost, so it happens before anything is timed."""

    agents: int
    cycles: list[list[Message]]

    @property
    def results_per_cycle(self) -> int:
        return self.agents * BATCH


def _measure(kind: str, status: Status, rng: random.Random) -> tuple[Value, str]:
    """A plausible value and summary for one check of ``kind`` in ``status``."""
    if kind == "reach":
        if status == Status.CRIT:
            return "down", "no SNMP answer: no answer to GET within 2 s (2 attempts)"
        return "up", f"answered in {rng.randint(1, 40)} ms"
    if kind == "pct":
        pct = {Status.OK: rng.uniform(3, 80), Status.WARN: 88.0, Status.CRIT: 97.5}[status]
        pct = round(pct, 1)
        return pct, "" if status == Status.OK else f"{pct:g}% (threshold upper 85/95)"
    if kind == "load":
        load = {Status.OK: rng.uniform(0, 1.5), Status.WARN: 2.5, Status.CRIT: 6.0}[status]
        return round(load, 2), "" if status == Status.OK else f"{load:g} per CPU"
    if kind == "uptime":
        secs = 120.0 if status == Status.CRIT else float(rng.randint(86_400, 90 * 86_400))
        return secs, "rebooted 2 minutes ago" if status == Status.CRIT else "up 23d 4h"
    if status == Status.CRIT:
        return "down", "down, was up before"
    return "up", "up"


def build_workload(cycles: int, agents: int = AGENTS, seed: int = SEED) -> Workload:
    """``cycles`` × ``agents`` batches of 500 results with evolving statuses: checks fail and
    recover over the cycles, so incidents open, repeat and resolve as in the field."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - CYCLE * (cycles + 1)
    failing: dict[tuple[int, int], bool] = {}
    out: list[list[Message]] = []
    for cycle in range(cycles):
        observed = start + CYCLE * cycle
        messages: list[Message] = []
        for a in range(agents):
            agent = f"agent-{a:02d}"
            wire: list[dict[str, Any]] = []
            for t in range(a * TARGETS_PER_AGENT, (a + 1) * TARGETS_PER_AGENT):
                linux = t % 2 == 0
                name = f"srv-{t:03d}" if linux else f"sw-{t:03d}"
                cls = "linux-server" if linux else "snmp-device"
                for c, (check, item, unit, kind) in enumerate(
                    LINUX_CHECKS if linux else SNMP_CHECKS
                ):
                    was = failing.get((t, c), rng.random() < FAIL / (FAIL + RECOVER))
                    now_failing = rng.random() >= RECOVER if was else rng.random() < FAIL
                    failing[(t, c)] = now_failing
                    status = Status.CRIT if now_failing else Status.OK
                    if (
                        status == Status.OK
                        and kind in ("pct", "load")
                        and rng.random() < WARN_SHARE
                    ):
                        status = Status.WARN
                    value, summary = _measure(kind, status, rng)
                    facts: dict[str, str] = {}
                    if kind == "reach":
                        facts = {
                            "address": f"10.{a}.{t // 250}.{t % 250 + 1}",
                            "location": f"Cabinet {t % 7}",
                        }
                    elif kind == "iface":
                        facts = {"if_index": str(5 + c)}
                    wire.append(
                        result_to_wire(
                            Result(
                                target=name,
                                target_class=cls,
                                check=check,
                                item=item,
                                status=status,
                                value=value,
                                unit=unit,
                                summary=summary,
                                observed_at=observed + timedelta(milliseconds=t * 37 + c),
                                facts=facts,
                                msg_id=f"c{cycle:05d}t{t:04d}k{c:02d}",
                            )
                        )
                    )
            payload = encode_batch(SITE, agent, wire, sent_at=observed + timedelta(seconds=5))
            messages.append(Message(topic(SITE, agent, "results"), payload))
        out.append(messages)
    return Workload(agents, out)


class PlainTable:
    """The anchor: the same rows into a plain SQLite table, one executemany per batch.

    The anchor's batch takes milliseconds where fieldmon's takes a second, so one fsync
    disturbed by a neighbour would swing the ratio; it is therefore written ``copies`` times
    (into as many identical tables, so every insert is a fresh one) and the median is used.
    """

    COLUMNS = (
        "msg_id, site, agent, target, class, check_id, item, status, value, unit, summary,"
        " observed_at, facts"
    )

    def __init__(self, path: Path, copies: int) -> None:
        self.copies = copies
        self.conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        columns = self.COLUMNS.replace("msg_id", "msg_id TEXT PRIMARY KEY")
        for copy in range(copies):
            self.conn.execute(f"CREATE TABLE results_{copy} ({columns})")

    def write(self, msg: Message, copy: int) -> int:
        data = orjson.loads(msg.payload)
        site, agent = data["site"], data["agent"]
        rows = [
            (
                r["msg_id"],
                site,
                agent,
                r["target"],
                r["class"],
                r["check"],
                r.get("item", ""),
                r["status"],
                r.get("value"),
                r.get("unit", ""),
                r.get("summary", ""),
                r["observed_at"],
                orjson.dumps(r["facts"]) if "facts" in r else None,
            )
            for r in data["results"]
        ]
        marks = ", ".join("?" * 13)
        self.conn.execute("BEGIN")
        self.conn.executemany(f"INSERT INTO results_{copy} ({self.COLUMNS}) VALUES ({marks})", rows)
        self.conn.execute("COMMIT")
        return len(rows)

    def seen(self, msg: Message, copy: int) -> int:
        """Dedup floor: how many of the payload's msg_ids the table already holds."""
        ids = [r["msg_id"] for r in orjson.loads(msg.payload)["results"]]
        marks = ", ".join("?" * len(ids))
        self.conn.execute("BEGIN")
        found = self.conn.execute(
            f"SELECT msg_id FROM results_{copy} WHERE msg_id IN ({marks})", ids
        ).fetchall()
        self.conn.execute("COMMIT")
        return len(found)

    def close(self) -> None:
        self.conn.close()


def make_ingestor(db_path: Path) -> Ingestor:
    """The collector's ingest path wired as ``collector run`` wires it (see
    ``collector/runner.py``), from a default configuration on a fresh database file."""
    cfg = load_collector_config(None, {"database": {"url": f"sqlite:///{db_path}"}})
    store = Store(cfg.database.url, cfg.tz)
    # The collector's MQTT consumer tunes the garbage collector for ingest when it starts
    # (collector.mqtt_source.tune_gc); the benchmark's process gets the same setting.
    tune_gc()
    _, counters = build_registry(store)
    return Ingestor(store, load_catalogue(cfg.catalogue_dirs), cfg.rules(), counters)


def time_fieldmon(ingestor: Ingestor, messages: Sequence[Message], *, fresh: bool) -> float:
    """Seconds to handle ``messages``; checks every batch was fully accepted (or, on replay,
    fully recognised as duplicates), so a silent rejection cannot look like a speed-up."""
    spent = 0.0
    for msg in messages:
        t0 = time.perf_counter()
        stats = ingestor.handle(msg)
        spent += time.perf_counter() - t0
        assert stats is not None, f"batch rejected on {msg.topic}"
        if fresh:
            assert stats.accepted == BATCH and stats.duplicates == 0, stats
        else:
            assert stats.accepted == 0 and stats.duplicates == BATCH, stats
    return spent


def time_anchor(plain: PlainTable, msg: Message, *, fresh: bool) -> float:
    """Median seconds of the anchor on one batch over the table's copies."""
    times: list[float] = []
    for copy in range(plain.copies):
        t0 = time.perf_counter()
        n = plain.write(msg, copy) if fresh else plain.seen(msg, copy)
        times.append(time.perf_counter() - t0)
        assert n == BATCH, n
    return median(times)


def _statement_kind(statement: str) -> str:
    """``VERB table`` of one SQL statement, e.g. ``SELECT current``."""
    words = statement.replace('"', "").split()
    verb = words[0].upper() if words else "?"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    for keyword in ("INTO", "FROM"):
        if keyword in words[:-1]:
            return f"{verb} {words[words.index(keyword) + 1]}"
    return verb


@dataclass(slots=True)
class Profile:
    """Where a fresh result's time goes (diagnostic pass, not part of any ratio)."""

    results: int = 0
    seconds: float = 0.0
    sqlite_seconds: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    #: UPDATE statements that matched no row: a round trip that changed nothing.
    idle_updates: Counter[str] = field(default_factory=Counter)

    @property
    def per_result(self) -> float:
        return sum(self.statements.values()) / self.results


def profile_batch(ingestor: Ingestor, msg: Message) -> Profile:
    """Handle one more fresh batch counting SQL statements by kind and the time spent inside
    SQLite's ``cursor.execute`` (the rest is Python: SQLAlchemy, msgspec, fieldmon)."""
    prof = Profile(results=BATCH)
    started: list[float] = []

    def before(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        prof.statements[_statement_kind(statement)] += 1  # one round trip into SQLite
        started.append(time.perf_counter())

    def after(_c: Any, cursor: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        prof.sqlite_seconds += time.perf_counter() - started.pop()
        kind = _statement_kind(statement)
        if kind.startswith("UPDATE") and cursor.rowcount == 0:
            prof.idle_updates[kind] += 1

    engine = ingestor.store.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        prof.seconds = time_fieldmon(ingestor, [msg], fresh=True)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return prof


def validation_cost(messages: Sequence[Message]) -> float:
    """Seconds per result of ``checks.wire.decode_batch`` alone (JSON + msgspec), no DB."""
    t0 = time.perf_counter()
    for msg in messages:
        decode_batch(msg.payload, parse_topic(msg.topic))
    return (time.perf_counter() - t0) / (len(messages) * BATCH)


def _interleaved(
    ingestor: Ingestor,
    plain: PlainTable,
    cycles: Sequence[list[Message]],
    deadline: Deadline,
    *,
    fresh: bool,
    min_cycles: int,
    reserve: float,
) -> tuple[list[float], list[float]]:
    """Per-cycle seconds of fieldmon and of the anchor on the same messages, batch by batch,
    alternating which goes first; stops early (after ``min_cycles``) when the next cycle
    would not fit the budget. A replay (``fresh=False``) changes nothing, so fieldmon's
    replay of each batch is repeated like the anchor and the median kept."""
    fm: list[float] = []
    an: list[float] = []
    repeats = 1 if fresh else plain.copies
    for i, messages in enumerate(cycles):
        if i >= min_cycles and not deadline.allows(fm[-1] + an[-1] * plain.copies, reserve):
            break
        fm_cycle = an_cycle = 0.0
        for j, msg in enumerate(messages):
            if (i + j) % 2 == 0:
                an_cycle += time_anchor(plain, msg, fresh=fresh)
            fm_cycle += median(
                [time_fieldmon(ingestor, [msg], fresh=fresh) for _ in range(repeats)]
            )
            if (i + j) % 2 == 1:
                an_cycle += time_anchor(plain, msg, fresh=fresh)
        fm.append(fm_cycle)
        an.append(an_cycle)
    return fm, an


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "ingest", argv)
    # Quick: one agent (50 targets, one batch per cycle), so a cycle takes a second or two.
    agents, max_cycles, min_cycles = (1, 8, 3) if args.quick else (AGENTS, 40, 3)
    deadline = Deadline(args.budget)
    workload = build_workload(max_cycles + 1, agents)  # a spare cycle for the profile
    n = workload.results_per_cycle
    print(
        f"ingest: {agents} agent(s) × {TARGETS_PER_AGENT} targets × {CHECKS_PER_TARGET} "
        f"checks = {n} results per cycle in batches of {BATCH}; up to {max_cycles} cycles, "
        f"budget {args.budget:g} s (workload built in {deadline.elapsed():.1f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="fieldmon-bench-") as tmp:
        ingestor = make_ingestor(Path(tmp) / "collector.db")
        plain = PlainTable(Path(tmp) / "plain.db", ANCHOR_COPIES)
        try:
            # Keep about 15 % of the budget for the replay and the profile batch.
            fm_cycle, an_cycle = _interleaved(
                ingestor,
                plain,
                workload.cycles[:max_cycles],
                deadline,
                fresh=True,
                min_cycles=min_cycles,
                reserve=0.15 * args.budget,
            )
            ran = workload.cycles[: len(fm_cycle)]
            fm_dup, an_dup = _interleaved(
                ingestor, plain, ran, deadline, fresh=False, min_cycles=min_cycles, reserve=2.0
            )
            prof = profile_batch(ingestor, workload.cycles[max_cycles][0])
            valid = validation_cost([m for c in ran[:3] for m in c])
            opened = len(ingestor.store.incidents(limit=1_000_000))
            open_now = sum(count for _, _, count in ingestor.store.open_counts())
        finally:
            plain.close()
            ingestor.store.close()

    # Cycle 0 creates every target/current/inspection row; later cycles are the steady state.
    ratios = [f / a for f, a in zip(fm_cycle[1:], an_cycle[1:], strict=True)]
    fm_cost = median([t / n for t in fm_cycle[1:]])
    an_cost = median([t / n for t in an_cycle[1:]])
    ratio = median(ratios)
    dup_ratios = [f / a for f, a in zip(fm_dup, an_dup, strict=True)]
    dup_cost = median([t / n for t in fm_dup])
    dup_floor = median([t / n for t in an_dup])
    dup_ratio = median(dup_ratios)
    print(
        f"cycles: {len(fm_cycle)} × {n} results fresh, then {len(fm_dup)} × {n} replayed "
        f"(every one came back as a duplicate); {deadline.elapsed():.1f} s"
    )
    print(
        f"first cycle (creates all rows): fieldmon {n / fm_cycle[0]:,.0f} results/s, "
        f"anchor {n / an_cycle[0]:,.0f} results/s, ratio {fm_cycle[0] / an_cycle[0]:.1f}"
    )
    print(
        f"steady state, fresh results:   fieldmon {1 / fm_cost:,.0f} results/s "
        f"({fm_cost * 1e6:,.0f} µs/result)   anchor {1 / an_cost:,.0f} results/s "
        f"({an_cost * 1e6:.1f} µs/result)"
    )
    print(f"  RATIO fieldmon ÷ anchor, cost per result: {ratio:.1f}  (per cycle {spread(ratios)})")
    print(
        f"duplicate replay:              fieldmon {1 / dup_cost:,.0f} results/s "
        f"({dup_cost * 1e6:.1f} µs/result)   dedup floor {1 / dup_floor:,.0f} results/s "
        f"({dup_floor * 1e6:.1f} µs/result)"
    )
    print(
        f"  RATIO fieldmon ÷ dedup floor: {dup_ratio:.1f}  (per cycle {spread(dup_ratios)}); "
        f"replay ÷ insert anchor: {dup_cost / an_cost:.2f}"
    )
    sqlite_share = prof.sqlite_seconds / prof.seconds
    print(
        f"diagnostics (one more fresh batch of {BATCH}): {prof.per_result:.2f} SQL statements "
        f"per result, {prof.seconds / BATCH * 1e6:,.0f} µs/result of which "
        f"{sqlite_share:.0%} inside sqlite3 cursor.execute; validation alone (decode_batch) "
        f"{valid * 1e6:.0f} µs/result = {valid / fm_cost:.1%} of a fresh result"
    )
    kinds = ", ".join(
        f"{k} {v / BATCH:.2f}" for k, v in prof.statements.most_common() if v / BATCH >= 0.005
    )
    print(f"  statements per result by kind: {kinds}")
    idle = ", ".join(f"{k} {v / BATCH:.2f}" for k, v in prof.idle_updates.most_common())
    print(
        f"  UPDATEs that matched no row: {sum(prof.idle_updates.values()) / BATCH:.2f} per "
        f"result ({idle or 'none'})"
    )
    print(f"  incidents opened over the run: {opened}; open at the end: {open_now}")
    emit(
        [
            Row(
                benchmark="ingest",
                what=(
                    "collector `Ingestor.handle`: validation + dedup + store, batches of 500, "
                    "SQLite WAL + synchronous=FULL"
                ),
                anchor="`orjson.loads` + one `executemany` per batch into a plain SQLite table",
                ratio=ratio,
                figures=(
                    f"{1 / fm_cost:,.0f} vs {1 / an_cost:,.0f} results/s "
                    f"({fm_cost * 1e6:,.0f} vs {an_cost * 1e6:.0f} µs/result); "
                    f"{prof.per_result:.1f} SQL statements/result, "
                    f"{sqlite_share:.0%} of the time inside SQLite"
                ),
                extra={
                    "fieldmon_us_per_result": fm_cost * 1e6,
                    "anchor_us_per_result": an_cost * 1e6,
                    "validation_us_per_result": valid * 1e6,
                    "statements_per_result": prof.per_result,
                    "sqlite_share": sqlite_share,
                    "cycles": float(len(fm_cycle)),
                },
            ),
            Row(
                benchmark="ingest, duplicate replay",
                what="the same payloads again; every result must come back as a duplicate",
                anchor="`orjson.loads` + one `SELECT … IN (…)` per batch on the plain table",
                ratio=dup_ratio,
                figures=(
                    f"{1 / dup_cost:,.0f} vs {1 / dup_floor:,.0f} results/s "
                    f"({dup_cost * 1e6:.0f} vs {dup_floor * 1e6:.0f} µs/result); "
                    f"{dup_cost / an_cost:.2f}× the insert anchor's cost"
                ),
                extra={
                    "fieldmon_us_per_result": dup_cost * 1e6,
                    "anchor_us_per_result": dup_floor * 1e6,
                },
            ),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
