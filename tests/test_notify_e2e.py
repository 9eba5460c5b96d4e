"""Notifications from a running collector: a storm of 500 camera failures behind one switch
is one incident and one e-mail, received by a real SMTP server (aiosmtpd), and the send is
recorded on the incident's timeline."""

from __future__ import annotations

import email
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, result_to_wire
from fieldmon.allinone import free_port
from tests.support.broker import Broker
from tests.support.configs import collector_toml, mail_notify_toml
from tests.support.procs import Proc, http_json, wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[float, Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((time.monotonic(), email.message_from_bytes(raw)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def publish(broker: Broker, results: list[Result]) -> None:
    for start in range(0, len(results), 500):
        payload = encode_batch(
            "s1", "a1", [result_to_wire(r) for r in results[start : start + 500]]
        )
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


def r(target: str, status: Status, at: datetime, parent: str | None = None) -> Result:
    return Result(
        target=target,
        target_class="snmp-device",
        check="snmp.reachable",
        status=status,
        value="up" if status == Status.OK else "down",
        observed_at=at,
        facts={"parent": parent} if parent else {},
    )


def body(msg: Message) -> str:
    part = msg.get_body(preferencelist=("plain",)) if hasattr(msg, "get_body") else msg
    payload = (part or msg).get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def test_storm_is_one_incident_one_mail_on_the_timeline(
    tmp_path: Path, own_broker: Broker, smtp: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp
    notify = mail_notify_toml(smtp_port, window=2, lang="zh-CN")
    cfg, port = collector_toml(tmp_path, own_broker.port, extra=notify)
    base = f"http://127.0.0.1:{port}"
    collector = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        t0 = datetime.now(UTC)
        cams = [f"cam-{i:03d}" for i in range(500)]
        publish(
            own_broker,
            [r("sw-core", Status.OK, t0), *[r(c, Status.OK, t0, parent="sw-core") for c in cams]],
        )
        wait_for(lambda: len(http_json(f"{base}/api/v1/status")) == 501, 30, what="inventory")
        t1 = datetime.now(UTC)
        sent = time.monotonic()
        publish(own_broker, [r("sw-core", Status.CRIT, t1)])
        publish(own_broker, [r(c, Status.CRIT, t1) for c in cams])
        [(arrived, msg)] = wait_for(lambda: inbox.messages, 20, what="the page")
        time.sleep(4)  # two more windows: nothing else may arrive
        assert len(inbox.messages) == 1, [m["Subject"] for _, m in inbox.messages]
        assert arrived - sent < 10
        [inc] = http_json(f"{base}/api/v1/incidents")
        assert inc["target"] == "sw-core" and inc["impact_count"] == 500
        assert inc["number"] in str(msg["Subject"]) + body(msg)
        assert msg["To"] == "desk@example.net"
        timeline = wait_for(
            lambda: [
                e
                for e in http_json(f"{base}/api/v1/incidents/{inc['number']}")["timeline"]
                if e["kind"] == "notified"
            ],
            10,
            what="send on the timeline",
        )
        assert timeline[0]["data"]["ok"] is True and timeline[0]["data"]["channel"] == "desk"
    finally:
        collector.stop()
