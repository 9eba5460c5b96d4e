"""The collector process against a real broker: bad payloads are rejected, counted by reason
in /metrics and logged; good ones are stored once; the collector goes on."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, encode_status, result_to_wire
from tests.support.broker import Broker
from tests.support.configs import NO_GRACE, collector_toml
from tests.support.procs import Proc, http_get, http_json, metric_value, wait_for


def pub(broker: Broker, topic: str, payload: bytes, retain: bool = False) -> None:
    args = [
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-t",
        topic,
        "-s",
    ]
    if retain:
        args.append("-r")
    subprocess.run(args, input=payload, check=True, timeout=10)


@pytest.fixture
def collector(tmp_path: Path, own_broker: Broker):  # type: ignore[no-untyped-def]
    cfg, port = collector_toml(tmp_path, own_broker.port, extra=NO_GRACE)
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_json(f"{base}/healthz")["broker"], 20, what="collector healthy")
    yield base, proc
    assert proc.stop() == 0, proc.output()


def _metrics(base: str) -> str:
    return http_get(f"{base}/metrics").decode()


def test_rejects_are_counted_by_reason(collector, own_broker: Broker) -> None:  # type: ignore[no-untyped-def]
    base, proc = collector
    good = Result(
        target="cam-01",
        target_class="snmp-device",
        check="snmp.reachable",
        status=Status.CRIT,
        value="down",
        observed_at=datetime.now(UTC),
    )
    payload = encode_batch("s1", "a1", [result_to_wire(good)])
    pub(own_broker, "fieldmon/v1/s1/a1/results", b"{this is not json")
    pub(own_broker, "fieldmon/v1/s1/a1/results", b"[]" + b" " * (1024 * 1024 + 10))
    pub(own_broker, "fieldmon/v1/s1/a1/results", payload.replace(b'"schema":1', b'"schema":7'))
    pub(own_broker, "fieldmon/v1/s1/other-agent/results", payload)  # topic/payload mismatch
    pub(own_broker, "fieldmon/v1/s1/a1/results", payload.replace(b'"CRIT"', b'"BROKEN"'))
    pub(
        own_broker,
        "fieldmon/v1/s1/a1/results",
        b'{"schema":1,"site":"s1","agent":"a1","x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    )
    pub(own_broker, "fieldmon/v1/s1/a1/results", payload)
    pub(own_broker, "fieldmon/v1/s1/a1/results", payload)  # redelivery: a duplicate

    def counted() -> str | None:
        text = _metrics(base)
        return text if metric_value(text, "fieldmon_ingest_duplicate_results_total") == 1 else None

    text = wait_for(counted, 20, what="all messages processed")
    assert (
        metric_value(text, "fieldmon_ingest_rejected_messages_total", reason="malformed_json") == 2
    )
    assert metric_value(text, "fieldmon_ingest_rejected_messages_total", reason="too_large") == 1
    assert (
        metric_value(text, "fieldmon_ingest_rejected_messages_total", reason="schema_version") == 1
    )
    assert (
        metric_value(text, "fieldmon_ingest_rejected_messages_total", reason="identity_mismatch")
        == 1
    )
    assert (
        metric_value(text, "fieldmon_ingest_rejected_messages_total", reason="invalid_field") == 1
    )
    assert metric_value(text, "fieldmon_ingest_results_total") == 1
    # The good result was stored once and opened one level-2 incident.
    [inc] = http_json(f"{base}/api/v1/incidents")
    assert inc["level"] == 2 and inc["target"] == "cam-01" and inc["occurrences"] == 1
    assert metric_value(text, "fieldmon_incidents_open", site="s1", level="2") == 1
    assert (
        metric_value(
            text, "fieldmon_check_status", site="s1", target="cam-01", check="snmp.reachable"
        )
        == 3
    )
    log = proc.output()
    assert "rejected message on 'fieldmon/v1/s1/other-agent/results': identity_mismatch" in log
    assert "schema 7 is not supported" in log
    assert "Traceback" not in log
    assert http_json(f"{base}/healthz")["status"] == "ok"


def test_agent_status_and_last_will(collector, own_broker: Broker) -> None:  # type: ignore[no-untyped-def]
    base, _ = collector
    pub(own_broker, "fieldmon/v1/s1/agent-x/status", encode_status("s1", "agent-x", "offline"))
    inc = wait_for(
        lambda: [
            i
            for i in http_json(f"{base}/api/v1/incidents?state=open")
            if i["check"] == "agent.online"
        ],
        20,
        what="agent incident",
    )[0]
    assert inc["target"] == "agent-x" and inc["level"] == 3
    pub(own_broker, "fieldmon/v1/s1/agent-x/status", encode_status("s1", "agent-x", "online"))
    wait_for(
        lambda: http_json(f"{base}/api/v1/incidents/{inc['number']}")["state"] == "resolved",
        20,
        what="agent incident resolved",
    )
    detail = http_json(f"{base}/api/v1/incidents/{inc['number']}")
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "resolved"]
    assert detail["timeline_intact"] is True
    assert metric_value(_metrics(base), "fieldmon_agent_up", site="s1", agent="agent-x") == 1
    assert orjson.loads(encode_status("s1", "agent-x", "online"))["schema"] == 1
