"""The collector killed with SIGKILL in the middle of a high-rate stream, then restarted.

A separate publisher process sends 20,000 results with unique ``msg_id`` in QoS 1 batches of
250 through a real Mosquitto; the collector is killed once a few thousand are stored (its
in-flight messages are neither committed nor acknowledged, or committed and not yet
acknowledged), started again on the same persistent session, and must end with every result
stored exactly once (``received`` rows and the month's ``inspection`` samples both equal the
number sent) and exactly one incident per check that went CRIT (each CRIT twice, in different
batches, so a redelivered or repeated CRIT would show as a second incident).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.procs import Proc, http_json, wait_for
from tests.support.stream import start_publisher, write_payloads

SITE, AGENT = "s1", "a1"
TARGETS, ROUNDS, BATCH = 200, 100, 250
TOTAL = TARGETS * ROUNDS
CRIT_TARGETS = 10
CRIT_ROUNDS = (50, 75)


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _received(path: Path) -> int:
    if not path.exists():
        return 0
    with _db(path) as db:
        return int(db.execute("SELECT count(*) FROM received").fetchone()[0])


def test_collector_kill9_mid_stream_stores_everything_once(
    tmp_path: Path, own_broker: Broker
) -> None:
    cfg, port = collector_toml(tmp_path, own_broker.port)
    db_path = tmp_path / "collector.db"
    base = f"http://127.0.0.1:{port}"
    write_payloads(
        tmp_path / "payloads",
        SITE,
        AGENT,
        targets=TARGETS,
        rounds=ROUNDS,
        batch=BATCH,
        crit_targets=CRIT_TARGETS,
        crit_rounds=CRIT_ROUNDS,
        tag="kill9",
    )
    collector = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "c1.log")
    publisher: subprocess.Popen[bytes] | None = None
    restarted: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["broker"], 30, what="collector subscribed")
        publisher = start_publisher(
            own_broker.port, tmp_path / "payloads", f"fieldmon/v1/{SITE}/{AGENT}/results"
        )
        wait_for(lambda: _received(db_path) >= 3000, 60, interval=0.05, what="3,000 stored")
        collector.stop(signal.SIGKILL)
        at_kill = _received(db_path)
        assert at_kill < TOTAL, "the kill came after the stream ended; it proves nothing"
        assert publisher.wait(60) == 0, "the broker did not acknowledge every batch"

        restarted = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "c2.log")
        wait_for(lambda: _received(db_path) >= TOTAL, 90, interval=0.5, what="all results")
        time.sleep(2)  # anything redelivered late would land now
        with _db(db_path) as db:
            received = db.execute("SELECT count(*) FROM received").fetchone()[0]
            samples = db.execute(
                "SELECT coalesce(sum(samples), 0) FROM inspection WHERE site = ?", (SITE,)
            ).fetchone()[0]
            per_check = db.execute(
                'SELECT target, "check", count(*) FROM incidents WHERE site = ? '
                'AND "check" = ? GROUP BY target, "check"',
                (SITE, "mem.usage"),
            ).fetchall()
            twice = db.execute(
                "SELECT target, check_key, count(*) FROM incidents "
                "WHERE state NOT IN ('resolved', 'closed') GROUP BY target, check_key "
                "HAVING count(*) > 1"
            ).fetchall()
        assert received == TOTAL, f"{received} msg_ids recorded, {TOTAL} sent (kill at {at_kill})"
        assert samples == TOTAL, f"{samples} samples in the inspection record, {TOTAL} sent"
        assert sorted(per_check) == [(f"t{t:03d}", "mem.usage", 1) for t in range(CRIT_TARGETS)]
        assert twice == []
        assert "subscribed at broker" in restarted.output()
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        collector.stop()
        if restarted is not None:
            assert restarted.stop() == 0, restarted.output()[-3000:]
