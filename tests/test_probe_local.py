"""The local probe on this very host, and the clock-offset check against a real NTP server
(chronyd serving on a loopback port, not touching the system clock)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.config import TargetConfig
from agent.probes.local import LocalProbe
from checks.catalogue import load_catalogue

TARGET = TargetConfig.model_validate({"name": "host1", "class": "linux-server"})
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
