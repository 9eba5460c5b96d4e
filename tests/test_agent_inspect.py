"""``fieldmon agent inspect`` end to end: a real Mosquitto, a real collector process, and the
command run the way an engineer on site runs it. The results must reach the collector's
current state (and so the month's inspection record) through the ``inspection`` topic."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson

from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, agent_toml, collector_toml
from tests.support.procs import Proc, fieldmon, http_json, wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_inspect_publishes_to_collector(tmp_path: Path) -> None:
    broker = Broker()
    broker.start()
    coll_cfg, http_port = collector_toml(tmp_path, broker.port)
    base = f"http://127.0.0.1:{http_port}"
    closed = _closed_port()
    # An SNMP-less camera whose open "service port" is the broker's and whose web UI is the
    # collector's health page: both really answer, on loopback.
    targets = (
        LOCAL_TARGET
        + f"""
[[targets]]
name = "cam-01"
class = "camera"
address = "127.0.0.1"
[targets.net]
timeout = 1.0
tcp_ports = [{broker.port}, {closed}]
urls = ["{base}/healthz"]
"""
    )
    cfg = agent_toml(tmp_path, broker.port, targets)
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "collector.log")
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        done = fieldmon("agent", "inspect", "--config", str(cfg), "--target", "cam-01", "--json")
        assert done.returncode == 1, done.stderr  # the closed port is CRIT
        printed = {(r["check"], r.get("item", "")): r for r in orjson.loads(done.stdout)}
        assert printed[("tcp.open", str(closed))]["status"] == "CRIT"
        assert printed[("tcp.open", str(broker.port))]["status"] == "OK"
        assert printed[("http.status", f"{base}/healthz")]["value"] == 200
        assert {r["target"] for r in printed.values()} == {"cam-01"}  # --target honoured

        def stored() -> dict[tuple[str, str], dict[str, object]]:
            rows = http_json(f"{base}/api/v1/status?site=s1")
            return {(r["check"], r["item"]): r for r in rows if r["target"] == "cam-01"}

        rows = wait_for(lambda: len(stored()) == len(printed) and stored(), 20, what="results")
        assert rows[("tcp.open", str(closed))]["status"] == "CRIT"
        assert rows[("http.status", f"{base}/healthz")]["status"] == "OK"

        # Table output, every target (inspection-only items included), exit 1 on CRIT.
        table = fieldmon("agent", "inspect", "--config", str(cfg))
        assert table.returncode == 1 and table.stdout.startswith("TARGET")
        assert "host1" in table.stdout and "inventory." in table.stdout

        # Unknown target: bad usage, nothing measured.
        bad = fieldmon("agent", "inspect", "--config", str(cfg), "--target", "nope")
        assert bad.returncode == 2 and "no such target 'nope'" in bad.stderr

        # Broker gone: said so, exit 1.
        broker.stop()
        down = fieldmon("agent", "inspect", "--config", str(cfg), "--target", "cam-01")
        assert down.returncode == 1
        assert "unreachable" in down.stderr and "NOT published" in down.stderr
    finally:
        collector.stop()
        broker.cleanup()
