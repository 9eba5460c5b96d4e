"""The agent with its broker away: it keeps checking, keeps results in its outbox, retries
with backoff without spinning, and delivers every result once the broker returns."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psutil

from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, agent_toml, collector_toml
from tests.support.procs import Proc, fieldmon, http_get, http_json, metric_value, wait_for


def _outbox(path: Path) -> tuple[int, int]:
    """(pending, ever written) from the agent's outbox file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        pending = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(pending), int(row[0]) if row else 0


def test_broker_outage_loses_nothing(tmp_path: Path) -> None:
    broker = Broker()
    broker.start()
    coll_cfg, http_port = collector_toml(tmp_path, broker.port)
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "collector.log")
    base = f"http://127.0.0.1:{http_port}"
    agent: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["broker"], 20, what="collector subscribed")
        broker.stop()  # the collector's persistent session survives in the broker's store

        agent_cfg = agent_toml(tmp_path, broker.port, LOCAL_TARGET)
        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "agent.log")
        outbox = tmp_path / "agent-a1" / "outbox.sqlite"
        wait_for(
            lambda: outbox.exists() and _outbox(outbox)[0] >= 15,
            30,
            what="results kept in the outbox while the broker is down",
        )
        time.sleep(4)
        log = agent.output()
        assert "cannot reach broker 127.0.0.1:" in log and "retrying in" in log
        # Backoff, not a busy loop: the agent process used little CPU while waiting.
        cpu = psutil.Process(agent.proc.pid).cpu_times()
        assert cpu.user + cpu.system < 5.0, cpu
        assert agent.proc.poll() is None, "the agent must keep running"

        broker.start()
        wait_for(lambda: _outbox(outbox)[0] == 0, 30, what="outbox drained after broker return")
        assert "connected to broker" in agent.output()
        assert agent.stop() == 0
        _, written = _outbox(outbox)
        assert written >= 15

        def all_stored() -> bool:
            text = http_get(f"{base}/metrics").decode()
            return metric_value(text, "fieldmon_ingest_results_total") == written

        wait_for(all_stored, 30, what=f"collector stores all {written} results exactly once")
        status = http_json(f"{base}/api/v1/status")
        assert {s["check"] for s in status} >= {"cpu.usage", "mem.usage", "disk.usage"}
    finally:
        if agent:
            agent.stop()
        collector.stop()
        broker.cleanup()


def test_dropped_results_reach_the_report_as_a_gap(tmp_path: Path) -> None:
    """Results too old for the outbox are dropped while the broker is away; the gap record
    travels to the collector and the monthly report shows it."""
    broker = Broker()
    broker.start()
    coll_cfg, http_port = collector_toml(tmp_path, broker.port)
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "collector.log")
    base = f"http://127.0.0.1:{http_port}"
    agent: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["broker"], 20, what="collector subscribed")
        broker.stop()
        cfg = agent_toml(
            tmp_path, broker.port, LOCAL_TARGET, extra="[outbox]\nmax_age_hours = 0.001\n"
        )  # 3.6 s
        agent = Proc(["agent", "run", "--config", str(cfg)], tmp_path / "agent.log")
        outbox = tmp_path / "agent-a1" / "outbox.sqlite"

        def dropped() -> int:
            with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT coalesce(sum(dropped), 0) FROM gaps").fetchone()[0])

        wait_for(lambda: outbox.exists() and dropped() >= 5, 40, what="results aged out")
        broker.start()
        wait_for(lambda: _outbox(outbox)[0] == 0, 30, what="outbox drained")
        assert agent.stop() == 0
        total = dropped()
        # The agent's "stopped" status follows its last batch: once the collector has it,
        # it has everything before it.
        wait_for(
            lambda: [a for a in http_json(f"{base}/api/v1/agents") if a["state"] == "stopped"],
            30,
            what="collector caught up",
        )
        # The wall display sees the loss too.
        metrics = http_get(f"{base}/metrics").decode()
        assert (
            metric_value(metrics, "fieldmon_agent_dropped_results_total", site="s1", agent="a1")
            == total
        )
    finally:
        if agent:
            agent.stop()
        collector.stop()
        broker.cleanup()
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    done = fieldmon(
        "report",
        "monthly",
        "--config",
        str(coll_cfg),
        "--site",
        "s1",
        "--month",
        month,
        "--lang",
        "en",
        "--format",
        "json,html",
        "--out",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads((tmp_path / "r" / f"monthly-s1-{month}-en.json").read_bytes())
    assert sum(g["dropped"] for g in report["gaps"]) == total
    html = (tmp_path / "r" / f"monthly-s1-{month}-en.html").read_text()
    assert "agent buffer overflowed" in html or "results dropped" in html
