"""Process lifecycles the way operators meet them: an agent that dies (last will), the
all-in-one launcher behind ``make run``, and the incident CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from fieldmon.allinone import free_port
from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, NO_GRACE, agent_toml, collector_toml
from tests.support.procs import Proc, fieldmon, http_get, http_json, metric_value, wait_for


def test_killed_agent_opens_one_incident_by_last_will(tmp_path: Path, own_broker: Broker) -> None:
    coll_cfg, port = collector_toml(tmp_path, own_broker.port, extra=NO_GRACE)
    base = f"http://127.0.0.1:{port}"
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "c.log")
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        cfg = agent_toml(tmp_path, own_broker.port, LOCAL_TARGET).read_text()
        cfg_path = tmp_path / "agent-fast.toml"
        cfg_path.write_text(cfg.replace("max_backoff = 2", "max_backoff = 2\nkeepalive = 5"))
        agent = Proc(["agent", "run", "--config", str(cfg_path)], tmp_path / "a.log")
        wait_for(
            lambda: [a for a in http_json(f"{base}/api/v1/agents") if a["state"] == "online"],
            20,
            what="agent online",
        )
        agent.stop(signal.SIGKILL)
        killed = time.monotonic()
        incs = wait_for(
            lambda: [
                i
                for i in http_json(f"{base}/api/v1/incidents?state=open")
                if i["check"] == "agent.online"
            ],
            20,
            what="last-will incident",
        )
        # The broker sends the will after 1.5 keepalives without a packet (5 s here).
        assert time.monotonic() - killed <= 12
        assert len(incs) == 1 and incs[0]["target"] == "a1" and incs[0]["level"] == 3
        metrics = http_get(f"{base}/metrics").decode()
        assert metric_value(metrics, "fieldmon_agent_up", site="s1", agent="a1") == 0

        # Restarted, the agent says online again and the incident resolves by itself.
        agent = Proc(["agent", "run", "--config", str(cfg_path)], tmp_path / "a2.log")
        wait_for(
            lambda: (
                http_json(f"{base}/api/v1/incidents/{incs[0]['number']}")["state"] == "resolved"
            ),
            20,
            what="agent incident resolved",
        )
        assert agent.stop() == 0

        # The incident CLI reads the same database.
        listed = fieldmon("incidents", "list", "--config", str(coll_cfg), "--json")
        assert listed.returncode == 0, listed.stderr
        rows = orjson.loads(listed.stdout)
        assert [r["number"] for r in rows] == [incs[0]["number"]]
        table = fieldmon("incidents", "list", "--config", str(coll_cfg), "--state", "resolved")
        assert incs[0]["number"] in table.stdout and "a1: agent offline" in table.stdout
        shown = fieldmon("incidents", "show", incs[0]["number"], "--config", str(coll_cfg))
        assert shown.returncode == 0
        assert "opened" in shown.stdout and "resolved" in shown.stdout
        assert "HASH CHAIN BROKEN" not in shown.stdout
        missing = fieldmon("incidents", "show", "FM-000000-0000", "--config", str(coll_cfg))
        assert missing.returncode == 1 and "no incident" in missing.stderr
    finally:
        collector.stop()


def test_all_in_one_run(tmp_path: Path) -> None:
    """What ``make run`` starts: its own broker, a collector, an agent watching this host."""
    http_port = free_port()
    state = tmp_path / "var"
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fieldmon",
            "run",
            "--state-dir",
            str(state),
            "--http-port",
            str(http_port),
            "--site",
            "demo",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 40, what="healthy")

        token = (state / "api-token").read_text().strip()
        assert (state / "api-token").stat().st_mode & 0o077 == 0

        def host_checks() -> set[str]:
            return {r["check"] for r in http_json(f"{base}/api/v1/status?site=demo", token)}

        checks = wait_for(
            lambda: (c := host_checks()) >= {"cpu.usage", "disk.usage"} and c,
            40,
            what="this host's results",
        )
        assert "inventory.host" in checks
        printed = (tmp_path / "run.log").read_text()
        assert f"console     http://127.0.0.1:{http_port}/  (user admin" in printed
        assert (state / "web-password").stat().st_mode & 0o077 == 0
        login = http_get(f"{base}/login").decode()
        assert "<form" in login
        assert f"metrics     http://127.0.0.1:{http_port}/metrics" in printed
        assert (state / "collector.db").exists() and (state / "agent" / "outbox.sqlite").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        log.close()
    assert rc == 0, (tmp_path / "run.log").read_text()
    # The report command printed by `fieldmon run` works on what was collected.
    month = time.strftime("%Y-%m", time.gmtime(time.time() + 8 * 3600))
    done = fieldmon(
        "report",
        "monthly",
        "--config",
        str(state / "collector.toml"),
        "--site",
        "demo",
        "--month",
        month,
        "--lang",
        "en",
        "--format",
        "html",
        "--out",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r" / f"monthly-demo-{month}-en.html").read_text()
    assert "Monthly inspection report" in html and "Disk space used" in html
