"""Device health, interface rates and the device clock over SNMP, against the real recordings.

Every recording in shared/fixtures/snmprec is polled with the class ``agent discover`` proposes
for it, and each vendor path is checked against the exact values in its recording (see
SOURCES.md there). What no recording has (hrSystemDate, RFC 1628 UPS-MIB, garbled values) is
served from small derived copies: a real recording with a few records added or replaced, or a
short hand-written file for the RFC 1628 UPS; each says so in its sysDescr or here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.config import SnmpConfig, TargetConfig
from agent.discover import discover
from agent.evaluate import to_results
from agent.probes.base import Observation
from agent.probes.snmp import SUPPORTED, SnmpProbe
from agent.probes.snmp_health import Fetched, clock_drift, parse_date_and_time
from agent.probes.snmp_rates import (
    IN_DISCARDS,
    IN_ERRORS,
    IN_OCTETS_HC,
    OUT_DISCARDS,
    OUT_ERRORS,
    OUT_OCTETS_HC,
    CounterMemory,
    counter_delta,
)
from agent.snmp_client import SnmpClient
from checks.catalogue import DeviceClass, load_catalogue
from checks.result import Result
from checks.status import Status
from tests.support.snmpsim import HOST, SnmpSim, all_recordings, recordings_dir

CATALOGUE = load_catalogue()
RATE_CHECKS = {"if.errors", "if.discards", "if.utilisation"}


class FakeClock:
    """Monotonic seconds under the test's control, so rates have exact intervals."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snmp_checks(dc: DeviceClass) -> set[str]:
    return {it.id for it in dc.items if it.method == "snmp"}


@dataclass(frozen=True, slots=True)
class Polled:
    """One recording polled twice, 60 s apart on the probe's clock, with its proposed class."""

    device_class: str
    first: list[Observation]
    second: list[Observation]

    def results(self, target: TargetConfig) -> list[Result]:
        return to_results(target, CATALOGUE[self.device_class], self.first + self.second)


async def poll_twice(sim: SnmpSim, community: str, device_class: str) -> Polled:
    dc = CATALOGUE[device_class]
    target = sim.target(community, device_class=device_class)
    clock = FakeClock()
    probe = SnmpProbe({}, clock=clock)
    try:
        first = await probe.collect(target, snmp_checks(dc))
        clock.now += 60
        second = await probe.collect(target, snmp_checks(dc))
    finally:
        await probe.close()
    return Polled(device_class, first, second)


@pytest.fixture(scope="module")
def polled(snmpsim: SnmpSim) -> dict[str, Polled]:
    """Every recording, with the class discovery proposes (identity only; no trial poll)."""

    async def run() -> dict[str, Polled]:
        out: dict[str, Polled] = {}
        for path in all_recordings():
            config = SnmpConfig.from_dict(
                {"port": snmpsim.port, "community": path.stem, "timeout": 1.0}
            )
            found = await discover(HOST, config, trial=False)
            out[path.stem] = await poll_twice(snmpsim, path.stem, found.device_class)
        return out

    return asyncio.run(run())


def found(
    polled: Mapping[str, Polled], snmpsim: SnmpSim, community: str
) -> dict[tuple[str, str], Result]:
    """Results of a recording by (check, item); the later poll wins (it has the rates)."""
    p = polled[community]
    target = snmpsim.target(community, device_class=p.device_class)
    return {(r.check, r.item): r for r in p.results(target)}


# ------------------------------------------------------------------ every recording, every item

RECORDINGS = [p.stem for p in all_recordings()]


@pytest.mark.parametrize("community", RECORDINGS)
def test_every_item_of_the_proposed_class_gets_a_result(
    polled: dict[str, Polled], snmpsim: SnmpSim, community: str
) -> None:
    p = polled[community]
    dc = CATALOGUE[p.device_class]
    for obs in p.first + p.second:
        assert dc.item(obs.check) is not None, f"{obs.check} is not an item of {dc.name}"
        assert "not understood" not in obs.summary, obs
        assert obs.summary != "not measured by the SNMP probe", obs
        assert not obs.summary.startswith("probe error"), obs
    results = found(polled, snmpsim, community)
    answered = {check for check, _ in results}
    assert answered == snmp_checks(dc), f"{community} as {dc.name}"
    for (check, item), result in results.items():
        if result.status is Status.UNKNOWN:
            assert result.summary, f"{check}[{item}] is UNKNOWN without a reason"


def test_probe_measures_every_snmp_item_of_every_class() -> None:
    for dc in CATALOGUE.values():
        assert snmp_checks(dc) <= SUPPORTED, dc.name


@pytest.mark.parametrize("community", RECORDINGS)
def test_first_poll_only_takes_rate_baselines(polled: dict[str, Polled], community: str) -> None:
    """A rate needs two samples: the first collection reports none (only absence)."""
    first = [o for o in polled[community].first if o.check in RATE_CHECKS]
    assert all(o.status is Status.UNKNOWN for o in first)
    assert all("expose" in o.summary for o in first)


# ----------------------------------------------------------------------- exact vendor values

OK, WARN, UNKNOWN, CRIT = Status.OK, Status.WARN, Status.UNKNOWN, Status.CRIT

VENDOR_VALUES: list[tuple[str, str, str, Any, Status]] = [
    # Huawei VRP S5720: hwEntityStateTable (MPU board), hwFanStatusTable, no hwPwrStatusTable
    ("vrp_5720-32x-ei", "cpu.usage", "", 44.0, OK),
    ("vrp_5720-32x-ei", "mem.usage", "", 9.0, OK),
    ("vrp_5720-32x-ei", "hw.temperature", "MPU Board 0", 40.0, OK),
    ("vrp_5720-32x-ei", "hw.fan", "fan 0/0", "ok", OK),
    ("vrp_5720-32x-ei", "hw.psu", "", None, UNKNOWN),
    ("vrp_5720-32x-ei", "firmware.version", "", "Version 5.170 V200R010C00SPC600", OK),
    # Huawei YunShan S5735: stack of two, four PSUs, two fans
    ("yunshan_s5735-v2", "cpu.usage", "", 67.0, OK),
    ("yunshan_s5735-v2", "mem.usage", "", 60.0, OK),
    ("yunshan_s5735-v2", "hw.temperature", "S5735-L24P4XE-A-V2 1", 25.0, OK),
    ("yunshan_s5735-v2", "hw.fan", "slot1,FAN2", "ok", OK),
    ("yunshan_s5735-v2", "hw.psu", "PSU 1/5", "ok", OK),
    ("yunshan_s5735-v2", "hw.psu", "PSU 2/6", "ok", OK),
    ("yunshan_s5735-v2", "firmware.version", "", "V600R022C01SPC500", OK),
    # HP/H3C Comware A5500: entity ext (board 8 % CPU, 47 % memory, Sensor1 38 °C), LswDEVM
    ("comware_a5500", "cpu.usage", "", 8.0, OK),
    ("comware_a5500", "mem.usage", "", 47.0, OK),
    ("comware_a5500", "hw.temperature", "Sensor1", 38.0, OK),
    ("comware_a5500", "hw.fan", "fan 1", "ok", OK),
    ("comware_a5500", "hw.psu", "PSU 1", "ok", OK),
    ("comware_a5500", "hw.psu", "PSU 2", "absent", OK),
    ("comware_a5500", "firmware.version", "", "5.20.99 Release 2222P08", OK),
    # Cisco Catalyst 3560: CISCO-PROCESS-MIB 5 min, processor pool, ENVMON fan and PSU
    ("ios_c3560", "cpu.usage", "", 7.0, OK),
    ("ios_c3560", "mem.usage", "", 26.7, OK),
    ("ios_c3560", "hw.fan", "Switch#1, Fan#1", "ok", OK),
    ("ios_c3560", "hw.psu", "Sw1, PS1 Normal, RPS NotExist", "ok", OK),
    ("ios_c3560", "firmware.version", "", "12.2(55)SE12", OK),
    ("ios_c3560", "if.errors", "", None, UNKNOWN),  # the recording has no counters
    # Cisco Catalyst 9300: no health MIB in the recording; ENTITY-MIB software revision
    ("iosxe_c9300", "cpu.usage", "", None, UNKNOWN),
    ("iosxe_c9300", "firmware.version", "", "Everest 16.6.7", OK),
    ("iosxe_c9300", "if.errors", "StackPort1", 0.0, OK),
    # Juniper QFX5130 (Junos Evolved): jnxOperatingTable
    ("junos_qfx5130-32cd-evo", "cpu.usage", "", 13.0, OK),
    ("junos_qfx5130-32cd-evo", "mem.usage", "", 17.0, OK),
    ("junos_qfx5130-32cd-evo", "hw.temperature", "FPC: QFX5130-32CD @ 0/*/*", 28.0, OK),
    ("junos_qfx5130-32cd-evo", "hw.temperature", "Routing Engine slot 0", 41.0, OK),
    ("junos_qfx5130-32cd-evo", "hw.fan", "Fan Tray 5", "ok", OK),
    ("junos_qfx5130-32cd-evo", "hw.psu", "PSM slot 1", "ok", OK),
    ("junos_qfx5130-32cd-evo", "firmware.version", "", "22.2R3-S1.3-EVO", OK),
    # MikroTik CRS317: hrProcessorLoad 16 and 17, gauges; psu1 reports "fail" (0)
    ("routeros_crs317", "cpu.usage", "", 16.5, OK),
    ("routeros_crs317", "mem.usage", "", 4.6, OK),
    ("routeros_crs317", "hw.temperature", "temperature", 45.0, OK),
    ("routeros_crs317", "hw.temperature", "cpu-temperature", 36.0, OK),
    ("routeros_crs317", "hw.psu", "psu1-state", "failed", CRIT),
    ("routeros_crs317", "hw.psu", "psu2-state", "ok", OK),
    ("routeros_crs317", "hw.fan", "", None, UNKNOWN),
    ("routeros_crs317", "firmware.version", "", "6.44.2", OK),
    # Cumulus Linux: ENTITY-SENSOR (°C with precision 1, fans in rpm), HOST-RESOURCES
    ("cumulus_cumulus", "cpu.usage", "", 2.0, OK),
    ("cumulus_cumulus", "mem.usage", "", 33.8, OK),
    ("cumulus_cumulus", "hw.temperature", "PSU1Temp1", 25.0, OK),
    ("cumulus_cumulus", "hw.temperature", "Temp5", 25.0, OK),
    ("cumulus_cumulus", "hw.fan", "PSU2Fan1", "ok", OK),
    # Ruijie: standard MIBs only
    ("ruijie", "cpu.usage", "", None, UNKNOWN),
    ("ruijie", "firmware.version", "", "173619", OK),
    # Windows Server 2019 over HOST-RESOURCES
    ("windows_svr_2019_1809", "cpu.usage", "", 2.0, OK),
    ("windows_svr_2019_1809", "mem.usage", "", 22.7, OK),
    ("windows_svr_2019_1809", "disk.usage", "C:\\", 30.3, OK),
    ("windows_svr_2019_1809", "hw.device_status", "processors", "running", OK),
    ("windows_svr_2019_1809", "hw.device_status", "D:\\", "unknown", OK),
    ("windows_svr_2019_1809", "hw.device_status", "Fixed Disk", "running", OK),
    ("windows_svr_2019_1809", "clock.drift", "", None, UNKNOWN),
    # Linux (net-snmp): 24 CPUs, buffers and cache not counted as used memory
    ("linux_powermon", "cpu.usage", "", 51.5, OK),
    ("linux_powermon", "mem.usage", "", 29.1, OK),
    ("linux_powermon", "disk.usage", "/", 18.0, OK),
    ("linux_powermon", "disk.usage", "/opt", 10.1, OK),
    ("linux_powermon", "disk.usage", "/boot", 24.8, OK),
    ("linux_powermon", "hw.device_status", "processors", "running", OK),
    # Synology RS2212RP+: SYNOLOGY-* MIBs; DSM says an update is available
    ("dsm", "cpu.usage", "", 8.5, OK),
    ("dsm", "mem.usage", "", 60.9, OK),
    ("dsm", "disk.usage", "/volume1", 68.6, OK),
    ("dsm", "disk.status", "Disk 1", "initialized", OK),
    ("dsm", "disk.status", "Disk 12 (RX1214rp-1)", "ok", OK),
    ("dsm", "raid.status", "Volume 1", "normal", OK),
    ("dsm", "hw.temperature", "system", 48.0, OK),
    ("dsm", "hw.fan", "CPU fan", "ok", OK),
    ("dsm", "hw.psu", "power", "ok", OK),
    ("dsm", "device.health", "", "ok", OK),
    ("dsm", "firmware.version", "", "DSM 6.1-15217", WARN),
    # APC Smart-UPS 1000 (NMC3): high-precision PowerNet values, two environment probes
    ("apc_smtl1000-nmc3", "ups.on_battery", "", "no", OK),
    ("apc_smtl1000-nmc3", "ups.output_status", "", "online", OK),
    ("apc_smtl1000-nmc3", "ups.battery_capacity", "", 100.0, OK),
    ("apc_smtl1000-nmc3", "ups.battery_replace", "", "no", OK),
    ("apc_smtl1000-nmc3", "ups.runtime", "", 1522.0, OK),
    ("apc_smtl1000-nmc3", "ups.load", "", 37.8, OK),
    ("apc_smtl1000-nmc3", "ups.input_voltage", "", 118.0, OK),
    ("apc_smtl1000-nmc3", "ups.battery_status", "", None, UNKNOWN),
    ("apc_smtl1000-nmc3", "hw.temperature", "battery", 28.0, OK),
    ("apc_smtl1000-nmc3", "env.temperature", "Equipment Room", 27.0, OK),
    ("apc_smtl1000-nmc3", "env.temperature", "Equipment Cabinet", 28.0, OK),
    ("apc_smtl1000-nmc3", "env.humidity", "Equipment Room", 32.0, OK),
    ("apc_smtl1000-nmc3", "firmware.version", "", "UPS 16.0 (ID1047)", OK),
    # Axis P5676-LE: five temperature sensors; both storage rows report a disruption
    ("axiscam_p5676-le", "hw.temperature", "temperature 1", 22.0, OK),
    ("axiscam_p5676-le", "hw.temperature", "temperature 3", 17.0, OK),
    ("axiscam_p5676-le", "hw.temperature", "temperature 5", 19.0, OK),
    ("axiscam_p5676-le", "disk.status", "storage 1", "disruption detected", CRIT),
    ("axiscam_p5676-le", "firmware.version", "", "11.10.61", OK),
    # Hikvision camera: usage as "15 PERCENT" strings
    ("hikvision-cam", "cpu.usage", "", 15.0, OK),
    ("hikvision-cam", "mem.usage", "", 83.0, OK),
    ("hikvision-cam", "firmware.version", "", "V5.5.3 build 171025", OK),
    # Hikvision NVR: hikMemoryUsage, hikDiskTable free/capacity in MiB
    ("hikvision-nvr", "mem.usage", "", 5.0, OK),
    ("hikvision-nvr", "disk.usage", "disk 1.0", 28.8, OK),
    ("hikvision-nvr", "disk.status", "", None, UNKNOWN),
    # Dahua NVR: cpuUsage and device status scalars
    ("dahua-nvr", "cpu.usage", "", 6.0, OK),
    ("dahua-nvr", "device.health", "", "ok", OK),
    ("dahua-nvr", "firmware.version", "", "3.212.0000.1", OK),
    # cameras that expose nothing beyond MIB-2
    ("vivotek", "cpu.usage", "", None, UNKNOWN),
    ("ipolis", "firmware.version", "", None, UNKNOWN),
]


@pytest.mark.parametrize(
    ("community", "check", "item", "value", "status"),
    VENDOR_VALUES,
    ids=[f"{c}:{k}[{i}]" for c, k, i, _, _ in VENDOR_VALUES],
)
def test_vendor_values(
    polled: dict[str, Polled],
    snmpsim: SnmpSim,
    community: str,
    check: str,
    item: str,
    value: Any,
    status: Status,
) -> None:
    result = found(polled, snmpsim, community)[(check, item)]
    assert (result.value, result.status) == (value, status), result.summary


def test_counts_and_facts(polled: dict[str, Polled], snmpsim: SnmpSim) -> None:
    """Where the count of components is the point: every disk, fan and sensor, no duplicates."""

    def items(community: str, check: str) -> list[str]:
        return sorted(i for c, i in found(polled, snmpsim, community) if c == check)

    assert len(items("dsm", "disk.status")) == 22
    assert len(items("cumulus_cumulus", "hw.temperature")) == 7
    assert len(items("cumulus_cumulus", "hw.fan")) == 8
    assert items("junos_qfx5130-32cd-evo", "hw.fan") == [f"Fan Tray {n}" for n in range(6)]
    assert items("axiscam_p5676-le", "hw.temperature") == [f"temperature {n}" for n in range(1, 6)]
    # pseudo and removable file systems are not disk space: /dev/shm, /run…, /media/iso
    assert items("linux_powermon", "disk.usage") == ["/", "/boot", "/opt"]
    assert items("dsm", "disk.usage") == ["/", "/tmp", "/volume1"]
    # one reading per real sensor, not the chassis value repeated on every port (H3C)
    assert items("comware_a5500", "hw.temperature") == ["Sensor1"]
    facts = found(polled, snmpsim, "cumulus_cumulus")[("hw.fan", "Fan1")].facts
    assert facts["rpm"] == "6000"
    dsm_disk = found(polled, snmpsim, "dsm")[("disk.status", "Disk 2")].facts
    assert dsm_disk["model"] == "WD50EFRX-68MYMN1"
    assert dsm_disk["temperature_c"] == "42"
    vrp = found(polled, snmpsim, "vrp_5720-32x-ei")
    assert vrp[("cpu.usage", "")].summary == "44% (MPU Board 0)"
    assert vrp[("hw.temperature", "MPU Board 0")].facts["device_threshold_c"] == "55"
    linux = found(polled, snmpsim, "linux_powermon")[("hw.device_status", "processors")]
    assert linux.summary == "24 of 24 processors running"


def test_frozen_counters_give_zero_rates(polled: dict[str, Polled], snmpsim: SnmpSim) -> None:
    """The recordings' counters do not move: the second poll reports 0 for every interface
    that is up, and nothing for the ones that are down."""
    vrp = found(polled, snmpsim, "vrp_5720-32x-ei")
    assert vrp[("if.errors", "GigabitEthernet0/0/1")].value == 0.0
    assert vrp[("if.discards", "GigabitEthernet0/0/1")].value == 0.0
    assert vrp[("if.utilisation", "GigabitEthernet0/0/1")].value == 0.0
    assert vrp[("if.utilisation", "XGigabitEthernet0/0/4")].facts["speed_bps"] == "10000000000"
    assert ("if.errors", "GigabitEthernet0/0/9") not in vrp  # down
    assert ("if.utilisation", "InLoopBack0") not in vrp  # up, but no speed


# --------------------------------------------------------------------------------- requests


class Recorder:
    """Wraps SnmpClient.get_many/walk to see which requests a collection makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gets: list[list[str]] = []
        self.walks: list[str] = []
        get_many, walk = SnmpClient.get_many, SnmpClient.walk

        async def recording_get(client: SnmpClient, oids: Any) -> Any:
            oids = list(oids)
            self.gets.append(oids)
            return await get_many(client, oids)

        async def recording_walk(client: SnmpClient, oid: str) -> Any:
            self.walks.append(oid)
            return await walk(client, oid)

        monkeypatch.setattr(SnmpClient, "get_many", recording_get)
        monkeypatch.setattr(SnmpClient, "walk", recording_walk)


async def test_one_get_and_only_the_needed_columns(
    snmpsim: SnmpSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = Recorder(monkeypatch)
    probe = SnmpProbe({})
    target = snmpsim.target("vrp_5720-32x-ei", device_class="switch")
    try:
        obs = await probe.collect(target, {"cpu.usage", "mem.usage", "hw.temperature"})
        assert len(requests.gets) == 1
        assert requests.walks == [
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5",  # hwEntityCpuUsage
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.6",  # … threshold
            "1.3.6.1.2.1.47.1.1.1.1.7",  # entPhysicalName, once for all three checks
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.11",  # hwEntityTemperature
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.12",
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.7",  # hwEntityMemUsage
            "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.8",
        ]
        assert {o.check for o in obs} == {"cpu.usage", "mem.usage", "hw.temperature"}
        # the second collection asks only the scalars of this vendor: no UPS, camera or NAS
        requests.gets.clear()
        await probe.collect(target, {"ups.load", "cpu.usage"})
        assert not [oid for oid in requests.gets[0] if oid.startswith("1.3.6.1.4.1.318.")]
    finally:
        await probe.close()


async def test_fallback_sources_are_asked_in_order(
    snmpsim: SnmpSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cisco C9300 without CISCO-PROCESS-MIB: both of its tables, then HOST-RESOURCES; each
    table that does not exist costs one short exchange and its other columns are skipped."""
    requests = Recorder(monkeypatch)
    probe = SnmpProbe({})
    try:
        obs = await probe.collect(snmpsim.target("iosxe_c9300"), {"cpu.usage"})
    finally:
        await probe.close()
    assert requests.walks == [
        "1.3.6.1.4.1.9.9.109.1.1.1.1.8",
        "1.3.6.1.4.1.9.9.109.1.1.1.1.5",
        "1.3.6.1.2.1.25.3.3.1.2",
    ]
    assert (
        obs[0].summary
        == "not exposed by the device (looked in CISCO-PROCESS-MIB, HOST-RESOURCES-MIB)"
    )


# ------------------------------------------------------------------------------------ rates


def test_counter_delta() -> None:
    assert counter_delta(100, 250, 32) == 150
    assert counter_delta(2**32 - 10, 5, 32) == 15  # one wrap of a Counter32
    assert counter_delta(2**64 - 1, 0, 64) == 1  # and of a Counter64
    assert counter_delta(1000, 10, 32) is None  # a reset, not a wrap
    assert counter_delta(10**12, 10, 64) is None


def test_counter_memory() -> None:
    memory = CounterMemory()
    first = memory.rate("sw", "6", IN_ERRORS, 2**32 - 30, at=1000.0)
    assert (first.per_second, first.problem) == (None, None)  # baseline
    wrapped = memory.rate("sw", "6", IN_ERRORS, 30, at=1060.0)
    assert wrapped.per_second == 1.0
    back = memory.rate("sw", "6", IN_ERRORS, 0, at=1120.0)
    assert back.per_second is None
    assert back.problem == (
        "in counter went backwards (30 → 0) without a device restart; baseline taken again"
    )
    assert memory.rate("sw", "6", IN_ERRORS, 60, at=1180.0).per_second == 1.0
    assert memory.rate("sw", "6", IN_ERRORS, 61, at=1180.5).per_second is None  # too soon
    assert not memory.device_restarted("sw", 5000)
    assert memory.device_restarted("sw", 100)  # sysUpTime went down: baselines dropped
    assert memory.rate("sw", "6", IN_ERRORS, 90, at=1240.0).per_second is None


async def test_rates_from_two_samples(snmpsim: SnmpSim) -> None:
    """Baselines 60 s before the recording's counters: exact rates, a Counter32 wrap, and a
    counter that went backwards."""
    clock = FakeClock(1060.0)
    probe = SnmpProbe({}, clock=clock)
    target = snmpsim.target("vrp_5720-32x-ei", name="sw1", device_class="switch")
    gi1 = "6"  # GigabitEthernet0/0/1: HC in 2695687324635, out 667799675189118, 1000 Mb/s
    base = probe.counters
    base.set_baseline("sw1", gi1, IN_OCTETS_HC, 2695687324635 - 7_500_000, 1000.0)
    base.set_baseline("sw1", gi1, OUT_OCTETS_HC, 667799675189118 - 750_000_000, 1000.0)
    base.set_baseline("sw1", gi1, IN_ERRORS, 2**32 - 30, 1000.0)  # recorded value 0: wrapped
    base.set_baseline("sw1", gi1, OUT_ERRORS, 0, 1000.0)
    base.set_baseline("sw1", gi1, IN_DISCARDS, 1000, 1000.0)  # recorded 0: went backwards
    base.set_baseline("sw1", gi1, OUT_DISCARDS, 0, 1000.0)
    try:
        obs = await probe.collect(target, RATE_CHECKS)
    finally:
        await probe.close()
    by = {(o.check, o.item): o for o in obs}
    util = by[("if.utilisation", "GigabitEthernet0/0/1")]
    assert util.value == 10.0  # out: 750 MB in 60 s = 100 Mb/s of 1000 Mb/s
    assert util.facts == {
        "in_bps": "1000000",
        "out_bps": "100000000",
        "speed_bps": "1000000000",
        "counters": "64-bit",
    }
    assert util.summary == "in 0.1%, out 10.0% of 1 Gb/s"
    errors = by[("if.errors", "GigabitEthernet0/0/1")]
    assert errors.value == 0.5
    assert errors.summary == "0.5/s in, 0/s out"
    discards = by[("if.discards", "GigabitEthernet0/0/1")]
    assert discards.status is Status.UNKNOWN
    assert discards.summary.startswith("in counter went backwards (1000 → 0)")
    # every other interface that is up only got its baseline now
    assert {item for check, item in by if check == "if.errors"} == {"GigabitEthernet0/0/1"}
    results = {(r.check, r.item): r for r in to_results(target, CATALOGUE["switch"], obs)}
    assert results[("if.errors", "GigabitEthernet0/0/1")].status is Status.WARN
    assert results[("if.utilisation", "GigabitEthernet0/0/1")].status is Status.OK


async def test_device_restart_takes_new_baselines(snmpsim: SnmpSim) -> None:
    clock = FakeClock()
    probe = SnmpProbe({}, clock=clock)
    target = snmpsim.target("vrp_5720-32x-ei", name="sw2", device_class="switch")
    try:
        await probe.collect(target, {"if.errors"})
        clock.now += 60
        assert [o for o in await probe.collect(target, {"if.errors"}) if o.value == 0.0]
        probe.counters.device_restarted("sw2", 2**32 - 1)  # as if sysUpTime had been higher
        clock.now += 60
        assert await probe.collect(target, {"if.errors"}) == []  # restarted: baselines only
    finally:
        await probe.close()


async def test_32_bit_octets_without_if_x_table(snmpsim: SnmpSim) -> None:
    """Windows has no ifHCInOctets: ifInOctets/ifOutOctets with ifSpeed instead."""
    clock = FakeClock()
    probe = SnmpProbe({}, clock=clock)
    target = snmpsim.target("windows_svr_2019_1809")
    try:
        assert await probe.collect(target, {"if.utilisation"}) == []
        clock.now += 300
        obs = await probe.collect(target, {"if.utilisation"})
    finally:
        await probe.close()
    assert obs and all(o.value == 0.0 for o in obs)
    assert {o.facts["counters"] for o in obs} == {"32-bit"}


# ----------------------------------------------------------------------------------- clock

ZONE_8 = timezone(timedelta(hours=8))


def test_parse_date_and_time() -> None:
    with_zone = bytes.fromhex("07e5030a0a141e052b0800")
    assert parse_date_and_time(with_zone, UTC) == datetime(2021, 3, 10, 10, 20, 30, 500_000, ZONE_8)
    west = bytes.fromhex("07e5030a0a141e052d0500")
    assert parse_date_and_time(west, UTC) == datetime(
        2021, 3, 10, 10, 20, 30, 500_000, timezone(timedelta(hours=-5))
    )
    local = bytes.fromhex("07e5030a0a141e05")
    assert parse_date_and_time(local, ZONE_8) == datetime(2021, 3, 10, 10, 20, 30, 500_000, ZONE_8)
    for garbage in (
        b"",
        bytes.fromhex("07e50d"),  # truncated
        bytes.fromhex("07e50d0a0a141e05"),  # month 13
        bytes.fromhex("07e5030a0a141e0f"),  # deci-seconds 15
        bytes.fromhex("07e5030a0a141e053f0800"),  # direction '?'
        "2021-3-10,10:20:30.5",  # text instead of octets
        42,
    ):
        assert parse_date_and_time(garbage, UTC) is None


def fetched_at(agent_time: datetime) -> Fetched:
    return Fetched({}, {}, "1.3.6.1.4.1.8072.3.2.10", agent_time, UTC)


def test_clock_drift_sign_and_size() -> None:
    agent = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
    behind = clock_drift(bytes.fromhex("07ea0b170f3b1e002b0800"), fetched_at(agent))[0]
    # 2026-11-23 15:59:30 +08:00 is 07:59:30 UTC: 30 s behind the agent
    assert behind.value == 30.0
    assert behind.facts["drift_s"] == "-30.0"
    assert behind.summary == ("device clock 2026-11-23T15:59:30+08:00 is 30.0 s behind the agent's")
    ahead = clock_drift(bytes.fromhex("07ea0b1708000305"), fetched_at(agent))[0]
    assert (ahead.value, ahead.facts["drift_s"]) == (3.5, "+3.5")
    assert ahead.facts["device_zone"] == "none sent; agent zone assumed"
    bad = clock_drift(bytes.fromhex("07ea0d"), fetched_at(agent))[0]
    assert bad.status is Status.UNKNOWN
    assert bad.summary == "HOST-RESOURCES-MIB hrSystemDate: unreadable value '07ea0d'"


# ------------------------------------------------------ derived recordings for what none has

HR_SYSTEM_DATE = "1.3.6.1.2.1.25.1.2.0"
RFC1628_UPS = """\
1.3.6.1.2.1.1.1.0|4|Synthetic RFC 1628 UPS for fieldmon tests (hand-written, not a recording)
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1
1.3.6.1.2.1.1.3.0|67|500000
1.3.6.1.2.1.33.1.1.1.0|4|Example Power
1.3.6.1.2.1.33.1.1.2.0|4|EP-3000
1.3.6.1.2.1.33.1.2.1.0|2|3
1.3.6.1.2.1.33.1.2.3.0|2|7
1.3.6.1.2.1.33.1.2.4.0|2|18
1.3.6.1.2.1.33.1.2.7.0|2|31
1.3.6.1.2.1.33.1.3.3.1.3.1|2|231
1.3.6.1.2.1.33.1.3.3.1.3.2|2|229
1.3.6.1.2.1.33.1.3.3.1.3.3|2|226
1.3.6.1.2.1.33.1.4.1.0|2|5
1.3.6.1.2.1.33.1.4.4.1.5.1|2|41
1.3.6.1.2.1.33.1.4.4.1.5.2|2|55
1.3.6.1.2.1.33.1.4.4.1.5.3|2|38
"""


def _oid_key(oid: bytes) -> tuple[int, ...]:
    return tuple(int(arc) for arc in oid.split(b".") if arc.isdigit())


def derive(src: str, dst: Path, records: Mapping[str, str]) -> Path:
    """A copy of recording ``src`` with ``records`` ("OID" → "tag|value") replaced or added,
    in OID order as snmpsim requires."""
    rows: dict[bytes, bytes] = {}
    for line in (recordings_dir() / f"{src}.snmprec").read_bytes().splitlines():
        oid, sep, rest = line.partition(b"|")
        if sep:
            rows[oid] = rest
    for new_oid, new_rest in records.items():
        rows[new_oid.encode()] = new_rest.encode()
    body = b"\n".join(k + b"|" + v for k, v in sorted(rows.items(), key=lambda kv: _oid_key(kv[0])))
    dst.write_bytes(body + b"\n")
    return dst


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    folder = tmp_path_factory.mktemp("derived-recordings")
    (folder / "ups-rfc1628.snmprec").write_text(RFC1628_UPS)
    files = [
        folder / "ups-rfc1628.snmprec",
        # linux_powermon plus an hrSystemDate from March 2021, with and without a zone
        derive(
            "linux_powermon",
            folder / "clock-zone.snmprec",
            {HR_SYSTEM_DATE: "4x|07e5030a0a141e052b0800"},
        ),
        derive(
            "linux_powermon",
            folder / "clock-local.snmprec",
            {HR_SYSTEM_DATE: "4x|07e5030a0a141e05"},
        ),
        derive("linux_powermon", folder / "clock-garbage.snmprec", {HR_SYSTEM_DATE: "4x|07e50d"}),
        # garbled readings in otherwise real devices
        derive(
            "vrp_5720-32x-ei",
            folder / "vrp-garbage.snmprec",
            {
                "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5.67108873": "4|forty-four",
                "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.11.67108873": "2|2147483647",
                "1.3.6.1.2.1.31.1.1.1.6.6": "4|lots",
                "1.3.6.1.4.1.2011.5.25.31.1.1.10.1.7.0.0": "2|9",
            },
        ),
        derive(
            "hikvision-cam",
            folder / "hikvision-garbage.snmprec",
            {
                "1.3.6.1.4.1.39165.1.7.0": "4|n/a PERCENT",
                "1.3.6.1.4.1.39165.1.11.0": "4|170 PERCENT",
            },
        ),
    ]
    sim = SnmpSim(files)
    try:
        sim.start()
        yield sim
    finally:
        sim.close()


async def collect(sim: SnmpSim, community: str, device_class: str) -> dict[tuple[str, str], Result]:
    dc = CATALOGUE[device_class]
    target = sim.target(community, device_class=device_class)
    probe = SnmpProbe({})
    try:
        obs = await probe.collect(target, snmp_checks(dc))
    finally:
        await probe.close()
    return {(r.check, r.item): r for r in to_results(target, dc, obs)}


async def test_clock_drift_from_hr_system_date(derived: SnmpSim) -> None:
    """The device clock says 2021-03-10 10:20:30.5 +08:00: years behind, CRIT, and the facts
    keep both timestamps for the record."""
    before = datetime.now(UTC)
    result = (await collect(derived, "clock-zone", "server-snmp"))[("clock.drift", "")]
    after = datetime.now(UTC)
    device = datetime(2021, 3, 10, 2, 20, 30, 500_000, UTC)
    assert result.status is Status.CRIT
    assert (before - device).total_seconds() - 1 <= result.value  # type: ignore[operator]
    assert result.value <= (after - device).total_seconds() + 1  # type: ignore[operator]
    drift = float(result.facts["drift_s"])
    assert drift < 0 and abs(drift) == result.value
    assert result.facts["device_time"] == "2021-03-10T10:20:30.500000+08:00"
    assert result.facts["device_zone"] == "sent by the device"
    assert " y " in result.summary and result.summary.endswith("behind the agent's")


async def test_clock_without_zone_and_garbled(derived: SnmpSim) -> None:
    local = (await collect(derived, "clock-local", "server-snmp"))[("clock.drift", "")]
    assert local.status is Status.CRIT
    assert local.facts["device_zone"] == "none sent; agent zone assumed"
    assert float(local.facts["drift_s"]) < -1e8
    garbled = (await collect(derived, "clock-garbage", "server-snmp"))[("clock.drift", "")]
    assert garbled.status is Status.UNKNOWN
    assert garbled.summary == "HOST-RESOURCES-MIB hrSystemDate: unreadable value '07e50d'"


async def test_rfc1628_ups(derived: SnmpSim) -> None:
    """A UPS without PowerNet: on battery, battery low, 7 minutes left."""
    results = await collect(derived, "ups-rfc1628", "ups")
    expected = {
        "ups.on_battery": ("yes", Status.CRIT),
        "ups.output_status": ("on battery", Status.OK),
        "ups.battery_status": ("low", Status.CRIT),
        "ups.battery_capacity": (18.0, Status.CRIT),
        "ups.runtime": (420.0, Status.WARN),
        "ups.load": (55.0, Status.OK),
        "ups.input_voltage": (226.0, Status.OK),
        "ups.battery_replace": (None, Status.UNKNOWN),
    }
    for check, (value, status) in expected.items():
        result = results[(check, "")]
        assert (result.value, result.status) == (value, status), (check, result.summary)
    assert results[("hw.temperature", "battery")].value == 31.0
    assert results[("ups.runtime", "")].summary.endswith("; 7.0 min")


async def test_garbled_values_are_unknown_for_their_item_only(derived: SnmpSim) -> None:
    results = await collect(derived, "vrp-garbage", "switch")
    cpu = results[("cpu.usage", "")]
    assert cpu.status is Status.UNKNOWN
    assert cpu.summary == (
        "HUAWEI-ENTITY-EXTENT-MIB hwEntityCpuUsage: unreadable value 'forty-four' for MPU Board 0"
    )
    temp = results[("hw.temperature", "MPU Board 0")]
    assert temp.status is Status.UNKNOWN
    assert temp.summary == "HUAWEI-ENTITY-EXTENT-MIB: unreadable value '2147483647'"
    fan = results[("hw.fan", "fan 0/0")]
    assert fan.status is Status.UNKNOWN
    assert fan.summary == "HUAWEI-ENTITY-EXTENT-MIB: unknown state '9'"
    util = results[("if.utilisation", "GigabitEthernet0/0/1")]
    assert util.status is Status.UNKNOWN
    assert util.summary.startswith("unreadable octet counters ['lots'")
    assert results[("mem.usage", "")].value == 9.0  # the rest of the device is unaffected
    camera = await collect(derived, "hikvision-garbage", "camera")
    assert camera[("cpu.usage", "")].summary == "HIKVISION-MIB: unreadable value 'n/a PERCENT'"
    assert camera[("mem.usage", "")].summary == "HIKVISION-MIB: unreadable value '170 PERCENT'"
    assert camera[("firmware.version", "")].value == "V5.5.3 build 171025"
