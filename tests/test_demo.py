"""The demo site behind the README's run command (``fieldmon up --demo``).

The recordings come from the project's own generator; the stack test runs the command a user
runs (broker, collector, agent, three snmpsim responders as processes) on a compressed fault
schedule and checks what the user is promised: incidents open for the injected faults (an
access switch down is one incident with its cameras as impact), they resolve after recovery,
/metrics shows them, and the monthly report names the demo devices by serial number. The
core switch answers SSH: the agent backs up its configuration, and the "config" fault's edit
arrives as ``config.changed`` = changed with the edited line, and an incident for a change
outside every maintenance window.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fieldmon.allinone import free_port
from fieldmon.demo import faults
from fieldmon.demo import site as s
from fieldmon.demo.recordings import RecordingWriter, site_addresses
from fieldmon.demo.variation.fmdemo import compute
from tests.support.procs import Proc, fieldmon, http_get, http_json, metric_value

SPEED = 4.0
FAILING_CAMERAS = {f"cam-{n:02d}" for n in range(23, 34)}


def test_recordings_script_writes_every_device(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fieldmon.demo.recordings",
            str(tmp_path),
            "--first-address",
            "127.0.1.20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    files = sorted(tmp_path.glob("*/data/*.snmprec"))
    assert len(files) == 54 and "54 devices" in out
    devices = s.build_site(site_addresses("127.0.1.20", 54))
    classes = [d.device_class for d in devices]
    assert classes.count("camera") >= 40 and classes.count("nvr") == 2
    assert {"switch", "ups", "server-snmp", "windows-server"} <= set(classes)
    for dev in devices:
        text = (tmp_path / dev.group / "data" / f"{dev.community}.snmprec").read_text()
        oids = [line.split("|", 1)[0] for line in text.splitlines()]
        keys = [tuple(int(p) for p in oid.split(".")) for oid in oids]
        assert keys == sorted(keys), f"{dev.name}: records out of order"
        assert f"|{dev.serial}\n" in text, f"{dev.name}: no serial"
        assert "1.3.6.1.2.1.1.2.0|6|" in text and "1.3.6.1.2.1.2.2.1.8.1|2|" in text
    # the switch and its cameras share the responder that is stopped to take them down
    assert {d.name for d in devices if d.group == s.GROUP_SWITCH} == FAILING_CAMERAS | {
        s.FAILING_SWITCH
    }


def test_bad_first_address_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fieldmon.demo.recordings",
            str(tmp_path),
            "--first-address",
            "10.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "loopback" in done.stderr


def test_schedule_and_rewrites(tmp_path: Path) -> None:
    """The schedule puts each fault in force and lifts it; the writer rewrites only devices
    whose answers changed, and never one file twice within snmpsim's mtime resolution."""
    seen: set[str] = set()
    for second in range(0, int(faults.CYCLE)):
        seen |= faults.moment(second).active
    assert seen == faults.FAULT_NAMES
    quiet = faults.moment(faults.CYCLE - 1)
    assert not quiet.active and not quiet.dark_groups and not quiet.state.ups_on_battery
    peak = faults.moment(100)
    assert peak.state.ups_on_battery and s.GROUP_SWITCH in peak.dark_groups
    assert peak.state.clock_offsets[s.DRIFTING_CAMERA] > 60
    assert 0.80 < peak.state.video_disk_used < 0.9
    assert faults.moment(170).state.video_disk_used == pytest.approx(0.97)
    assert peak.state.core_config_edited and not quiet.state.core_config_edited
    # speed compresses the same schedule
    assert faults.moment(25, speed=4).active == peak.active

    devices = s.build_site(site_addresses("127.0.1.20", 54))
    writer = RecordingWriter(tmp_path, devices, 0.0)
    assert len(writer.write(quiet.state, now=100.0)) == 54
    assert writer.write(quiet.state, now=200.0) == []
    assert writer.write(peak.state, now=101.0) == []  # too soon after the last write
    changed = set(writer.write(peak.state, now=102.5))
    assert {s.UPS, s.LINUX_SERVER, s.DRIFTING_CAMERA, s.CORE} <= changed
    assert s.NVRS[0] not in changed


def test_variation_module_values() -> None:
    tag, ticks = compute("uptime", {"boot": 1000.0}, 1100.5)
    assert (tag, ticks) == ("67", 10050)
    tag, count = compute("counter", {"base": 10, "rate": 5, "since": 0, "bits": 32}, 2**30)
    assert tag == "65" and count == (10 + 5 * 2**30) % 2**32
    tag, hexed = compute("clock", {"offset": 90, "zone": 480}, 1_800_000_000.0)
    raw = bytes.fromhex(str(hexed))
    # 2027-01-15 08:00:00 UTC + 90 s, shown in UTC+8
    assert tag == "4x" and raw == bytes([0x07, 0xEB, 1, 15, 16, 1, 30, 0, ord("+"), 8, 0])
    with pytest.raises(ValueError, match="unknown record kind"):
        compute("nonsense", {}, 0.0)


def _incidents(base: str, token: str) -> list[dict[str, Any]]:
    data = http_json(f"{base}/api/v1/incidents?site=demo&limit=500", token)
    return list(data)


def _find(rows: list[dict[str, Any]], target: str, check: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["target"] == target and r["check"] == check]


def test_demo_stack_opens_and_resolves_incidents(tmp_path: Path) -> None:
    state = tmp_path / "var"
    port = free_port()
    proc = Proc(
        [
            "up",
            "--demo",
            "--demo-speed",
            str(SPEED),
            "--state-dir",
            str(state),
            "--http-port",
            str(port),
        ],
        tmp_path / "up.log",
    )
    base = f"http://127.0.0.1:{port}"
    snmp_port = "none yet"
    try:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in proc.output():
            assert proc.proc.poll() is None, proc.output()[-4000:]
            assert time.monotonic() < deadline, "the demo did not start:\n" + proc.output()
            time.sleep(0.5)
        token = (state / "api-token").read_text().strip()
        agent_toml = (state / "agent.toml").read_text()
        assert agent_toml.count("[[targets]]") == 55 and 'parent = "acc-sw-03"' in agent_toml

        # discovery agrees with the classes the demo configures
        port_line = re.search(r"port (\d+), recordings", proc.output())
        assert port_line is not None
        snmp_port = port_line.group(1)
        cam = next(d for d in s.build_site(site_addresses()) if d.name == "cam-01")
        found = fieldmon(
            "agent",
            "discover",
            "--snmp",
            f"{cam.address}:{snmp_port}",
            "--community",
            cam.community,
            "--no-trial",
        )
        assert 'class = "camera"' in found.stdout, found.stdout + found.stderr

        wanted = {
            ("acc-sw-03", "snmp.reachable"),
            ("ups-01", "ups.on_battery"),
            ("vms-01", "disk.usage"),
        }
        opened: dict[tuple[str, str], dict[str, Any]] = {}
        resolved: set[tuple[str, str]] = set()
        metrics_seen: set[str] = set()
        camera_rows: list[dict[str, Any]] = []
        switch_row: dict[str, Any] = {}
        config_changed: dict[str, Any] = {}
        deadline = time.monotonic() + 180
        while resolved != wanted or not config_changed:
            assert proc.proc.poll() is None, proc.output()[-4000:]
            assert time.monotonic() < deadline, (
                f"opened {sorted(opened)}, resolved {sorted(resolved)}, configuration change "
                f"{'seen' if config_changed else 'not seen'}; log:\n" + proc.output()[-3000:]
            )
            rows = _incidents(base, token)
            if not config_changed:
                status = http_json(f"{base}/api/v1/status?site=demo", token)
                config_changed = next(
                    (
                        r
                        for r in status
                        if (r["target"], r["check"], r["value"])
                        == (s.CORE, "config.changed", "changed")
                    ),
                    {},
                )
            for key in wanted:
                for row in _find(rows, *key):
                    opened.setdefault(key, row)
                    if row["state"] == "resolved":
                        resolved.add(key)
            if ("acc-sw-03", "snmp.reachable") in resolved and not camera_rows:
                camera_rows = [r for r in rows if r["target"] in FAILING_CAMERAS]
                switch_row = _find(rows, "acc-sw-03", "snmp.reachable")[0]
            text = http_get(f"{base}/metrics").decode()
            if (
                metric_value(
                    text,
                    "fieldmon_check_status",
                    site="demo",
                    target="ups-01",
                    check="ups.on_battery",
                )
                == 3
            ):
                metrics_seen.add("ups")
            if (metric_value(text, "fieldmon_incidents_open", site="demo", level="1") or 0) >= 1:
                metrics_seen.add("level1")
            ratio = metric_value(text, "fieldmon_cameras_online_ratio", site="demo")
            if ratio is not None and ratio < 1:
                metrics_seen.add("cameras")
            if ratio == 1.0:
                metrics_seen.add("cameras-back")
            time.sleep(1)

        # the switch outage: one incident, the eleven cameras behind it as its impact
        switch = opened[("acc-sw-03", "snmp.reachable")]
        detail = http_json(f"{base}/api/v1/incidents/{switch['number']}", token)
        assert detail["level"] == 1
        assert {i["target"] for i in detail["impacts"]} == FAILING_CAMERAS
        # A camera seen failing before the switch was folded into it ("merged"); one polled
        # while its responder was still starting after the switch answered again gets its own
        # incident, as designed. None may have opened on its own during the outage.
        during = [
            r
            for r in camera_rows
            if r["state"] != "merged" and r["opened_at"] < switch_row["resolved_at"]
        ]
        assert not during, during
        assert metrics_seen >= {"ups", "level1", "cameras", "cameras-back"}, metrics_seen

        # the changed switch configuration: backed up over SSH, the diff's lines quoted
        assert config_changed["status"] == "WARN", config_changed
        old_line, new_line = (line.strip() for line in s.EDIT)
        assert f"- {old_line}" in config_changed["summary"], config_changed
        assert f"+ {new_line}" in config_changed["summary"], config_changed
        unplanned = _find(rows, s.CORE, "sec.config_unplanned")
        assert unplanned, "no incident for the change outside a maintenance window"
        backups = list((state / "agent" / "config_backups" / s.CORE).glob("*.cfg"))
        assert any(new_line in b.read_text() for b in backups), backups

        month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
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
            "pdf",
            "--out",
            str(tmp_path / "reports"),
            timeout=240,
        )
        assert done.returncode == 0, done.stderr
        pdf = next((tmp_path / "reports").rglob("*.pdf"))
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        # long serials wrap in table cells; pdftotext drops the hyphen at a line break
        flat = re.sub(r"[\s-]+", "", text)
        devices = {d.name: d for d in s.build_site(site_addresses())}
        for name in ("core-sw", "acc-sw-03", "cam-01", "cam-44", "nvr-02", "ups-01", "vms-01"):
            serial = devices[name].serial.replace("-", "")
            assert serial in flat, f"{name}'s serial is not in the report"
        assert "RiversideLogisticsPark" in flat
    finally:
        code = proc.stop()
    assert code == 0, proc.output()[-3000:]
    assert not any(
        f"endpoint=127.0.0.20:{snmp_port}" in line
        for line in subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ), "a demo responder outlived fieldmon up"
    assert not any(
        "fieldmon.demo.sshd" in line and str(state) in line
        for line in subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ), "the demo's SSH server outlived fieldmon up"
