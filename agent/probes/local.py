"""The agent's own host, measured with psutil: the server part of the monthly inspection."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Set

import psutil

from agent.config import TargetConfig
from agent.probes.base import Observation, unknown
from agent.probes.sntp import clock_offset

#: File systems that are not disks a customer can fill (kernel, containers, snaps, media).
PSEUDO_FS = frozenset(
    {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "iso9660", "udf", "nsfs"}
)


class LocalProbe:
    """Blocking psutil calls run in a worker thread with a deadline: a hung NFS mount must
    not stall the scheduler."""

    def __init__(self, ntp_server: str | None = None, timeout: float = 10.0) -> None:
        self._ntp_server = ntp_server
        self._timeout = timeout
        psutil.cpu_percent(interval=None)  # prime: the first call has no baseline
        self._primed_at = time.monotonic()

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        try:
            out = await asyncio.wait_for(
                asyncio.to_thread(self._sample, checks), timeout=self._timeout
            )
        except TimeoutError:
            reason = f"host measurements did not finish within {self._timeout:g}s"
            return [unknown(c, reason) for c in sorted(checks)]
        if "time.offset" in checks:
            out.append(await self._time_offset())
        return out

    async def close(self) -> None:
        return None

    async def _time_offset(self) -> Observation:
        if not self._ntp_server:
            return unknown("time.offset", "no ntp_server configured for this agent")
        host, _, port = self._ntp_server.partition(":")
        try:
            offset = await clock_offset(host, int(port or 123))
        except (OSError, TimeoutError, ValueError) as exc:
            return unknown("time.offset", f"NTP {self._ntp_server}: {exc or 'no answer'}")
        return Observation(
            "time.offset",
            round(abs(offset), 4),
            summary=f"clock {'behind' if offset > 0 else 'ahead of'} {self._ntp_server} "
            f"by {abs(offset):.3f}s",
        )

    def _sample(self, checks: Set[str]) -> list[Observation]:
        out: list[Observation] = []
        if "host.reachable" in checks:
            out.append(Observation("host.reachable", "up", summary="agent running on the host"))
        if "cpu.usage" in checks:
            # Right after priming there is no meaningful window yet: measure over half a second.
            window = 0.5 if time.monotonic() - self._primed_at < 0.5 else None
            out.append(Observation("cpu.usage", round(psutil.cpu_percent(interval=window), 1)))
        if "mem.usage" in checks:
            vm = psutil.virtual_memory()
            out.append(
                Observation(
                    "mem.usage",
                    round(vm.percent, 1),
                    summary=f"{_gib(vm.total - vm.available)} of {_gib(vm.total)} used",
                )
            )
        if "swap.usage" in checks:
            sw = psutil.swap_memory()
            summary = "no swap configured" if sw.total == 0 else f"{_gib(sw.used)} used"
            out.append(Observation("swap.usage", round(sw.percent, 1), summary=summary))
        if "disk.usage" in checks or "disk.inodes" in checks:
            out.extend(self._disks(checks))
        if "load.per_cpu" in checks:
            load15 = os.getloadavg()[2]
            cpus = psutil.cpu_count() or 1
            out.append(
                Observation(
                    "load.per_cpu",
                    round(load15 / cpus, 2),
                    summary=f"load {load15:.2f} on {cpus} CPUs",
                )
            )
        if "uptime" in checks:
            up = time.time() - psutil.boot_time()
            out.append(Observation("uptime", int(up), summary=f"up {_duration(up)}"))
        if "inventory.host" in checks:
            uname = platform.uname()
            facts = {
                "hostname": socket.gethostname(),
                "os": _os_name(),
                "kernel": uname.release,
                "arch": uname.machine,
                "cpus": str(psutil.cpu_count() or 0),
                "memory": _gib(psutil.virtual_memory().total),
            }
            out.append(
                Observation(
                    "inventory.host",
                    facts["hostname"],
                    summary=f"{facts['os']}, kernel {uname.release}",
                    facts=facts,
                )
            )
        return out

    def _disks(self, checks: Set[str]) -> list[Observation]:
        out: list[Observation] = []
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            if part.fstype in PSEUDO_FS or part.mountpoint in seen:
                continue
            if part.mountpoint.startswith(("/snap/", "/proc", "/sys", "/run")):
                continue
            seen.add(part.mountpoint)
            mount = part.mountpoint
            try:
                st = os.statvfs(mount)
                usage = psutil.disk_usage(mount)
            except OSError as exc:
                reason = f"cannot stat {mount}: {exc.strerror}"
                out.extend(unknown(c, reason, mount) for c in ("disk.usage", "disk.inodes"))
                continue
            if "disk.usage" in checks:
                out.append(
                    Observation(
                        "disk.usage",
                        round(usage.percent, 1),
                        item=mount,
                        summary=f"{_gib(usage.used)} of {_gib(usage.total)} used",
                        facts={"device": part.device, "fstype": part.fstype},
                    )
                )
            if "disk.inodes" in checks:
                if st.f_files == 0:
                    out.append(
                        Observation("disk.inodes", 0.0, item=mount, summary="no inode limit")
                    )
                else:
                    used = st.f_files - st.f_ffree
                    out.append(
                        Observation(
                            "disk.inodes",
                            round(100.0 * used / st.f_files, 1),
                            item=mount,
                            summary=f"{used} of {st.f_files} inodes used",
                        )
                    )
        return out


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m"


def _os_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME") or info.get("NAME", "Linux")
    except OSError:
        return platform.system()
