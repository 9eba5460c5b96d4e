"""The agent's own host, measured with psutil: the server part of the monthly inspection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import time
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

import psutil

from agent.config import TargetConfig
from agent.probes.base import Observation, unknown
from agent.probes.security import SECURITY_CHECKS, SecurityProbe, State
from agent.probes.sntp import clock_offset

#: File systems that are not disks a customer can fill (kernel, containers, snaps, media).
PSEUDO_FS = frozenset(
    {"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs", "iso9660", "udf", "nsfs"}
)


class LocalProbe:
    """Blocking psutil calls run in a worker thread with a deadline: a hung NFS mount must
    not stall the scheduler.

    The security items (``sec.*``) are handed to a :class:`SecurityProbe`, so that the whole
    server inspection stays one method ("local") and the scheduler needs no second probe.
    ``state`` is the agent's persistent key/value store for the security baselines.
    """

    def __init__(
        self,
        ntp_server: str | None = None,
        timeout: float = 10.0,
        state: State | None = None,
        security: SecurityProbe | None = None,
    ) -> None:
        self._ntp_server = ntp_server
        self._timeout = timeout
        self._security = security or SecurityProbe(state, timeout=timeout)
        psutil.cpu_percent(interval=None)  # prime: the first call has no baseline
        self._primed_at = time.monotonic()
        #: The previous NIC counters and when they were read: rates need two samples.
        self._nic_prev: tuple[float, dict[str, Any]] | None = None

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        host_checks = checks - SECURITY_CHECKS
        try:
            out = await asyncio.wait_for(
                asyncio.to_thread(self._sample, target, host_checks), timeout=self._timeout
            )
        except TimeoutError:
            reason = f"host measurements did not finish within {self._timeout:g}s"
            out = [unknown(c, reason) for c in sorted(host_checks)]
        if "time.offset" in checks:
            out.append(await self._time_offset())
        out.extend(await self._security.collect(target, checks & SECURITY_CHECKS))
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

    def _sample(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        out: list[Observation] = []
        if "proc.running" in checks and target.processes:
            out.extend(process_observations(target.processes, psutil.process_iter()))
        if "nic.errors" in checks or "nic.drops" in checks:
            out.extend(self._nics(checks))
        if "hw.temperature" in checks:
            # Hosts without sensors (virtual machines) return {}: no item, see temperature_obs.
            out.extend(temperature_observations(psutil.sensors_temperatures()))
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

    def _nics(self, checks: Set[str]) -> list[Observation]:
        """Error and drop rates per interface since the previous sample.

        Counters only grow, so a rate needs two samples: the first call (after every agent
        start) only records the baseline and publishes nothing for these items; from the next
        interval on each interface gets a rate. An interface whose counters went backwards
        (recreated, driver reloaded) starts over the same way.
        """
        now = time.monotonic()
        counters = dict(psutil.net_io_counters(pernic=True))
        prev, self._nic_prev = self._nic_prev, (now, counters)
        if prev is None or now - prev[0] <= 0:
            return []
        return nic_observations(prev[1], counters, now - prev[0], checks)

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


def process_observations(names: Sequence[str], procs: Iterable[Any]) -> list[Observation]:
    """One ``proc.running`` item per configured name: "running" or "absent" (CRIT).

    A process matches by its name, or by the file name of its executable or first argument,
    so "postgres" finds the server whatever its process title, and a script run by an
    interpreter can be named by the interpreter or its path. Zombies are not running.
    """
    pids: dict[str, list[int]] = {n: [] for n in names}
    for proc in procs:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            known = {proc.name()}
            cmdline = proc.cmdline()
            if cmdline:
                known.add(os.path.basename(cmdline[0]))
            with contextlib.suppress(psutil.AccessDenied, OSError):
                known.add(os.path.basename(proc.exe()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for name in known & pids.keys():
            pids[name].append(proc.pid)
    out: list[Observation] = []
    for name, found in pids.items():
        if found:
            shown = ", ".join(str(p) for p in sorted(found)[:10])
            summary = f"{len(found)} process{'es' if len(found) > 1 else ''}, pid {shown}"
            out.append(
                Observation(
                    "proc.running",
                    "running",
                    item=name,
                    summary=summary,
                    facts={"pids": shown, "count": str(len(found))},
                )
            )
        else:
            out.append(
                Observation("proc.running", "absent", item=name, summary=f"no process {name!r}")
            )
    return out


def nic_observations(
    before: Mapping[str, Any], after: Mapping[str, Any], seconds: float, checks: Set[str]
) -> list[Observation]:
    """Per-second error and drop rates (in + out) for interfaces present in both samples;
    byte rates go into the facts as context (a drop rate means more on a busy link)."""
    out: list[Observation] = []
    for nic in sorted(after.keys() & before.keys()):
        a, b = after[nic], before[nic]
        deltas = [
            a.errin - b.errin,
            a.errout - b.errout,
            a.dropin - b.dropin,
            a.dropout - b.dropout,
            a.bytes_recv - b.bytes_recv,
            a.bytes_sent - b.bytes_sent,
        ]
        if any(d < 0 for d in deltas):
            continue  # counters reset: this sample is the interface's new baseline
        errin, errout, dropin, dropout, rx, tx = (d / seconds for d in deltas)
        facts = {
            "rx_bytes_per_s": f"{rx:.0f}",
            "tx_bytes_per_s": f"{tx:.0f}",
            "window_s": f"{seconds:.3f}",
        }
        for check, inward, outward in (
            ("nic.errors", errin, errout),
            ("nic.drops", dropin, dropout),
        ):
            if check in checks:
                out.append(
                    Observation(
                        check,
                        round(inward + outward, 3),
                        item=nic,
                        summary=f"in {inward:.2f}/s, out {outward:.2f}/s",
                        facts=facts,
                    )
                )
    return out


def temperature_observations(readings: Mapping[str, Sequence[Any]]) -> list[Observation]:
    """One ``hw.temperature`` item per sensor, named "chip/label" (or "chip/N" unlabelled).

    A host without sensors (every virtual machine) produces no item rather than UNKNOWN:
    there is no temperature to fail there, and an UNKNOWN would keep an incident open on
    every VM for ever. The sensor's own high/critical marks go into the facts; the verdict
    follows the catalogue threshold so that a contract can override it like any other.
    """
    out: list[Observation] = []
    for chip, sensors in sorted(readings.items()):
        for i, sensor in enumerate(sensors):
            if sensor.current is None:
                continue
            facts = {
                k: f"{v:g}"
                for k, v in (("high", sensor.high), ("critical", sensor.critical))
                if v is not None
            }
            label = sensor.label or str(i)
            out.append(
                Observation(
                    "hw.temperature",
                    round(float(sensor.current), 1),
                    item=f"{chip}/{label}",
                    facts=facts,
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
