"""Incident API latency with 100,000 incidents stored: list, search and one incident, p50/p99.

Why: the maintenance centre's screens and the customers' portal call ``GET /api/v1/incidents``
(the tracking record, searched by site, state, level, vendor, type and time) and
``GET /api/v1/incidents/{number}`` all day, on a database that keeps every incident of the
contract's years. The goal is p99 < 50 ms per request at 100,000 incidents.

Set-up: a temporary SQLite database created by :class:`collector.store.db.Store` (so the
schema and indexes are the product's own migrations), filled in bulk with SQLAlchemy Core:
100,000 incidents over the last 365 days (50 sites, 200 targets each, realistic checks,
vendors, device classes and levels; 3 % open, the rest resolved, closed or merged; numbers
from :func:`collector.incidents.engine.incident_number`) and one hash-chained "opened"
timeline entry each, so ``timeline_intact`` is really computed. Then a real collector process
(``python -m fieldmon collector run``, with a real Mosquitto so that /healthz is healthy)
serves that file, and this script times requests over loopback with one keep-alive
``http.client`` connection, as a portal's backend would.

Measured (each an HTTP GET with the admin token; customers add a site filter):

- ``list``: ``/api/v1/incidents?limit=50`` (the newest 50, the home screen)
- ``site+open``: ``/api/v1/incidents?site=…&state=open``
- ``level+since``: ``/api/v1/incidents?level=1&since=<30 days ago>``
- ``vendor+class+range``: ``/api/v1/incidents?vendor=…&class=…&since=…&until=…`` (point 9)
- ``one``: ``/api/v1/incidents/{number}`` of a random stored incident

Anchor, measured in the same run and interleaved round by round (the order rotates):
``GET /healthz`` on the same connection: the floor of the same HTTP stack (uvicorn, FastAPI,
a thread-pool hop and one ``SELECT 1``). Reported: p50/p99 per query and
p99(query) ÷ p99(healthz). Diagnostics: the SQL each query runs (captured from the product's
own ``Store.incidents``/``Store.incident`` in this process), its time in-process without HTTP,
and SQLite's ``EXPLAIN QUERY PLAN``, so a missing index shows up as ``SCAN incidents``.

Run: ``.venv/bin/python -m bench.api_latency [--quick]``.
"""

from __future__ import annotations

import http.client
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import event, insert

from bench._common import Deadline, Row, emit, median, parse_args
from collector.incidents.engine import incident_number
from collector.store.db import Store
from collector.store.incident_ops import GENESIS, SYSTEM, event_hash
from collector.store.schema import incident_events, incidents
from fieldmon.allinone import free_port
from tests.support.broker import Broker
from tests.support.configs import TOKENS, TOKENS_TOML
from tests.support.procs import Proc, http_json, wait_for

INCIDENTS = 100_000
SITES = [f"site-{n:02d}" for n in range(1, 51)]
TARGETS_PER_SITE = 200
DAYS = 365
OPEN_SHARE = 0.03
SEED = 20261123
GOAL_MS = 50.0
#: Rows per executemany when filling the database.
CHUNK = 10_000
#: Requests per query per round (each timed on its own).
PER_ROUND = 20
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

#: (device class, vendor, check, item, title) of the incidents.
KINDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("ip-camera", "hikvision", "host.reachable", "", "camera unreachable"),
    ("ip-camera", "dahua", "host.reachable", "", "camera unreachable"),
    ("ip-camera", "uniview", "video.signal", "", "no video signal"),
    ("nvr", "hikvision", "disk.health", "HDD3", "NVR disk failed"),
    ("nvr", "dahua", "record.status", "ch05", "recording stopped"),
    ("snmp-device", "huawei", "if.oper_status", "GigabitEthernet0/0/7", "port down"),
    ("snmp-device", "h3c", "snmp.reachable", "", "switch unreachable"),
    ("snmp-device", "huawei", "cpu.usage", "", "switch CPU high"),
    ("linux-server", "inspur", "disk.usage", "/var", "disk almost full"),
    ("linux-server", "sugon", "mem.usage", "", "memory high"),
    ("ups", "apc", "ups.on_battery", "", "UPS on battery"),
)


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    path: str
    #: How to run the same read in-process: the product's own Store call.
    direct: Callable[[Store], object]


@dataclass(slots=True)
class Timings:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0–1), nearest-rank on sorted samples."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fill(store: Store, count: int, rng: random.Random) -> list[str]:
    """Bulk-insert ``count`` incidents and their "opened" entries; their numbers."""
    numbers: list[str] = []
    first_open = count - int(count * OPEN_SHARE)
    span = timedelta(days=DAYS).total_seconds()
    with store.engine.begin() as conn:
        for start in range(1, count + 1, CHUNK):
            rows: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for inc_id in range(start, min(start + CHUNK, count + 1)):
                # Incidents open in id order over the year; the newest are the open ones.
                opened = NOW - timedelta(seconds=span * (1 - inc_id / (count + 1)))
                opened = opened.replace(microsecond=0)
                site = SITES[inc_id % len(SITES)]
                target_no = (inc_id // len(SITES)) % TARGETS_PER_SITE
                device_class, vendor, check, item, title = rng.choice(KINDS)
                target = f"{device_class}-{target_no:03d}"
                level = rng.choices((1, 2, 3, 4), (5, 15, 40, 40))[0]
                if inc_id >= first_open:
                    state = "open"
                else:
                    state = rng.choices(("resolved", "closed", "merged"), (7, 88, 5))[0]
                done = opened + timedelta(minutes=rng.randint(5, 3 * 24 * 60))
                number = incident_number(inc_id, opened)
                numbers.append(number)
                summary = f"{title} on {target} ({vendor})"
                rows.append(
                    {
                        "id": inc_id,
                        "number": number,
                        "site": site,
                        "target": target,
                        "check_key": f"{check}:{item}" if item else check,
                        "check": check,
                        "item": item,
                        "device_class": device_class,
                        "vendor": vendor,
                        "level": level,
                        "state": state,
                        "source": "auto",
                        "title": title,
                        "summary": summary,
                        "opened_at": opened,
                        "resolved_at": done if state != "open" else None,
                        "closed_at": done + timedelta(days=1) if state == "closed" else None,
                        "last_seen_at": done if state != "open" else opened,
                        "occurrences": rng.randint(1, 30),
                        "tier": 1,
                        "flapping": False,
                        "assignee": f"eng{inc_id % 12:02d}" if state != "open" else "",
                        "responded_at": opened + timedelta(minutes=rng.randint(1, 30)),
                        "pauses": [],
                        "breaches": [],
                        "impact_count": 0,
                        "caller": {},
                        "satisfaction": rng.randint(3, 5) if state == "closed" else None,
                    }
                )
                text = f"opened at level {level}: {summary}"
                data = {"level": level, "source": "auto"}
                events.append(
                    {
                        "incident_id": inc_id,
                        "at": opened,
                        "kind": "opened",
                        "author": SYSTEM,
                        "text": text,
                        "data": data,
                        "prev_hash": GENESIS,
                        "hash": event_hash(GENESIS, inc_id, opened, "opened", SYSTEM, text, data),
                    }
                )
            conn.execute(insert(incidents), rows)
            conn.execute(insert(incident_events), events)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return numbers


def queries(numbers: Sequence[str], rng: random.Random) -> tuple[list[Query], Callable[[], str]]:
    """The measured queries, and the path of "one" (a different stored incident each call)."""
    since30 = NOW - timedelta(days=30)
    since_q, until_q = NOW - timedelta(days=120), NOW - timedelta(days=90)
    site = SITES[6]
    picks = [rng.choice(numbers) for _ in range(1000)]
    counter = iter(range(10**9))

    def one_path() -> str:
        return f"/api/v1/incidents/{picks[next(counter) % len(picks)]}"

    def iso(dt: datetime) -> str:
        return dt.isoformat().replace("+00:00", "Z")

    out = [
        Query("list", "/api/v1/incidents?limit=50", lambda s: s.incidents(limit=50)),
        Query(
            "site+open",
            "/api/v1/incidents?" + urlencode({"site": site, "state": "open"}),
            lambda s: s.incidents(site=site, state="open", limit=200),
        ),
        Query(
            "level+since",
            "/api/v1/incidents?" + urlencode({"level": 1, "since": iso(since30)}),
            lambda s: s.incidents(level=1, since=since30, limit=200),
        ),
        Query(
            "vendor+class+range",
            "/api/v1/incidents?"
            + urlencode(
                {
                    "vendor": "hikvision",
                    "class": "nvr",
                    "since": iso(since_q),
                    "until": iso(until_q),
                }
            ),
            lambda s: s.incidents(
                vendor="hikvision", device_class="nvr", since=since_q, until=until_q, limit=200
            ),
        ),
        Query("one", "/api/v1/incidents/{number}", lambda s: s.incident(picks[0])),
    ]
    return out, one_path


class Client:
    """One keep-alive HTTP/1.1 connection to the collector."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[float, bytes]:
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        took = time.perf_counter() - t0
        if resp.status != 200:
            raise AssertionError(f"GET {path}: {resp.status} {body[:200]!r}")
        return took, body

    def close(self) -> None:
        self.conn.close()


def explain(store: Store, query: Query) -> tuple[float, list[str]]:
    """Seconds of the in-process Store call (median of 5) and the plan of its first SELECT."""
    captured: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        query.direct(store)
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
    took = []
    for _ in range(5):
        t0 = time.perf_counter()
        query.direct(store)
        took.append(time.perf_counter() - t0)
    statement, params = next((s, p) for s, p in captured if s.lstrip().upper().startswith("SEL"))
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"EXPLAIN QUERY PLAN {statement}", params)
        plan = [str(r[3]) for r in cur.fetchall()]
    finally:
        raw.close()
    return median(took), plan


def collector_config(tmp: Path, broker_port: int, http_port: int) -> Path:
    path = tmp / "collector.toml"
    path.write_text(
        'log_level = "WARNING"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nclient_id = "fieldmon-bench"\n'
        f'[database]\nurl = "sqlite:///{tmp}/collector.db"\n'
        f'[http]\nlisten = "127.0.0.1"\nport = {http_port}\n'
        + "".join(
            f'[[sites]]\nname = "{s}"\ncustomer = "Customer {s}"\ncontract = "FM-2026-{i:03d}"\n'
            f'title = "{s}"\nmaintainer = "Example Integrator"\n'
            for i, s in enumerate(SITES, 1)
        )
        + TOKENS_TOML,
        encoding="utf-8",
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "api_latency", argv)
    deadline = Deadline(args.budget)
    rng = random.Random(SEED)
    min_rounds = 3
    with tempfile.TemporaryDirectory(prefix="fieldmon-bench-") as tmp_name:
        tmp = Path(tmp_name)
        store = Store(f"sqlite:///{tmp}/collector.db")
        t0 = time.perf_counter()
        numbers = fill(store, INCIDENTS, rng)
        fill_s = time.perf_counter() - t0
        print(
            f"api_latency: {INCIDENTS:,} incidents + {INCIDENTS:,} timeline entries written in "
            f"{fill_s:.1f} s ({(tmp / 'collector.db').stat().st_size / 1e6:.0f} MB); "
            f"budget {args.budget:g} s"
        )
        measured, one_path = queries(numbers, rng)
        diagnostics = {q.name: explain(store, q) for q in measured}
        store.close()

        broker = Broker()
        broker.start()
        port = free_port()
        cfg = collector_config(tmp, broker.port, port)
        proc = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
        timings = Timings()
        sizes: dict[str, int] = {}
        rounds = 0
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 30, what="collector")
            client = Client(port, TOKENS["admin"])
            try:
                names = ["healthz", *(q.name for q in measured)]
                paths = {q.name: q.path for q in measured} | {"healthz": "/healthz"}
                # Warm-up: the first requests load code and fill SQLite's page cache.
                for name in names:
                    for _ in range(5):
                        path = one_path() if name == "one" else paths[name]
                        client.get(path)
                round_s = 0.0
                # A slow query gets fewer requests per round rather than eating the budget.
                slice_s = args.budget / (8 * len(names))
                while rounds < min_rounds or deadline.allows(round_s, reserve=1.0):
                    started = time.perf_counter()
                    order = names[rounds % len(names) :] + names[: rounds % len(names)]
                    for name in order:
                        spent = 0.0
                        for _ in range(PER_ROUND):
                            path = one_path() if name == "one" else paths[name]
                            took, body = client.get(path)
                            timings.add(name, took)
                            sizes[name] = len(body)
                            spent += took
                            if spent > slice_s:
                                break
                    rounds += 1
                    round_s = time.perf_counter() - started
            finally:
                client.close()
            listed = orjson.loads(client_get_once(port, paths["site+open"]))
            assert listed and all(i["state"] == "open" and i["site"] == SITES[6] for i in listed), (
                "site+open returned wrong rows"
            )
            detail = orjson.loads(client_get_once(port, f"/api/v1/incidents/{numbers[-1]}"))
            assert detail["timeline_intact"] is True and detail["number"] == numbers[-1]
        finally:
            proc.stop()
            broker.cleanup()

    floor = timings.samples["healthz"]
    floor_p50, floor_p99 = percentile(floor, 0.5), percentile(floor, 0.99)
    n = len(floor)
    print(
        f"{rounds} rounds, up to {PER_ROUND} requests per query per round (fewer for a query "
        f"slower than {args.budget / 8:.1f} s per round in all), one keep-alive connection, "
        f"order rotating; {deadline.elapsed():.1f} s"
    )
    print(f"{'query':<20}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p99/healthz':>13}  body")
    print(
        f"{'healthz (anchor)':<20}{n:>5}{floor_p50 * 1e3:>9.2f}{floor_p99 * 1e3:>9.2f}"
        f"{max(floor) * 1e3:>9.2f}{1.0:>13.2f}  {sizes['healthz']} B"
    )
    rows: list[Row] = []
    worst = ("", 0.0)
    for q in measured:
        s = timings.samples[q.name]
        p50, p99 = percentile(s, 0.5), percentile(s, 0.99)
        flag = "" if p99 * 1e3 < GOAL_MS else f"  ABOVE the {GOAL_MS:g} ms goal"
        print(
            f"{q.name:<20}{len(s):>5}{p50 * 1e3:>9.2f}{p99 * 1e3:>9.2f}{max(s) * 1e3:>9.2f}"
            f"{p99 / floor_p99:>13.2f}  {sizes[q.name]:,} B{flag}"
        )
        if p99 > worst[1]:
            worst = (q.name, p99)
        rows.append(
            Row(
                benchmark=f"api_latency, {q.name}",
                what=f"GET {q.path} over loopback, {INCIDENTS:,} incidents in SQLite; p99",
                anchor="GET /healthz on the same connection (p99)",
                ratio=p99 / floor_p99,
                figures=(
                    f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms vs healthz p99 "
                    f"{floor_p99 * 1e3:.1f} ms (goal p99 < {GOAL_MS:g} ms)"
                ),
                extra={
                    "p50_ms": p50 * 1e3,
                    "p99_ms": p99 * 1e3,
                    "anchor_p99_ms": floor_p99 * 1e3,
                    "sql_ms": diagnostics[q.name][0] * 1e3,
                    "samples": float(len(s)),
                },
            )
        )
    print("diagnostics: the same reads in-process (Store, no HTTP), median of 5, and the plan")
    for name, (took, plan) in diagnostics.items():
        scans = [p for p in plan if p.startswith("SCAN") or "TEMP B-TREE" in p]
        print(f"  {name:<20}{took * 1e3:8.2f} ms  {' | '.join(plan)}")
        if scans:
            print(f"  {'':<20}{'':>8}     ^ {'; '.join(scans)}")
    print(f"  worst p99: {worst[0]} {worst[1] * 1e3:.1f} ms (goal {GOAL_MS:g} ms)")
    emit(rows)
    return 0


def client_get_once(port: int, path: str) -> bytes:
    client = Client(port, TOKENS["admin"])
    try:
        return client.get(path)[1]
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
