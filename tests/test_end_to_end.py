"""The whole path on real parts, each in its own process: a recorded Huawei switch served by
snmpsim, the agent polling it over SNMP, Mosquitto, the collector with SQLite, the incident,
and the monthly report read back."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from tests.support.broker import Broker
from tests.support.configs import agent_toml, collector_toml
from tests.support.procs import Proc, fieldmon, http_json, wait_for
from tests.support.snmpsim import SnmpSim, recordings_dir

INTERVAL = 5  # seconds between reachability checks in this test


def test_device_down_opens_incident_and_report_shows_it(tmp_path: Path) -> None:
    sim = SnmpSim([recordings_dir() / "vrp_5720-32x-ei.snmprec"])
    sim.start()
    broker = Broker()
    broker.start()
    coll_cfg, http_port = collector_toml(tmp_path, broker.port)
    base = f"http://127.0.0.1:{http_port}"
    targets = f"""
[[targets]]
name = "sw-core"
class = "snmp-device"
address = "127.0.0.1"
location = "Machine room A, rack 3"
intervals = {{ "snmp.reachable" = {INTERVAL}, "snmp.uptime" = {INTERVAL} }}
[targets.snmp]
port = {sim.port}
community = "vrp_5720-32x-ei"
timeout = 1.0
retries = 0
"""
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "collector.log")
    agent: Proc | None = None
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        agent = Proc(
            ["agent", "run", "--config", str(agent_toml(tmp_path, broker.port, targets))],
            tmp_path / "agent.log",
        )

        def state(check: str) -> dict[str, object] | None:
            rows = http_json(f"{base}/api/v1/status?site=s1")
            return next((r for r in rows if r["target"] == "sw-core" and r["check"] == check), None)

        wait_for(
            lambda: (state("snmp.reachable") or {}).get("status") == "OK", 30, what="switch seen up"
        )
        wait_for(lambda: state("inventory.entity"), 30, what="inventory collected")

        # The switch goes away.
        sim.stop()
        t_down = time.monotonic()
        inc = wait_for(
            lambda: [
                i
                for i in http_json(f"{base}/api/v1/incidents?state=open")
                if i["target"] == "sw-core"
            ],
            2 * INTERVAL + 10,
            what="incident for the switch",
        )
        took = time.monotonic() - t_down
        assert len(inc) == 1, inc
        incident = inc[0]
        assert incident["check"] == "snmp.reachable"
        assert incident["level"] == 2, "a device off the network is a level-2 fault"
        assert took <= 2 * INTERVAL + 3, f"incident opened {took:.1f}s after the device went away"

        # Other checks of the dead device are UNKNOWN with a reason, not extra incidents.
        uptime = wait_for(
            lambda: (s := state("snmp.uptime")) and s["status"] == "UNKNOWN" and s,
            2 * INTERVAL + 5,
            what="uptime unknown",
        )
        assert "not answering" in str(uptime["summary"])

        # It comes back: the incident resolves by itself.
        sim.start()
        wait_for(
            lambda: (
                http_json(f"{base}/api/v1/incidents/{incident['number']}")["state"] == "resolved"
            ),
            2 * INTERVAL + 10,
            what="incident resolved",
        )
        detail = http_json(f"{base}/api/v1/incidents/{incident['number']}")
        assert [e["kind"] for e in detail["timeline"]] == ["opened", "resolved"]
        assert detail["timeline_intact"]
        assert len(http_json(f"{base}/api/v1/incidents")) == 1, (
            "exactly one incident, no duplicates"
        )
        # An orderly agent shutdown is shown as stopped, not paged as an outage.
        assert agent.stop() == 0
        wait_for(
            lambda: [a for a in http_json(f"{base}/api/v1/agents") if a["state"] == "stopped"],
            10,
            what="agent shown as stopped",
        )
        assert len(http_json(f"{base}/api/v1/incidents")) == 1
    finally:
        if agent:
            agent.stop()
        collector.stop()
        broker.cleanup()
        sim.close()

    # The monthly report, read back from its JSON and HTML.
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    out = tmp_path / "reports"
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
        "zh-CN",
        "--format",
        "html,json",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    data = orjson.loads((out / f"monthly-s1-{month}-zh-CN.json").read_bytes())
    [device] = [d for d in data["devices"] if d["name"] == "sw-core"]
    assert device["identity"]["serial"] == "2102359579DMHC000288"
    assert "V200R010C00SPC600" in device["identity"]["firmware"]
    assert device["identity"]["location"] == "Machine room A, rack 3"
    reach = next(i for i in device["items"] if i["check"] == "snmp.reachable")
    assert (reach["verdict"], reach["worst"]) == ("OK", "CRIT")
    assert [i["number"] for i in data["incidents"]] == [incident["number"]]
    assert data["incidents"][0]["state"] == "resolved" and data["incidents"][0]["level"] == 2
    assert data["summary"]["incidents_by_level"]["2"] == 1
    assert data["cover"]["customer"] == "Example Public Security Bureau"
    html = (out / f"monthly-s1-{month}-zh-CN.html").read_text(encoding="utf-8")
    for text in (
        "巡检记录表",
        "2102359579DMHC000288",
        incident["number"],
        "设备在线（SNMP 可达）",
        "Machine room A, rack 3",
    ):
        assert text in html
