"""The local probe on this very host, and the clock-offset check against a real NTP server
(chronyd serving on a loopback port, not touching the system clock)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from agent.config import TargetConfig
from agent.evaluate import to_results
from agent.probes.local import LocalProbe, temperature_observations
from checks.catalogue import load_catalogue
from checks.status import Status

TARGET = TargetConfig.from_dict({"name": "host1", "class": "linux-server"})
ALL = {i.id for i in load_catalogue()["linux-server"].items}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ntp_server(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("chronyd") or "/usr/sbin/chronyd"
    port = free_udp_port()
    conf = tmp_path / "chrony.conf"
    conf.write_text(
        f"port {port}\nbindaddress 127.0.0.1\nlocal stratum 8\nallow 127.0.0.1\ncmdport 0\n"
        f"pidfile {tmp_path}/chronyd.pid\n"
    )
    # -x: never adjust this machine's clock; -d: stay in the foreground.
    proc = subprocess.Popen(
        [exe, "-x", "-d", "-u", "root", "-f", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    assert proc.poll() is None, "chronyd did not start"
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


async def test_host_measurements_match_psutil() -> None:
    obs = await LocalProbe().collect(TARGET, ALL)
    by = {(o.check, o.item): o for o in obs}
    mem = by[("mem.usage", "")]
    assert mem.value == pytest.approx(psutil.virtual_memory().percent, abs=5)
    root = by[("disk.usage", "/")]
    assert root.value == pytest.approx(psutil.disk_usage("/").percent, abs=1)
    assert by[("disk.inodes", "/")].value is not None
    uptime = by[("uptime", "")].value
    assert isinstance(uptime, int) and abs(uptime - (time.time() - psutil.boot_time())) < 5
    inv = by[("inventory.host", "")]
    assert inv.facts["hostname"] == socket.gethostname()
    assert int(inv.facts["cpus"]) == psutil.cpu_count()
    assert not any(o.item.startswith(("/proc", "/sys")) for o in obs)
    # No NTP server configured: said so, not guessed.
    offset = by[("time.offset", "")]
    assert offset.value is None and "no ntp_server configured" in offset.summary


async def test_clock_offset_against_real_ntp_server(ntp_server: str) -> None:
    [obs] = await LocalProbe(ntp_server=ntp_server).collect(TARGET, {"time.offset"})
    assert isinstance(obs.value, float) and obs.value < 0.05, obs
    assert ntp_server in obs.summary


async def test_clock_offset_server_silent() -> None:
    dead = f"127.0.0.1:{free_udp_port()}"
    start = time.monotonic()
    [obs] = await LocalProbe(ntp_server=dead).collect(TARGET, {"time.offset"})
    assert time.monotonic() - start < 5
    assert obs.value is None and obs.status is not None and obs.status.name == "UNKNOWN"
    assert dead in obs.summary


class Shwtemp(NamedTuple):
    """The shape of one psutil temperature reading (psutil's own type is private)."""

    label: str
    current: float | None
    high: float | None
    critical: float | None


def local_target(**extra: object) -> TargetConfig:
    return TargetConfig.from_dict({"name": "host1", "class": "linux-server", **extra})


async def test_named_processes_running_or_crit() -> None:
    me = psutil.Process().name()  # this test's own interpreter ("python", "pytest", ...)
    made_up = "fieldmon-no-such-daemon"
    target = local_target(processes=[me, made_up])
    obs = await LocalProbe().collect(target, {"proc.running"})
    by = {o.item: o for o in obs}
    assert by[me].value == "running" and str(os.getpid()) in by[me].facts["pids"]
    assert by[made_up].value == "absent"
    linux = load_catalogue()["linux-server"]
    statuses = {r.item: r.status for r in to_results(target, linux, obs)}
    assert statuses == {me: Status.OK, made_up: Status.CRIT}
    item = linux.item("proc.running")
    assert item is not None and item.level == 2
    # No processes configured: no items at all, rather than an empty verdict.
    assert await LocalProbe().collect(TARGET, {"proc.running"}) == []


async def test_nic_rates_from_two_samples_on_loopback() -> None:
    probe = LocalProbe()
    checks = {"nic.errors", "nic.drops"}
    assert await probe.collect(TARGET, checks) == []  # first sample: baseline only
    # Real traffic over the loopback interface: 8 MiB through a TCP connection.
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    payload = b"x" * (1 << 20)
    received = 0
    for _ in range(8):
        client.sendall(payload)
        while received < len(payload) * (_ + 1):
            received += len(conn.recv(1 << 20))
    for s in (client, conn, server):
        s.close()
    # A window of a few milliseconds would make the rounded rate × window inexact.
    await asyncio.sleep(0.3)
    obs = await probe.collect(TARGET, checks)
    lo = {o.check: o for o in obs if o.item == "lo"}
    assert set(lo) == checks
    window = float(lo["nic.errors"].facts["window_s"])
    # Both directions of the connection pass through lo: at least the 8 MiB were received.
    assert float(lo["nic.errors"].facts["rx_bytes_per_s"]) * window >= 0.99 * 8 * (1 << 20)
    for o in lo.values():
        assert isinstance(o.value, float) and o.value >= 0
        assert "/s" in o.summary
    # Every interface psutil knows gets both items from the second sample on.
    assert {o.item for o in obs} == set(psutil.net_io_counters(pernic=True))


async def test_temperatures_only_where_sensors_exist() -> None:
    obs = await LocalProbe().collect(TARGET, {"hw.temperature"})
    real = psutil.sensors_temperatures()
    assert len(obs) == sum(1 for s in real.values() for t in s if t.current is not None)


def test_temperature_mapping() -> None:
    # This VM has no sensors, so the mapping is checked on a structure shaped like psutil's
    # (psutil.sensors_temperatures() returns {chip: [shwtemp(label, current, high, critical)]}).
    readings = {
        "coretemp": [
            Shwtemp("Package id 0", 61.0, 84.0, 100.0),
            Shwtemp("Core 0", 58.5, None, None),
        ],
        "nvme": [Shwtemp("", 41.85, 81.85, None)],
    }
    obs = temperature_observations(readings)
    assert [(o.item, o.value) for o in obs] == [
        ("coretemp/Package id 0", 61.0),
        ("coretemp/Core 0", 58.5),
        ("nvme/0", 41.9),
    ]
    assert obs[0].facts == {"high": "84", "critical": "100"} and obs[1].facts == {}
    assert temperature_observations({}) == []
