"""The broker restarted under running agents and a running collector.

Agents keep their online state as a retained message with "offline" as their last will, so a
broker restart is the moment the collector can be told something false: Mosquitto may publish
the wills of every client it loses while it shuts down, and the retained "offline" then sits
in its store until each agent reconnects. The collector must not page anyone for that: an
"agent offline" incident opens only when the agent is still offline after the configured grace.
An agent that really died while the broker was away (killed -9, it never reconnects) must
still end up offline with one incident, once the grace has passed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, TOKENS, agent_toml, collector_toml
from tests.support.procs import Proc, http_json, wait_for

AGENTS = ("a1", "a2", "a3")
GRACE = 20


def _agents(base: str) -> dict[str, str]:
    rows = http_json(f"{base}/api/v1/agents", TOKENS["viewer"])
    return {row["agent"]: row["state"] for row in rows}


def _offline_incidents(base: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = http_json(
        f"{base}/api/v1/incidents?check=agent.online&limit=100", TOKENS["viewer"]
    )
    return rows


def _agent(tmp_path: Path, broker: Broker, name: str) -> Proc:
    """An agent watching its own host under a name of its own."""
    target = LOCAL_TARGET.replace('name = "host1"', f'name = "host-{name}"')
    cfg = agent_toml(tmp_path, broker.port, target, agent=name)
    return Proc(["agent", "run", "--config", str(cfg)], tmp_path / f"{name}.log")


def test_broker_restart_opens_no_false_offline_and_catches_a_real_one(
    tmp_path: Path, own_broker: Broker
) -> None:
    cfg, port = collector_toml(
        tmp_path, own_broker.port, extra=f"[incidents]\nagent_offline_grace_seconds = {GRACE}\n"
    )
    base = f"http://127.0.0.1:{port}"
    collector = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    agents = {name: _agent(tmp_path, own_broker, name) for name in AGENTS}
    try:
        wait_for(lambda: _agents(base) == dict.fromkeys(AGENTS, "online"), 60, what="all online")

        # A plain restart: every agent comes back within its backoff, nobody is paged.
        own_broker.stop()
        time.sleep(3)
        own_broker.start()
        wait_for(lambda: _agents(base) == dict.fromkeys(AGENTS, "online"), 60, what="online again")
        time.sleep(GRACE + 6)  # past the grace and a few clock sweeps
        assert _agents(base) == dict.fromkeys(AGENTS, "online")
        assert _offline_incidents(base) == [], "a broker restart paged an agent offline"

        # An agent that dies while the broker is away never reconnects: once the broker is
        # back its retained state must not say "online" for ever.
        own_broker.stop()
        agents["a3"].stop(signal.SIGKILL)
        time.sleep(2)
        own_broker.start()
        wait_for(
            lambda: _agents(base).get("a3") in ("offline", "silent"),
            GRACE * 4,
            what="dead agent no longer shown online",
        )
        wait_for(lambda: len(_offline_incidents(base)) == 1, GRACE * 3, what="one incident")
        time.sleep(6)
        incidents = _offline_incidents(base)
        assert [i["target"] for i in incidents] == ["a3"], incidents
        assert {k: v for k, v in _agents(base).items() if k != "a3"} == {
            "a1": "online",
            "a2": "online",
        }
    finally:
        for proc in agents.values():
            proc.stop()
        assert collector.stop() == 0, collector.output()[-3000:]
