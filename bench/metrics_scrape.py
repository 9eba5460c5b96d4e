"""/metrics scrape time with 10,000 targets × 10 checks stored, and the collector's memory.

Why: Prometheus scrapes the collector every 15 s; at the contract's largest size (10,000
devices, ten checks each) one scrape exposes 100,000 ``fieldmon_check_status`` series plus
the per-site device, incident and SLA families. The goal is a scrape served in < 500 ms.

Set-up: a temporary SQLite database created by :class:`collector.store.db.Store` (the
product's migrations), filled in bulk with SQLAlchemy Core: 10 sites × 1,000 targets (half
cameras answering ``snmp.reachable``, half Linux servers answering ``host.reachable``), ten
current check rows each (about 3 % CRIT, 2 % WARN), one agent per site, 300 open incidents.
Then a real ``python -m fieldmon collector run`` (with a real Mosquitto) serves that file and
this script times ``GET /metrics`` over loopback on one keep-alive connection.

Anchor, interleaved scrape by scrape: the floor of exposing the same 100,000 series with the
Prometheus client library, in this process: ``generate_latest`` of a registry whose collector
yields a ``GaugeMetricFamily`` already holding every sample (no database, no HTTP).
Ratio = median scrape time ÷ median anchor time.

Checked: every scrape has exactly 100,000 ``fieldmon_check_status`` samples and the device
family counts 10,000 targets. Also printed: the collector's RSS (psutil) before the first and
after the last scrape, so a cache that grows per scrape would show.

Run: ``.venv/bin/python -m bench.metrics_scrape [--quick]``.
"""

from __future__ import annotations

import http.client
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import insert

from bench._common import Deadline, Row, emit, median, parse_args, spread
from collector.incidents.engine import incident_number
from collector.store.db import Store
from collector.store.schema import agents, current, incidents, targets
from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.procs import Proc, http_json, wait_for

SITES = [f"site-{i:02d}" for i in range(10)]
TARGETS_PER_SITE = 1_000
CAMERA_CHECKS = (
    "snmp.reachable",
    "snmp.uptime",
    "cpu.usage",
    "mem.usage",
    "if.oper_status",
    "if.oper_status",
    "if.errors",
    "clock.drift",
    "video.stream",
    "storage.status",
)
SERVER_CHECKS = (
    "host.reachable",
    "cpu.usage",
    "mem.usage",
    "swap.usage",
    "disk.usage",
    "disk.usage",
    "load.avg",
    "ntp.offset",
    "service.state",
    "raid.status",
)
SERIES = len(SITES) * TARGETS_PER_SITE * 10
OPEN_INCIDENTS = 300
GOAL_MS = 500.0
SEED = 20261204
NOW = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)


def fill(store: Store, rng: random.Random) -> None:
    """Bulk-insert the targets, their current rows, the agents and open incidents."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(agents),
            [
                {
                    "site": s,
                    "agent": f"agent-{s}",
                    "state": "online",
                    "state_since": NOW,
                    "last_seen": NOW,
                    "version": "bench",
                }
                for s in SITES
            ],
        )
        for site in SITES:
            trows: list[dict[str, Any]] = []
            crows: list[dict[str, Any]] = []
            for n in range(TARGETS_PER_SITE):
                camera = n % 2 == 0
                name = f"{'cam' if camera else 'srv'}-{n:04d}"
                trows.append(
                    {
                        "site": site,
                        "target": name,
                        "agent": f"agent-{site}",
                        "class": "camera" if camera else "linux-server",
                        "facts": {"vendor": "hikvision" if camera else "debian"},
                        "first_seen": NOW - timedelta(days=30),
                        "last_seen": NOW,
                        "cadence": 60.0,
                        "stale": False,
                    }
                )
                for i, check in enumerate(CAMERA_CHECKS if camera else SERVER_CHECKS):
                    item = f"eth{i}" if check.startswith("if.") else ("/" if i == 4 else "")
                    item = f"/data{i}" if check == "disk.usage" and i == 5 else item
                    roll = rng.random()
                    status = 3 if roll < 0.03 else (1 if roll < 0.05 else 0)
                    crows.append(
                        {
                            "site": site,
                            "target": name,
                            "check_key": f"{check}:{item}" if item else check,
                            "check": check,
                            "item": item,
                            "status": status,
                            "value": "1",
                            "unit": "",
                            "summary": "bench",
                            "observed_at": NOW,
                            "since": NOW - timedelta(hours=1),
                            "ok_streak": 0 if status else 5,
                        }
                    )
            conn.execute(insert(targets), trows)
            conn.execute(insert(current), crows)
        conn.execute(
            insert(incidents),
            [
                {
                    "id": i,
                    "number": incident_number(i, NOW - timedelta(minutes=i)),
                    "site": SITES[i % len(SITES)],
                    "target": f"cam-{(i * 2) % TARGETS_PER_SITE:04d}",
                    "check_key": f"snmp.reachable#{i}",
                    "check": "snmp.reachable",
                    "item": "",
                    "device_class": "camera",
                    "vendor": "hikvision",
                    "level": 1 + i % 4,
                    "state": "open",
                    "source": "auto",
                    "title": "camera down",
                    "summary": "bench",
                    "opened_at": NOW - timedelta(minutes=i),
                    "last_seen_at": NOW,
                    "occurrences": 1,
                    "tier": 1,
                    "flapping": False,
                    "pauses": [],
                    "breaches": [],
                    "impact_count": 0,
                    "caller": {},
                }
                for i in range(1, OPEN_INCIDENTS + 1)
            ],
        )


class _Prebuilt:
    """The anchor's collector: one family holding every sample already."""

    def __init__(self, labels: Sequence[tuple[str, str, str, str, int]]) -> None:
        self.family = GaugeMetricFamily(
            "fieldmon_check_status", "status", labels=["site", "target", "check", "item"]
        )
        for site, target, check, item, status in labels:
            self.family.add_metric([site, target, check, item], status)

    def collect(self) -> Iterator[Metric]:
        yield self.family


def anchor_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    rows = [(str(a), str(b), str(c), str(d), int(e)) for a, b, c, d, e in store.status_tuples()]
    registry.register(_Prebuilt(rows))
    return registry


def check_body(body: bytes) -> None:
    """A fast scrape must still be the whole scrape."""
    text = body.decode()
    samples = text.count("\nfieldmon_check_status{")
    assert samples == SERIES, f"{samples} fieldmon_check_status samples, expected {SERIES}"
    devices = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fieldmon_devices_targets{")
    )
    assert devices == len(SITES) * TARGETS_PER_SITE, f"devices family counts {devices}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "metrics_scrape", argv)
    rng = random.Random(SEED)
    min_rounds = 5
    with tempfile.TemporaryDirectory(prefix="fieldmon-bench-") as tmp_name:
        tmp = Path(tmp_name)
        store = Store(f"sqlite:///{tmp}/collector.db")
        t0 = time.perf_counter()
        fill(store, rng)
        print(
            f"metrics_scrape: {len(SITES) * TARGETS_PER_SITE:,} targets, {SERIES:,} current rows, "
            f"{OPEN_INCIDENTS} open incidents written in {time.perf_counter() - t0:.1f} s; "
            f"budget {args.budget:g} s"
        )
        anchor = anchor_registry(store)
        store.close()
        broker = Broker()
        broker.start()
        # The database filled above is the one this configuration names (tmp/collector.db).
        cfg, port = collector_toml(tmp, broker.port, log_level="WARNING")
        proc = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
        scrape_s: list[float] = []
        anchor_s: list[float] = []
        size = 0
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 30, what="collector")
            ps = psutil.Process(proc.proc.pid)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            rss_before = ps.memory_info().rss
            deadline = Deadline(args.budget)
            rounds = 0
            while rounds < min_rounds or deadline.allows(
                median(scrape_s) + median(anchor_s), reserve=1.0
            ):
                order = ("scrape", "anchor") if rounds % 2 == 0 else ("anchor", "scrape")
                for what in order:
                    t0 = time.perf_counter()
                    if what == "anchor":
                        body = generate_latest(anchor)
                        anchor_s.append(time.perf_counter() - t0)
                    else:
                        conn.request("GET", "/metrics")
                        resp = conn.getresponse()
                        body = resp.read()
                        scrape_s.append(time.perf_counter() - t0)
                        assert resp.status == 200, resp.status
                        size = len(body)
                        if rounds < 2:
                            check_body(body)
                rounds += 1
            rss_after = ps.memory_info().rss
            conn.close()
        finally:
            proc.stop()
            broker.cleanup()
    first, rest = scrape_s[0], scrape_s[1:]
    p50, worst = median(rest), max(rest)
    floor = median(anchor_s)
    ratio = p50 / floor
    flag = "" if worst * 1e3 < GOAL_MS else f"  ABOVE the {GOAL_MS:g} ms goal"
    print(
        f"{rounds} rounds; /metrics body {size / 1e6:.1f} MB\n"
        f"scrape over HTTP: first {first * 1e3:.0f} ms, then median {p50 * 1e3:.0f} ms, "
        f"max {worst * 1e3:.0f} ms (per scrape {spread([s * 1e3 for s in rest])} ms){flag}\n"
        f"anchor (generate_latest of prebuilt samples): median {floor * 1e3:.0f} ms\n"
        f"RATIO scrape ÷ anchor: {ratio:.2f}\n"
        f"collector RSS: {rss_before / 2**20:.0f} MiB before the first scrape, "
        f"{rss_after / 2**20:.0f} MiB after the last"
    )
    emit(
        [
            Row(
                benchmark="metrics_scrape",
                what=f"GET /metrics, {SERIES:,} check series (10,000 targets) in SQLite",
                anchor="`generate_latest` of the same samples prebuilt in memory",
                ratio=ratio,
                figures=(
                    f"median {p50 * 1e3:.0f} ms, max {worst * 1e3:.0f} ms vs {floor * 1e3:.0f} ms "
                    f"(goal < {GOAL_MS:g} ms); RSS {rss_after / 2**20:.0f} MiB"
                ),
                extra={
                    "median_ms": p50 * 1e3,
                    "max_ms": worst * 1e3,
                    "anchor_ms": floor * 1e3,
                    "rss_mib": rss_after / 2**20,
                },
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
