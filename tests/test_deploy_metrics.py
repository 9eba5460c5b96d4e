"""The wall-display metrics, scraped from a real collector process fed over a real broker.

They are what deploy/prometheus's alerts and the Grafana panels query, so the test also checks
that every metric name the alert rules use is actually exposed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, result_to_wire
from collector.store.db import Store
from collector.store.schema import incidents
from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.procs import Proc, http_get, http_json, metric_value, wait_for
from tests.test_deploy_prometheus import rule_metric_names

# (target, class, reachability status)
DEVICES = [
    ("cam-01", "camera", Status.OK),
    ("cam-02", "camera", Status.OK),
    ("cam-03", "camera", Status.CRIT),
    ("cam-04", "camera", Status.WARN),
    ("sw-01", "switch", Status.OK),
]


def _publish(broker: Broker, results: list[Result]) -> None:
    payload = encode_batch("s1", "a1", [result_to_wire(r) for r in results])
    subprocess.run(
        [
            *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-s"),
            *("-t", "fieldmon/v1/s1/a1/results"),
        ],
        input=payload,
        check=True,
        timeout=10,
    )


@pytest.fixture
def running(tmp_path: Path, own_broker: Broker) -> Iterator[tuple[str, str]]:
    cfg, port = collector_toml(tmp_path, own_broker.port)
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_json(f"{base}/healthz")["broker"], 20, what="collector healthy")
    yield base, f"sqlite:///{tmp_path}/collector.db"
    assert proc.stop() == 0, proc.output()


def test_wall_display_metrics(running: tuple[str, str], own_broker: Broker) -> None:
    base, db_url = running
    _publish(
        own_broker,
        [
            Result(target=t, target_class=cls, check="snmp.reachable", status=st)
            for t, cls, st in DEVICES
        ],
    )
    wait_for(lambda: http_json(f"{base}/api/v1/incidents"), 20, what="the dark camera's incident")
    store = Store(db_url)
    try:
        # An incident opened three hours ago has missed its respond deadline; a level-1
        # incident opened now has its respond and on-site deadlines within the hour.
        with store.engine.begin() as conn:
            conn.execute(update(incidents).values(opened_at=datetime.now(UTC) - timedelta(hours=3)))
        store.open_manual(
            site="s1",
            target="",
            level=1,
            title="customer calls: whole gate dark",
            description="",
            caller={},
            author="test",
            now=datetime.now(UTC),
        )
        numbers = [i["number"] for i in http_json(f"{base}/api/v1/incidents")]
        store.record_notification(
            numbers, "dingtalk", False, "HTTP 500", 1, False, datetime.now(UTC)
        )
        store.record_notification(numbers[:1], "mail", True, "250 OK", 1, True, datetime.now(UTC))
    finally:
        store.close()

    text = http_get(f"{base}/metrics").decode()

    def m(name: str, **labels: str) -> float | None:
        return metric_value(text, name, **labels)

    assert m("fieldmon_cameras_online_ratio", site="s1") == pytest.approx(0.5)  # OK only
    assert m("fieldmon_devices_targets", site="s1", **{"class": "camera"}, state="up") == 3
    assert m("fieldmon_devices_targets", site="s1", **{"class": "camera"}, state="down") == 1
    assert m("fieldmon_devices_targets", site="s1", **{"class": "switch"}, state="up") == 1
    assert m("fieldmon_devices_targets", site="s1", **{"class": "switch"}, state="down") == 0

    tiered = [
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("fieldmon_incidents_open_by_tier{")
    ]
    assert sum(tiered) == 2  # the camera's and the manual one, each in exactly one tier
    assert len(tiered) == 4 * 3  # every level × tier of the site, zeros included
    assert m("fieldmon_incidents_open_by_tier", site="s1", level="1", tier="1") == 1

    assert m("fieldmon_sla_deadlines_breached", site="s1", deadline="respond") == 1
    assert m("fieldmon_sla_deadlines_due_soon", site="s1", deadline="respond") == 1
    assert m("fieldmon_sla_deadlines_due_soon", site="s1", deadline="onsite") == 1
    assert m("fieldmon_sla_deadlines_due_soon", site="s1", deadline="resolve") == 0

    assert m("fieldmon_notify_failed_notices_total", channel="dingtalk") == 2
    assert m("fieldmon_notify_failed_notices_total", channel="mail") is None

    # Bounded labels: no incident number or free text anywhere in /metrics.
    for number in numbers:
        assert number not in text
    assert "whole gate dark" not in text

    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    missing = rule_metric_names() - exposed
    assert not missing, f"alert rules query metrics the collector does not expose: {missing}"
