"""Capacity plan, measured: database growth per device and per result, devices per agent and
results/s per collector, for a site of N devices polled at the catalogue's intervals.

Why a slice of the day rather than a whole day: 200 devices at the catalogue's intervals are
about 2.4 million results a day, more than an in-process ingest stores in a benchmark's
minute. So the script loads the day's first moments (every check's first poll, including
the once-a-day inventory), then consecutive five-minute steps of simulated time (every
periodic check is due at least once per step, the hourly ones once per twelve), each through
the collector's own ``Store``/``Ingestor`` into PostgreSQL and into SQLite, and measures the
size of every table after each step. What grows with results (``received``, the dedup keys,
and the rows of the incidents the simulated faults open) is then a slope in bytes per result,
and the rest (``targets``, ``current``, the month's ``inspection`` rows) a size per check
instance that does not grow with time within a month. The extrapolation to a day and a year
is arithmetic on those measured slopes, printed with its inputs.

Devices per agent and per collector are arithmetic too: results (or SNMP collections) per
device per second from the catalogue, against a measured rate — the collector's, measured
here while loading; the agent's, the ``snmp_throughput`` benchmark's polls/s (``--agent-polls``,
default the low end of its figures in the README).

PostgreSQL is a server of the script's own (``tests/support/postgres.py``); SQLite is a
temporary file with the collector's settings. Tables are measured after a plain ``VACUUM``
(PostgreSQL: the steady state autovacuum keeps; the UPDATE-heavy ``current`` and
``inspection`` tables are bigger between its runs) and a WAL checkpoint (SQLite).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench._common import Row, emit
from checks.catalogue import CheckItem, load_catalogue
from checks.topics import topic
from checks.wire import encode_batch
from collector.config import load_collector_config
from collector.ingest import Ingestor, Message
from collector.metrics import build_registry
from collector.store.db import Store
from tests.support.postgres import OwnPostgres

#: A video-surveillance estate like the demo site, scaled to 200 devices.
MIX: dict[str, int] = {
    "camera": 160,
    "switch": 20,
    "nvr": 8,
    "ups": 4,
    "server-snmp": 4,
    "windows-server": 4,
}
#: Instances of the per-interface / per-sensor / per-disk items, by class (a 24+4 port
#: access switch; an NVR with eight disks; a server with three file systems).
INSTANCES: dict[str, dict[str, int]] = {
    "camera": {"interface": 1, "sensor": 1, "entity": 1},
    "switch": {"interface": 28, "sensor": 2},
    "nvr": {"interface": 2, "entity": 8, "mount": 1},
    "ups": {"interface": 1, "sensor": 1},
    "server-snmp": {"interface": 1, "mount": 3, "entity": 2},
    "windows-server": {"interface": 1, "mount": 3, "entity": 2},
}
#: What an agent polls on an SNMP device without extra configuration (no [ssh], no [net]).
METHODS = ("snmp",)
DEVICES_PER_AGENT = 50
#: Results per MQTT message at most (the agent's default ``outbox.batch_size``).
AGENT_BATCH = 500
INSPECTION_INTERVAL = 86_400
STEP_S = 300
#: Share of devices with a fault episode (one check CRIT for one step) per step: about ten
#: incidents per step at 200 devices, enough rows to measure an incident's size.
FAULT_SHARE = 0.05
SITE = "s1"
#: How long the collector keeps msg_ids for deduplication (collector/runner.py DEDUP_HORIZON).
DEDUP_DAYS = 14
GROWING = ("received", "transitions", "incidents", "incident_events", "incident_impacts", "gaps")


@dataclass(frozen=True, slots=True)
class Instance:
    """One check instance of one device: what one result row describes."""

    target: str
    device_class: str
    check: str
    item: str
    interval: int


def plan(devices: dict[str, int]) -> list[Instance]:
    """Every polled check instance of the estate, from the catalogue."""
    catalogue = load_catalogue()
    out: list[Instance] = []
    for cls, n in devices.items():
        items: list[CheckItem] = [
            i for i in catalogue[cls].items if i.method in METHODS and not i.event
        ]
        for d in range(n):
            target = f"{cls}-{d:04d}"
            for it in items:
                interval = it.interval if it.interval is not None else INSPECTION_INTERVAL
                count = INSTANCES[cls].get(it.per, 1) if it.per else 1
                for k in range(count):
                    item = f"{it.per}{k + 1}" if it.per else ""
                    out.append(Instance(target, cls, it.id, item, interval))
    return out


def per_device_day(instances: Sequence[Instance], devices: int) -> float:
    return sum(86_400 / i.interval for i in instances) / devices


def collections_per_device_s(devices: dict[str, int]) -> float:
    """SNMP collections per device per second: the agent's scheduler runs a target's due
    checks of one method together, so a device costs one collection per distinct due
    instant (the shortest interval dominates), not one per check."""
    catalogue = load_catalogue()
    total = 0.0
    for cls, n in devices.items():
        intervals = {
            i.interval or INSPECTION_INTERVAL
            for i in catalogue[cls].items
            if i.method in METHODS and not i.event
        }
        instants = {t for iv in intervals for t in range(0, 86_400, iv)}
        total += n * len(instants) / 86_400
    return total / sum(devices.values())


def step_messages(
    instances: Sequence[Instance], t0: datetime, start: int, end: int, rng: random.Random
) -> list[tuple[datetime, Message]]:
    """The results due in ``[start, end)`` seconds after ``t0``, one message per agent per
    ten seconds (an agent's publisher sends what its outbox holds), in time order."""
    targets = sorted({i.target for i in instances})
    failing: dict[str, str] = {}
    for target in rng.sample(targets, k=max(1, round(len(targets) * FAULT_SHARE))):
        checks = sorted({i.check for i in instances if i.target == target and i.interval <= 300})
        failing[target] = rng.choice(checks)
    windows: dict[tuple[int, int], list[dict[str, Any]]] = {}
    agent_of = {t: n // DEVICES_PER_AGENT for n, t in enumerate(targets)}
    for inst in instances:
        first = ((start + inst.interval - 1) // inst.interval) * inst.interval
        for at in range(first, end, inst.interval):
            crit = failing.get(inst.target) == inst.check
            row: dict[str, Any] = {
                # 32 hex digits, like the agent's uuid4().hex: the dedup key's real size
                "msg_id": hashlib.md5(
                    f"{inst.target}|{inst.check}|{inst.item}|{at}".encode()
                ).hexdigest(),
                "target": inst.target,
                "class": inst.device_class,
                "check": inst.check,
                "status": "CRIT" if crit else "OK",
                "value": 99.0 if crit else 12.0,
                "observed_at": (t0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z"),
            }
            if inst.item:
                row["item"] = inst.item
            windows.setdefault((at // 10, agent_of[inst.target]), []).append(row)
    out: list[tuple[datetime, Message]] = []
    for (window, agent), rows in sorted(windows.items()):
        name = f"agent{agent:02d}"
        now = t0 + timedelta(seconds=window * 10 + 10)
        for n in range(0, len(rows), AGENT_BATCH):
            payload = encode_batch(SITE, name, rows[n : n + AGENT_BATCH], sent_at=now)
            out.append((now, Message(topic(SITE, name, "results"), payload)))
    return out


class Backend:
    """One database behind the collector's Store, and how to measure its tables."""

    name = ""

    def __init__(self, url: str) -> None:
        cfg = load_collector_config(None, {"database": {"url": url}})
        self.store = Store(cfg.database.url, cfg.tz)
        _, counters = build_registry(self.store)
        self.ingestor = Ingestor(
            self.store, load_catalogue(cfg.catalogue_dirs), cfg.rules(), counters
        )

    def sizes(self) -> dict[str, int]:
        raise NotImplementedError

    def total(self) -> int:
        raise NotImplementedError

    def server_cpu(self) -> float:
        """CPU seconds used so far by the database server's processes (none for SQLite)."""
        return 0.0

    def rows(self, table: str) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one())

    def close(self) -> None:
        self.store.close()


class PgBackend(Backend):
    name = "PostgreSQL"

    def __init__(self, pg: OwnPostgres) -> None:
        self.pg = pg
        url = pg.create_db("capacity")
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://")
        super().__init__(url)

    def sizes(self) -> dict[str, int]:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute("VACUUM")
            rows = db.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        return {str(name): int(size) for name, size in rows}

    def server_cpu(self) -> float:
        total = 0.0
        postmaster = psutil.Process(int((self.pg.data / "postmaster.pid").read_text().split()[0]))
        for proc in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def total(self) -> int:
        with psycopg.connect(self.dsn) as db:
            row = db.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


class SqliteBackend(Backend):
    name = "SQLite"

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"sqlite:///{path}")

    def sizes(self) -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            owner = dict(
                db.execute("SELECT name, tbl_name FROM sqlite_master WHERE tbl_name IS NOT NULL")
            )
            out: dict[str, int] = {}
            for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                table = owner.get(name, name)
                out[table] = out.get(table, 0) + int(size)
        return out

    def total(self) -> int:
        return self.path.stat().st_size


@dataclass(slots=True)
class Measured:
    backend: str
    results: list[int]
    sizes: list[dict[str, int]]
    incidents: list[int]
    rate: float
    totals: list[int]
    cpu: float = 0.0
    server_cpu: float = 0.0
    #: CPU µs per result: this process (the collector's code, and SQLite inside it), and the
    #: database server's processes (PostgreSQL only)
    cpu_us: float = 0.0
    server_cpu_us: float = 0.0


def load(
    backend: Backend,
    instances: Sequence[Instance],
    steps: int,
    budget: float,
    seed: int,
) -> Measured:
    """Load step 0 (the day's first poll of everything) and up to ``steps`` five-minute
    steps, measuring after each; stops early when ``budget`` seconds have passed."""
    rng = random.Random(seed)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
    m = Measured(backend.name, [], [], [], 0.0, [])
    started = time.monotonic()
    busy, done = 0.0, 0
    for step in range(steps + 1):
        start, end = (0, 1) if step == 0 else ((step - 1) * STEP_S + 1, step * STEP_S + 1)
        msgs = step_messages(instances, t0, start, end, rng)
        t, cpu = time.perf_counter(), time.process_time()
        server = backend.server_cpu()
        for now, msg in msgs:
            stats = backend.ingestor.handle(msg, now=now)
            if stats is None:
                raise AssertionError(f"{backend.name}: a message was rejected")
        took = time.perf_counter() - t
        cpu_took = time.process_time() - cpu
        server_took = backend.server_cpu() - server
        n = len(msgs)
        count = backend.rows("received")
        if step > 0:
            busy += took
            done += count - m.results[-1]
            m.cpu += cpu_took
            m.server_cpu += server_took
        m.results.append(count)
        m.sizes.append(backend.sizes())
        m.totals.append(backend.total())
        m.incidents.append(backend.rows("incidents"))
        print(
            f"  {backend.name} step {step}: {count:,} results stored ({n} messages, "
            f"{took:.1f} s), {m.totals[-1] / 1e6:.1f} MB",
            flush=True,
        )
        if step >= 2 and time.monotonic() - started > budget:
            break
    m.rate = done / busy if busy else float("nan")
    m.cpu_us = m.cpu / done * 1e6 if done else float("nan")
    m.server_cpu_us = m.server_cpu / done * 1e6 if done else float("nan")
    return m


def slope(m: Measured, tables: Sequence[str]) -> float:
    """Bytes per result of ``tables`` between step 1 and the last step: step 0 creates
    every fixed row, and step 1's first pages hide page-granularity effects."""
    first, last = 1, len(m.results) - 1
    grown = sum(m.sizes[last].get(t, 0) - m.sizes[first].get(t, 0) for t in tables)
    return grown / (m.results[last] - m.results[first])


def fixed_bytes(m: Measured, tables: Sequence[str]) -> int:
    return sum(m.sizes[0].get(t, 0) for t in tables)


def report(m: Measured, instances: Sequence[Instance], devices: int) -> dict[str, float]:
    """Print the figures for one backend; returns the headline ones."""
    per_day = per_device_day(instances, devices)
    per_instance = len(instances) / devices
    recv = slope(m, ("received",))
    incident_tables = ("transitions", "incidents", "incident_events", "incident_impacts")
    incs = m.incidents[-1] - m.incidents[1]
    inc_bytes = sum(m.sizes[-1].get(t, 0) - m.sizes[1].get(t, 0) for t in incident_tables)
    per_incident = inc_bytes / incs if incs else float("nan")
    fixed_tables = [t for t in m.sizes[0] if t not in GROWING]
    fixed = fixed_bytes(m, fixed_tables) / devices
    inspection = m.sizes[0].get("inspection", 0) / devices
    all_tables = list(m.sizes[-1])
    total = slope(m, all_tables)
    print(f"{m.backend}:")
    print(
        f"  growth while loading, all tables: {total:.0f} B per result"
        f" = {total * per_day / 1e6:.2f} MB per device per day"
        f" = {total * per_day * 1000 * 365 / 1e9:,.0f} GB per 1,000 devices per year if"
        " nothing were ever pruned"
    )
    print(
        f"  received (dedup keys, pruned after {DEDUP_DAYS} days): {recv:.0f} B per result"
        f" = {recv * per_day * DEDUP_DAYS * 1000 / 1e9:.1f} GB per 1,000 devices, bounded"
    )
    print(
        f"  fixed per device (targets, current state, this month's inspection rows, …):"
        f" {fixed / 1e3:.1f} kB ({per_instance:.0f} check instances);"
        f" inspection alone {inspection / 1e3:.1f} kB per device per month"
        f" = {inspection * 12 * 1000 / 1e9:.2f} GB per 1,000 devices per year"
    )
    print(
        f"  per incident (with its transitions and timeline): {per_incident:,.0f} B"
        f" ({incs} incidents in the measured steps);"
        f" at one incident per device per month: "
        f"{per_incident * 12 * 1000 / 1e6:.1f} MB per 1,000 devices per year"
    )
    server = f", PostgreSQL {m.server_cpu_us:.0f} µs" if m.server_cpu_us else ""
    print(
        f"  ingest in-process: {m.rate:,.0f} results/s; CPU per result: collector code"
        f" {m.cpu_us:.0f} µs{server}"
    )
    return {
        "per_result": total,
        "received_per_result": recv,
        "fixed_per_device": fixed,
        "inspection_per_device_month": inspection,
        "per_incident": per_incident,
        "ingest_rate": m.rate,
        "cpu_us": m.cpu_us,
        "server_cpu_us": m.server_cpu_us,
    }


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="50 devices, a few steps")
    parser.add_argument("--budget", type=float, default=None, help="seconds per database")
    parser.add_argument("--devices", type=int, default=None, help="estate size (default 200)")
    parser.add_argument("--steps", type=int, default=24, help="five-minute steps at most")
    parser.add_argument(
        "--agent-polls",
        type=float,
        default=159.0,
        help="agent SNMP polls/s (bench.snmp_throughput; default: the README's low end)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    devices = args.devices or (50 if args.quick else 200)
    budget = args.budget or (10.0 if args.quick else 22.0)
    scale = devices / sum(MIX.values())
    mix = {c: max(1, round(n * scale)) for c, n in MIX.items()}
    devices = sum(mix.values())
    instances = plan(mix)
    per_day = per_device_day(instances, devices)
    print(
        f"{devices} devices ({', '.join(f'{n} {c}' for c, n in mix.items())}): "
        f"{len(instances):,} check instances, {per_day:,.0f} results per device per day "
        f"({per_day * devices / 86_400:.1f} results/s for the estate)"
    )
    for cls in mix:
        mine = [i for i in instances if i.device_class == cls]
        one = len({i.target for i in mine})
        print(f"  {cls:15} {len(mine) / one:5.0f} checks, {per_device_day(mine, one):7,.0f}/day")
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-capacity-"))
    pg = OwnPostgres()
    measured: list[Measured] = []
    try:
        pg.start()
        for backend_factory in (lambda: PgBackend(pg), lambda: SqliteBackend(tmp / "c.db")):
            backend = backend_factory()
            try:
                measured.append(load(backend, instances, args.steps, budget, seed=11))
            finally:
                backend.close()
    finally:
        with contextlib.suppress(Exception):
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {m.backend: report(m, instances, devices) for m in measured}
    steps = len(measured[0].results) - 1
    print(f"(measured over {steps} steps = {steps * STEP_S / 60:.0f} simulated minutes)")

    collections = collections_per_device_s(mix)
    headroom = 0.5
    per_agent = args.agent_polls * headroom / collections
    results_s = per_day / 86_400
    print(
        f"agent: {collections * 60:.2f} SNMP collections per device per minute; at "
        f"{args.agent_polls:g} polls/s and half of it used: {per_agent:,.0f} devices per agent"
        " (CPU only: an SNMP poll of a real device waits on its answer, see bench/README.md)"
    )
    for name, f in figures.items():
        # One collector stores a batch at a time and waits for its database, so its code and
        # the server's work for it add up on one chain: at most about one core.
        chain = 1e6 / (f["cpu_us"] + f["server_cpu_us"])
        print(
            f"collector ({name}): measured {f['ingest_rate']:,.0f} results/s on this shared"
            f" machine; at most {chain:,.0f} results/s for one collector on an idle core"
            f" (collector {f['cpu_us']:.0f} µs"
            + (f" + database {f['server_cpu_us']:.0f} µs" if f["server_cpu_us"] else "")
            + f" per result); with half of that in reserve: {chain * headroom / results_s:,.0f}"
            " devices like these per collector"
        )
    pgf = figures["PostgreSQL"]
    sqf = figures["SQLite"]
    emit(
        [
            Row(
                benchmark="capacity",
                what="database bytes per stored result (all tables), realistic estate",
                anchor="the result's own JSON on the wire",
                ratio=pgf["per_result"] / wire_bytes_per_result(instances),
                figures=(
                    f"PostgreSQL {pgf['per_result']:.0f} B/result, SQLite "
                    f"{sqf['per_result']:.0f} B/result; "
                    f"{pgf['per_result'] * per_day / 1e6:.2f} MB per device per day "
                    f"before the {DEDUP_DAYS}-day prune"
                ),
                extra={
                    "pg_per_result": pgf["per_result"],
                    "sqlite_per_result": sqf["per_result"],
                    "results_per_device_day": per_day,
                    "devices_per_agent": per_agent,
                    "pg_ingest_rate": pgf["ingest_rate"],
                    "sqlite_ingest_rate": sqf["ingest_rate"],
                },
            )
        ]
    )
    return 0


def wire_bytes_per_result(instances: Sequence[Instance]) -> float:
    """Mean size of one result inside a batch payload: the anchor of the row's ratio."""
    rng = random.Random(3)
    t0 = datetime.now(UTC)
    msgs = step_messages(instances[:2000], t0, 1, STEP_S + 1, rng)
    size = sum(len(m.payload) for _, m in msgs)
    count = sum(len(m.payload.split(b'"msg_id"')) - 1 for _, m in msgs)
    return size / count


if __name__ == "__main__":
    sys.exit(main())
