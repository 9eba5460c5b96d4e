"""The agent killed with SIGKILL while it publishes its outbox, then restarted.

20,000 results are written into the agent's outbox (its own :class:`agent.outbox.Outbox`)
before it starts, with a batch size of 50 so that publishing takes hundreds of PUBACK round
trips; the agent is killed part way, restarted, and stopped in order once the outbox is empty.
Every result ever written to the outbox (``sqlite_sequence``, which counts the pre-filled ones
and the agent's own) must then be stored by the collector exactly once: duplicates on the
wire (published, PUBACK lost with the process) are allowed, duplicates in the store are not.
"""

from __future__ import annotations

import re
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.outbox import Outbox
from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, agent_toml, collector_toml
from tests.support.procs import Proc, http_json, wait_for

PREFILLED = 20_000


def _outbox(path: Path) -> tuple[int, int]:
    """(pending, ever written) from the agent's outbox file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        pending = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(pending), int(row[0]) if row else 0


def _stored(path: Path) -> tuple[int, int]:
    """(msg_ids recorded, samples in the inspection record) in the collector's database."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        received = db.execute("SELECT count(*) FROM received").fetchone()[0]
        samples = db.execute("SELECT coalesce(sum(samples), 0) FROM inspection").fetchone()[0]
    return int(received), int(samples)


def _prefill(path: Path) -> None:
    base = datetime.now(UTC) - timedelta(minutes=30)
    outbox = Outbox(path, max_results=500_000)
    try:
        rows = [
            {
                "msg_id": f"prefill-{n:06d}",
                "target": f"pre{n % 100:03d}",
                "class": "linux-server",
                "check": "cpu.usage",
                "status": "OK",
                "value": 12.5,
                "unit": "%",
                "observed_at": (base + timedelta(milliseconds=50 * n))
                .isoformat()
                .replace("+00:00", "Z"),
            }
            for n in range(PREFILLED)
        ]
        outbox.put(rows)
        assert outbox.pending() == PREFILLED
    finally:
        outbox.close()


def test_agent_kill9_during_publish_replays_exactly_the_unacknowledged(
    tmp_path: Path, own_broker: Broker
) -> None:
    coll_cfg, port = collector_toml(tmp_path, own_broker.port)
    base = f"http://127.0.0.1:{port}"
    outbox = tmp_path / "agent-a1" / "outbox.sqlite"
    _prefill(outbox)
    agent_cfg = agent_toml(
        tmp_path, own_broker.port, LOCAL_TARGET + "\n[outbox]\nbatch_size = 50\n"
    )
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "c.log")
    agent: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["broker"], 30, what="collector subscribed")
        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "a1.log")
        wait_for(
            lambda: _outbox(outbox)[0] <= PREFILLED - 2000,
            30,
            interval=0.02,
            what="the agent publishing",
        )
        agent.stop(signal.SIGKILL)
        pending_at_kill, _ = _outbox(outbox)
        assert pending_at_kill > 0, "the kill came after the outbox was drained"

        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "a2.log")
        wait_for(lambda: _outbox(outbox)[0] == 0, 60, what="outbox drained after restart")
        assert agent.stop() == 0, agent.output()[-3000:]
        pending, written = _outbox(outbox)
        assert pending == 0 and written > PREFILLED
        wait_for(lambda: _stored(tmp_path / "collector.db")[0] >= written, 90, what="stored")
        wait_for(
            lambda: [a for a in http_json(f"{base}/api/v1/agents") if a["state"] == "stopped"],
            30,
            what="the agent's final 'stopped' status (it follows its last batch)",
        )
        received, samples = _stored(tmp_path / "collector.db")
        assert received == written, f"{received} stored, {written} written to the outbox"
        assert samples == written, f"{samples} inspection samples, {written} results"
        # The restarted agent found what was not acknowledged (plus, perhaps, its first
        # results of the new run) still in its outbox.
        found = re.search(r"; (\d+) results waiting in the outbox", agent.output())
        assert found and int(found.group(1)) >= pending_at_kill, agent.output()[-3000:]
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
