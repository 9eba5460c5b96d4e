"""The collector asks a running agent for the inspection, on its schedule and by hand.

Real processes: Mosquitto, a collector with ``[inspection]`` due at once, an agent watching
its own host. The agent carries out each request once — the scheduled one, then a manual one
from ``fieldmon inspection request`` — and a restart that gets the retained request again
does not repeat it. The results reach the month's inspection record (巡检记录表).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, agent_toml, collector_toml
from tests.support.procs import Proc, fieldmon, http_json, wait_for

SCHEDULE = '[inspection]\nmonthly_day = 1\nat = "00:00:00"\n'


def _samples(db: Path) -> int:
    """Samples of host1's inventory (an inspection-only item) in the inspection record."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(samples), 0) FROM inspection"
            " WHERE target = 'host1' AND check_key LIKE 'inventory.host%'"
        ).fetchone()
    return int(row[0])


def test_scheduled_and_manual_inspection_each_run_once(tmp_path: Path, own_broker: Broker) -> None:
    coll_cfg, port = collector_toml(tmp_path, own_broker.port, extra=SCHEDULE)
    db = tmp_path / "collector.db"
    base = f"http://127.0.0.1:{port}"
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "c.log")
    agent_cfg = agent_toml(tmp_path, own_broker.port, LOCAL_TARGET)
    agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "a.log")
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        # The scheduled request (the day has come: monthly_day 1).
        wait_for(lambda: "inspection monthly-" in agent.output(), 120, what="scheduled run")
        assert "inspection requested by schedule" in agent.output()

        asked = fieldmon(
            "inspection",
            "request",
            "--config",
            str(coll_cfg),
            "--site",
            "s1",
            "--target",
            "host1",
            "--author",
            "li.wei",
        )
        assert asked.returncode == 0, asked.stderr
        assert "requested from a1" in asked.stdout
        wait_for(lambda: "requested by li.wei" in agent.output(), 30, what="manual request")
        wait_for(lambda: "inspection manual-" in agent.output(), 30, what="manual run")
        assert agent.stop() == 0
        time.sleep(3)  # the collector commits what the agent delivered before it stopped
        before_restart = _samples(db)
        assert before_restart >= 2, "the requested runs did not reach the inspection record"

        # Restarted: both retained requests come again, and neither runs again.
        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "a2.log")
        wait_for(
            lambda: [a for a in http_json(f"{base}/api/v1/agents") if a["state"] == "online"],
            30,
            what="agent back",
        )
        wait_for(lambda: "connected to broker" in agent.output(), 30, what="agent connected")
        time.sleep(5)  # time enough to carry out a redelivered request, were it taken as new
        log = agent.output()
        assert "inspection requested" not in log, log[-2000:]
    finally:
        agent.stop()
        collector.stop()
    first = (tmp_path / "a.log").read_text()
    assert first.count("inspection requested by") == 2, first[-3000:]

    # A site nobody has connected from is refused plainly.
    none = fieldmon("inspection", "request", "--config", str(coll_cfg), "--site", "nowhere")
    assert none.returncode == 1 and "no agent has connected" in none.stderr
