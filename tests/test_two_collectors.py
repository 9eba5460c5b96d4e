"""Scale-out: two collector processes on one PostgreSQL, splitting the results of one broker
through a shared subscription, still store every result once and open exactly one incident
per (target, check) — the unique index decides, not luck."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, result_to_wire
from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.procs import Proc, http_get, http_json, metric_value, wait_for

TARGETS = 40
ROUNDS = 6


def _publish(broker: Broker, payloads: list[bytes]) -> None:
    for payload in payloads:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-q",
                "1",
                "-t",
                "fieldmon/v1/s1/a1/results",
                "-s",
            ],
            input=payload,
            check=True,
            timeout=10,
        )


def test_two_collectors_one_postgresql(tmp_path: Path, own_broker: Broker, pg_url: str) -> None:
    procs: list[Proc] = []
    bases: list[str] = []
    for name in ("c1", "c2"):
        folder = tmp_path / name
        folder.mkdir()
        cfg, port = collector_toml(
            folder,
            own_broker.port,
            client_id=f"fieldmon-{name}",
            extra="[incidents]\nstale_intervals = 100\n",
        )
        text = cfg.read_text()
        text = text.replace(f'url = "sqlite:///{folder}/collector.db"', f'url = "{pg_url}"')
        text = text.replace("max_backoff = 2\n", "max_backoff = 2\nshared = true\n")
        cfg.write_text(text)
        procs.append(Proc(["collector", "run", "--config", str(cfg)], folder / "collector.log"))
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base in bases:
            wait_for(
                lambda b=base: http_json(f"{b}/healthz")["status"] == "ok", 30, what="collector up"
            )
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        # Every round fails every target again, one message per target: consecutive
        # messages of one target land on different collectors and race to open.
        payloads = [
            encode_batch(
                "s1",
                "a1",
                [
                    result_to_wire(
                        Result(
                            target=f"cam-{t:02d}",
                            target_class="camera",
                            check="snmp.reachable",
                            status=Status.CRIT,
                            value="down",
                            observed_at=t0 + timedelta(seconds=rnd),
                        )
                    )
                ],
            )
            for rnd in range(ROUNDS)
            for t in range(TARGETS)
        ]
        _publish(own_broker, payloads)

        def stored() -> float:
            return sum(
                metric_value(http_get(f"{b}/metrics").decode(), "fieldmon_ingest_results_total")
                or 0.0
                for b in bases
            )

        wait_for(lambda: stored() >= len(payloads), 60, what="all results stored")
        per = [
            metric_value(http_get(f"{b}/metrics").decode(), "fieldmon_ingest_results_total")
            for b in bases
        ]
        assert all(p and p > 0 for p in per), f"the shared subscription split nothing: {per}"
        assert stored() == len(payloads)
    finally:
        for p in procs:
            p.stop()
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as db:
        rows = db.execute(
            "SELECT target, count(*), sum(occurrences) FROM incidents"
            " WHERE check_key = 'snmp.reachable' GROUP BY target"
        ).fetchall()
        received = db.execute("SELECT count(*) FROM received").fetchone()
    assert len(rows) == TARGETS
    assert all(n == 1 for _, n, _ in rows), rows
    assert all(occ == ROUNDS for _, _, occ in rows), rows
    assert received is not None and received[0] == len(payloads)
    for p in procs:
        assert "Traceback" not in p.output()
