"""The demo customer site: which devices it has, and what each one answers over SNMP.

A video-surveillance site as integrators maintain them: a Huawei core switch, four access
switches with eleven Hikvision cameras each, two Hikvision NVRs, an APC UPS, a Linux video
management server and a Windows server. Every device gets a deterministic identity (serial,
model, firmware) so that reports from two runs agree, and answers the OIDs the agent's device
classes poll (see ``agent/probes/snmp.py`` and ``agent/probes/snmp_health.py``): the system
group with a sysObjectID that ``fieldmon agent discover`` maps to the class used here,
ENTITY-MIB identity, IF-MIB tables with counters that grow, and the vendor or standard MIB
tables of its class.

What changes over time (faults) is described by :class:`SiteState`; :func:`records` turns a
device and a state into snmprec records, and :mod:`fieldmon.demo.recordings` writes them.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

#: One snmprec record: OID, type tag (with ``:fmdemo`` when computed at answer time), value.
Record = tuple[str, str, str]

SITE_NAME = "demo"
ZONE_MINUTES = 8 * 60  # the site's devices keep China Standard Time

CORE = "core-sw"
ACCESS = tuple(f"acc-sw-{n:02d}" for n in range(1, 5))
CAMERAS_PER_SWITCH = 11
NVRS = ("nvr-01", "nvr-02")
UPS = "ups-01"
LINUX_SERVER = "vms-01"
WINDOWS_SERVER = "srv-win-01"

#: snmpsim process groups: a device is "dark" when its group's responder is stopped.
GROUP_SITE = "site"
GROUP_SWITCH = "acc-sw-03"  # the access switch that goes down, with its cameras behind it
GROUP_CAMERA = "camera"  # the camera that goes dark on its own
DARK_CAMERA = "cam-07"
FAILING_SWITCH = "acc-sw-03"
DRIFTING_CAMERA = "cam-16"
FILLING_DISK = "/srv/video"


@dataclass(frozen=True, slots=True)
class Port:
    """A switch port: its name, whether a cable is plugged in, and what is behind it."""

    name: str
    speed_mbps: int
    peer: str | None = None
    #: bytes per second in and out (as the switch counts them) while up
    rate_in: float = 0.0
    rate_out: float = 0.0


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    device_class: str
    kind: str
    address: str
    community: str
    group: str
    location: str
    serial: str
    model: str
    firmware: str
    parent: str | None = None
    ports: tuple[Port, ...] = ()
    #: how long before the demo started the device booted (seconds)
    booted_ago: float = 86_400.0


@dataclass(slots=True)
class SiteState:
    """The faults in force at one moment; the default is a healthy site."""

    #: camera name → seconds its clock is ahead of the true time
    clock_offsets: dict[str, float] = field(default_factory=dict)
    #: used share (0-1) of the video disk of the Linux server
    video_disk_used: float = 0.78
    ups_on_battery: bool = False
    #: battery charge 0-1
    ups_charge: float = 1.0
    #: switch name → port names whose link is down (the device behind them is gone)
    ports_down: dict[str, set[str]] = field(default_factory=dict)
    #: device name → when it (re)booted, epoch seconds (overrides the initial boot time)
    booted_at: dict[str, float] = field(default_factory=dict)
    #: someone edited the core switch's configuration (see :func:`core_config`)
    core_config_edited: bool = False


# ------------------------------------------------------------------------------- the site


def _serial(rng: random.Random, prefix: str, digits: int) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return prefix + "".join(rng.choice(alphabet) for _ in range(digits))


CAMERA_MODELS = (
    ("DS-2CD2T47G2-L", "V5.7.3 build 220112", "gate and car park (bullet, ColorVu)"),
    ("DS-2CD2347G2-LU", "V5.7.3 build 220112", "corridor (turret)"),
    ("DS-2DE4425IW-DE", "V5.6.15 build 210520", "yard (PTZ dome)"),
)
AREAS = ("Warehouse A", "Warehouse B", "Office block", "Yard and gates")


def build_site(addresses: list[str]) -> list[Device]:
    """The demo site's devices, given one loopback address per device (in order)."""
    rng = random.Random(20261104)
    names: list[str] = [CORE, *ACCESS]
    cameras: list[tuple[str, str]] = []
    for n, switch in enumerate(ACCESS):
        for k in range(CAMERAS_PER_SWITCH):
            cameras.append((f"cam-{n * CAMERAS_PER_SWITCH + k + 1:02d}", switch))
    names += [c for c, _ in cameras]
    names += [*NVRS, UPS, LINUX_SERVER, WINDOWS_SERVER]
    if len(addresses) < len(names):
        raise ValueError(f"the demo site needs {len(names)} addresses, got {len(addresses)}")
    address = dict(zip(names, addresses, strict=False))
    devices: list[Device] = []

    def group_of(name: str, switch: str | None) -> str:
        if name == DARK_CAMERA:
            return GROUP_CAMERA
        if name == FAILING_SWITCH or switch == FAILING_SWITCH:
            return GROUP_SWITCH
        return GROUP_SITE

    camera_rate = 512_000.0  # a 4 Mbit/s main stream
    core_ports = [
        Port(f"XGigabitEthernet0/0/{i + 1}", 10_000, sw, camera_rate * 11 + 3e4, 2e5)
        for i, sw in enumerate(ACCESS)
    ]
    core_ports += [
        Port("XGigabitEthernet0/0/5", 10_000, NVRS[0], 2e5, camera_rate * 22),
        Port("XGigabitEthernet0/0/6", 10_000, NVRS[1], 2e5, camera_rate * 22),
        Port("GigabitEthernet0/0/7", 1_000, UPS, 300.0, 200.0),
        Port("XGigabitEthernet0/0/8", 10_000, LINUX_SERVER, 4e6, 8e6),
        Port("XGigabitEthernet0/0/9", 10_000, WINDOWS_SERVER, 3e5, 5e5),
    ]
    core_ports += [Port(f"XGigabitEthernet0/0/{i}", 10_000) for i in range(10, 25)]
    devices.append(
        Device(
            CORE,
            "switch",
            "huawei-switch",
            address[CORE],
            "demo-core-sw",
            GROUP_SITE,
            "Control room, rack 1",
            _serial(rng, "2102351931P0", 8),
            "S6730-H24X6C",
            "V200R022C00SPC500",
            ports=tuple(core_ports),
            booted_ago=86_400 * 143.3,
        )
    )
    for n, switch in enumerate(ACCESS):
        mine = [c for c, s in cameras if s == switch]
        ports = [
            Port(f"GigabitEthernet0/0/{i + 1}", 1_000, cam, camera_rate, 2_000.0)
            for i, cam in enumerate(mine)
        ]
        ports += [Port(f"GigabitEthernet0/0/{i}", 1_000) for i in range(len(mine) + 1, 25)]
        ports.append(Port("XGigabitEthernet0/0/1", 10_000, CORE, 2e5, camera_rate * 11 + 3e4))
        ports += [Port(f"XGigabitEthernet0/0/{i}", 10_000) for i in range(2, 5)]
        devices.append(
            Device(
                switch,
                "switch",
                "huawei-switch",
                address[switch],
                f"demo-{switch}",
                group_of(switch, None),
                f"{AREAS[n]}, wiring closet",
                _serial(rng, "102399215B", 10),
                "S5735-L24P4X-A1",
                "V200R021C10SPC600",
                parent=CORE,
                ports=tuple(ports),
                booted_ago=86_400 * (97.1 + n),
            )
        )
    for i, (cam, switch) in enumerate(cameras):
        model, firmware, where = CAMERA_MODELS[i % len(CAMERA_MODELS)]
        area = AREAS[ACCESS.index(switch)]
        devices.append(
            Device(
                cam,
                "camera",
                "hikvision-camera",
                address[cam],
                f"demo-{cam}",
                group_of(cam, switch),
                f"{area}, {where} {i % CAMERAS_PER_SWITCH + 1}",
                f"{model}20230815AACH{_serial(rng, '', 9)}",
                model,
                firmware,
                parent=switch,
                booted_ago=86_400 * (30 + i % 17) + 611 * i,
            )
        )
    for n, nvr in enumerate(NVRS):
        devices.append(
            Device(
                nvr,
                "nvr",
                "hikvision-nvr",
                address[nvr],
                f"demo-{nvr}",
                GROUP_SITE,
                "Control room, rack 2",
                f"DS-9664NI-M8{_serial(rng, '20220311CCRR', 9)}",
                "DS-9664NI-M8",
                "V4.62.210 build 220715",
                parent=CORE,
                booted_ago=86_400 * (61.5 + 9 * n),
            )
        )
    devices.append(
        Device(
            UPS,
            "ups",
            "apc-ups",
            address[UPS],
            f"demo-{UPS}",
            GROUP_SITE,
            "Control room, floor",
            _serial(rng, "AS2209", 6),
            "Smart-UPS SRT 3000",
            "UPS 16.5 (ID1033)",
            parent=CORE,
            booted_ago=86_400 * 402.2,
        )
    )
    devices.append(
        Device(
            LINUX_SERVER,
            "server-snmp",
            "linux-server",
            address[LINUX_SERVER],
            f"demo-{LINUX_SERVER}",
            GROUP_SITE,
            "Control room, rack 2",
            _serial(rng, "", 7),
            "PowerEdge R750",
            "Debian 12 (6.1.0-28-amd64)",
            parent=CORE,
            booted_ago=86_400 * 23.4,
        )
    )
    devices.append(
        Device(
            WINDOWS_SERVER,
            "windows-server",
            "windows-server",
            address[WINDOWS_SERVER],
            f"demo-{WINDOWS_SERVER}",
            GROUP_SITE,
            "Control room, rack 2",
            _serial(rng, "CZ2", 7),
            "ProLiant DL380 Gen10",
            "Windows Server 2019 (17763)",
            parent=CORE,
            booted_ago=86_400 * 11.8,
        )
    )
    return devices


# ----------------------------------------------------------------------------- records

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
ENT = "1.3.6.1.2.1.47.1.1.1.1"
ENT_SENSOR = "1.3.6.1.2.1.99.1.1.1"
HR = "1.3.6.1.2.1.25"
HW_STATE = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1"
HW_FAN = "1.3.6.1.4.1.2011.5.25.31.1.1.10.1"
HW_PWR = "1.3.6.1.4.1.2011.5.25.31.1.1.18.1"
HIK_CAM = "1.3.6.1.4.1.39165.1"
HIK_NVR = "1.3.6.1.4.1.50001.1"
APC_UPS = "1.3.6.1.4.1.318.1.1.1"
APC_UIO = "1.3.6.1.4.1.318.1.1.25.1.2.1"

SYS_OBJECT_IDS = {
    "huawei-switch": "1.3.6.1.4.1.2011.2.23.590",
    "hikvision-camera": "1.3.6.1.4.1.39165.1.1",
    "hikvision-nvr": "1.3.6.1.4.1.50001",
    "apc-ups": "1.3.6.1.4.1.318.1.3.27",
    "linux-server": "1.3.6.1.4.1.8072.3.2.10",
    "windows-server": "1.3.6.1.4.1.311.1.1.3.1.2",
}


def _dyn(kind: str, **settings: float) -> str:
    """A ``:fmdemo`` record value (see fieldmon/demo/variation/fmdemo.py); full precision,
    since epoch seconds and counter origins do not survive ``%g``."""
    numbers = (f"{k}={v:.3f}".rstrip("0").rstrip(".") for k, v in settings.items())
    return ",".join([kind, *numbers])


def _system(dev: Device, descr: str, boot: float) -> list[Record]:
    return [
        (f"{SYS}.1.0", "4", descr),
        (f"{SYS}.2.0", "6", SYS_OBJECT_IDS[dev.kind]),
        (f"{SYS}.3.0", "67:fmdemo", _dyn("uptime", boot=round(boot, 2))),
        (f"{SYS}.4.0", "4", "Maintenance desk +86 400 800 1234"),
        (f"{SYS}.5.0", "4", dev.name),
        (f"{SYS}.6.0", "4", dev.location),
    ]


def _entity(
    dev: Device, index: int, name: str, hardware: str = "VER.A", klass: int = 3
) -> list[Record]:
    """A row of entPhysicalTable (class 3 is the chassis): the identity the inventory check
    reads."""
    return [
        (f"{ENT}.2.{index}", "4", f"{dev.model} {'chassis' if klass == 3 else 'board'}"),
        (f"{ENT}.5.{index}", "2", str(klass)),
        (f"{ENT}.7.{index}", "4", name),
        (f"{ENT}.8.{index}", "4", hardware),
        (f"{ENT}.10.{index}", "4", dev.firmware),
        (f"{ENT}.11.{index}", "4", dev.serial),
        (f"{ENT}.13.{index}", "4", dev.model),
    ]


def _interfaces(ports: list[tuple[int, Port, bool]], since: float) -> list[Record]:
    """ifTable and ifXTable; counters of a link that is up grow at the port's rates."""
    out: list[Record] = []
    for index, port, up in ports:
        plugged = port.peer is not None
        oper = "1" if plugged and up else "2"
        out += [
            (f"{IF}.1.{index}", "2", str(index)),
            (f"{IF}.2.{index}", "4", port.name),
            (f"{IF}.3.{index}", "2", "6"),
            (f"{IF}.5.{index}", "66", str(min(port.speed_mbps * 1_000_000, 4_294_967_295))),
            (f"{IF}.7.{index}", "2", "1"),
            (f"{IF}.8.{index}", "2", oper),
            (f"{IF}.13.{index}", "65", "0"),
            (f"{IF}.14.{index}", "65", "0"),
            (f"{IF}.19.{index}", "65", "0"),
            (f"{IF}.20.{index}", "65", "0"),
            (f"{IFX}.1.{index}", "4", port.name),
            (f"{IFX}.15.{index}", "66", str(port.speed_mbps)),
        ]
        # Counters keep their origin whatever the link does, so a rewritten file never makes
        # them run backwards (the agent only computes rates for links that are up).
        seed = 7_000_000_000 + 91_337 * index
        rate_in, rate_out = port.rate_in, port.rate_out
        out.append(
            (f"{IFX}.6.{index}", "70:fmdemo", _dyn("counter", base=seed, rate=rate_in, since=since))
        )
        out.append(
            (
                f"{IFX}.10.{index}",
                "70:fmdemo",
                _dyn("counter", base=seed * 3, rate=rate_out, since=since),
            )
        )
    return out


def _switch(dev: Device, state: SiteState, boot: float, since: float) -> list[Record]:
    down = state.ports_down.get(dev.name, set())
    descr = (
        "Huawei Versatile Routing Platform Software VRP (R) software, Version 8.191 "
        f"({dev.model.split('-')[0]} {dev.firmware}) Copyright (C) 2000-2023 HUAWEI TECH CO., "
        f"LTD HUAWEI {dev.model}"
    )
    out = _system(dev, descr, boot)
    chassis, board = 67108867, 67108873
    out += _entity(dev, chassis, dev.model)
    out += _entity(dev, board, "MPU Board 0", klass=9)  # the main board is a module
    cpu = 9 + (zlib.crc32(dev.serial.encode()) % 9)
    out += [
        (f"{HW_STATE}.5.{chassis}", "2", "0"),
        (f"{HW_STATE}.6.{chassis}", "2", "0"),
        (f"{HW_STATE}.7.{chassis}", "2", "0"),
        (f"{HW_STATE}.8.{chassis}", "2", "0"),
        (f"{HW_STATE}.11.{chassis}", "2", "0"),
        (f"{HW_STATE}.12.{chassis}", "2", "0"),
        (f"{HW_STATE}.5.{board}", "2", str(cpu)),
        (f"{HW_STATE}.6.{board}", "2", "80"),
        (f"{HW_STATE}.7.{board}", "2", str(41 + cpu)),
        (f"{HW_STATE}.8.{board}", "2", "80"),
        (f"{HW_STATE}.11.{board}", "2", str(38 + cpu // 3)),
        (f"{HW_STATE}.12.{board}", "2", "75"),
    ]
    for n in (1, 2):
        out += [
            (f"{HW_FAN}.6.0.{n}", "2", "1"),
            (f"{HW_FAN}.7.0.{n}", "2", "1"),
            (f"{HW_FAN}.8.0.{n}", "4", f"FAN{n}"),
            (f"{HW_PWR}.5.0.{n}", "2", "1"),
            (f"{HW_PWR}.6.0.{n}", "2", "1"),
            (f"{HW_PWR}.9.0.{n}", "4", f"PWR{n}"),
        ]
    ports = [(i + 1, p, p.name not in down) for i, p in enumerate(dev.ports)]
    return out + _interfaces(ports, since)


def _hr_date(offset: float) -> Record:
    return (f"{HR}.1.2.0", "4:fmdemo", _dyn("clock", offset=round(offset, 1), zone=ZONE_MINUTES))


def _camera(dev: Device, state: SiteState, boot: float, since: float) -> list[Record]:
    descr = f"Hikvision IP camera {dev.model}"
    cpu = 14 + (zlib.crc32(dev.serial.encode()) % 23)
    out = _system(dev, descr, boot)
    out += _entity(dev, 1, dev.model, "Rev. B")
    out += [
        (f"{ENT}.2.2", "4", "main board temperature sensor"),
        (f"{ENT}.5.2", "2", "8"),
        (f"{ENT}.7.2", "4", "Main board"),
        (f"{ENT_SENSOR}.1.2", "2", "8"),
        (f"{ENT_SENSOR}.2.2", "2", "9"),
        (f"{ENT_SENSOR}.3.2", "2", "0"),
        (f"{ENT_SENSOR}.4.2", "2", str(37 + cpu // 4)),
        (f"{ENT_SENSOR}.5.2", "2", "1"),
        _hr_date(state.clock_offsets.get(dev.name, 0.0)),
        (f"{HIK_CAM}.1.0", "4", dev.model),
        (f"{HIK_CAM}.3.0", "4", dev.firmware),
        (f"{HIK_CAM}.7.0", "4", f"{cpu} PERCENT"),
        (f"{HIK_CAM}.10.0", "4", "512 MB"),
        (f"{HIK_CAM}.11.0", "4", f"{38 + cpu} PERCENT"),
    ]
    eth = Port("eth0", 100, "switch", 2_000.0, 512_000.0)
    return out + _interfaces([(1, eth, True)], since)


NVR_DISK_MIB = 5_723_166  # a 6 TB surveillance disk in MiB


def _nvr(dev: Device, state: SiteState, boot: float, since: float) -> list[Record]:
    out = _system(dev, "Hikvision network video recorder", boot)
    out += _entity(dev, 1, dev.model, "Rev. 1.0")
    out += [_hr_date(0.0)]
    out += [(f"{HR}.3.3.1.2.{196608 + n}", "2", str(21 + 3 * n)) for n in range(4)]
    out += [
        (f"{HIK_NVR}.1.0", "64", "127.0.0.1"),
        (f"{HIK_NVR}.3.0", "4", dev.serial),
        (f"{HIK_NVR}.100.0", "2", "2"),
        (f"{HIK_NVR}.101.0", "2", "64"),
        (f"{HIK_NVR}.220.0", "2", "4096"),
        (f"{HIK_NVR}.221.0", "2", "34"),
    ]
    for disk in range(1, 9):
        # recorders overwrite the oldest footage: disks stay nearly full by design
        free = int(NVR_DISK_MIB * (0.02 + 0.005 * disk))
        out += [
            (f"{HIK_NVR}.241.1.2.{disk}", "4", f"HDD{disk}"),
            (f"{HIK_NVR}.241.1.3.{disk}", "2", "0"),
            (f"{HIK_NVR}.241.1.4.{disk}", "2", str(free)),
            (f"{HIK_NVR}.241.1.5.{disk}", "2", str(NVR_DISK_MIB)),
        ]
    nics = [
        (1, Port("eth0", 10_000, "switch", 11 * 512_000.0, 2e5), True),
        (2, Port("eth1", 1_000), True),
    ]
    return out + _interfaces(nics, since)


def _ups(dev: Device, state: SiteState, boot: float, since: float) -> list[Record]:
    out = _system(
        dev, f"APC Web/SNMP Management Card (MB:v4.2.1 PF:v2.2.1.8 AN1:{dev.model})", boot
    )
    charge = max(0.0, min(1.0, state.ups_charge))
    full_runtime_s = 5_400.0  # 90 min at today's load
    runtime = full_runtime_s * charge * (0.8 if state.ups_on_battery else 1.0)
    out += [
        (f"{APC_UPS}.1.1.1.0", "4", dev.model),
        (f"{APC_UPS}.1.2.1.0", "4", dev.firmware),
        (f"{APC_UPS}.1.2.2.0", "4", "03/15/2022"),
        (f"{APC_UPS}.1.2.3.0", "4", dev.serial),
        (f"{APC_UPS}.2.1.1.0", "2", "2"),
        (f"{APC_UPS}.2.2.1.0", "66", str(round(charge * 100))),
        (f"{APC_UPS}.2.2.2.0", "66", "27"),
        (f"{APC_UPS}.2.2.3.0", "67", str(int(runtime * 100))),
        (f"{APC_UPS}.2.2.4.0", "2", "1"),
        (f"{APC_UPS}.3.2.1.0", "66", "0" if state.ups_on_battery else "221"),
        (f"{APC_UPS}.4.1.1.0", "2", "3" if state.ups_on_battery else "2"),
        (f"{APC_UPS}.4.2.3.0", "66", "38"),
        (f"{APC_UIO}.3.1.1", "4", "Control room"),
        (f"{APC_UIO}.6.1.1", "2", "24"),
        (f"{APC_UIO}.7.1.1", "2", "46"),
        (f"{APC_UIO}.9.1.1", "2", "1"),
        (f"{APC_UIO}.10.1.1", "2", "2"),
    ]
    out += _entity(dev, 1, dev.model, "Rev. 06")
    nic = Port("eth0", 100, "switch", 300.0, 200.0)
    return out + _interfaces([(1, nic, True)], since)


HR_RAM, HR_VIRTUAL, HR_OTHER, HR_DISK = (f"{HR}.2.1.{n}" for n in (2, 3, 1, 4))
HR_PROCESSOR, HR_DISK_DEVICE = f"{HR}.3.1.3", f"{HR}.3.1.6"


def _storage(index: int, kind: str, descr: str, units: int, size: int, used: int) -> list[Record]:
    return [
        (f"{HR}.2.3.1.1.{index}", "2", str(index)),
        (f"{HR}.2.3.1.2.{index}", "6", kind),
        (f"{HR}.2.3.1.3.{index}", "4", descr),
        (f"{HR}.2.3.1.4.{index}", "2", str(units)),
        (f"{HR}.2.3.1.5.{index}", "2", str(size)),
        (f"{HR}.2.3.1.6.{index}", "2", str(used)),
    ]


def _server(dev: Device, state: SiteState, boot: float, since: float) -> list[Record]:
    windows = dev.kind == "windows-server"
    if windows:
        descr = (
            "Hardware: Intel64 Family 6 Model 106 Stepping 6 AT/AT COMPATIBLE - "
            "Software: Windows Version 6.3 (Build 17763 Multiprocessor Free)"
        )
    else:
        descr = f"Linux {dev.name} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 x86_64"
    out = _system(dev, descr, boot)
    out += _entity(dev, 1, dev.model, "Rev. A01")
    out += [_hr_date(0.0)]
    gib4k = 1024 * 1024 // 4  # 4 KiB blocks per GiB
    if windows:
        out += _storage(
            1, HR_DISK, "C:\\ Label:  Serial Number 5c8e3f21", 4096, 120 * gib4k, 71 * gib4k
        )
        out += _storage(
            2, HR_DISK, "D:\\ Label:Data  Serial Number 8a01d7e2", 4096, 900 * gib4k, 388 * gib4k
        )
        out += _storage(3, HR_VIRTUAL, "Virtual Memory", 65536, 655_360, 301_000)
        out += _storage(4, HR_RAM, "Physical Memory", 65536, 524_288, 297_000)
    else:
        # 16 TiB in 64 KiB allocation units: hrStorageSize is an Integer32
        video_total = 16 * 1024 * 1024 * 1024 // 64
        used = int(video_total * max(0.0, min(1.0, state.video_disk_used)))
        out += _storage(1, HR_RAM, "Physical memory", 1024, 65_536_000, 41_200_000)
        out += _storage(3, HR_VIRTUAL, "Virtual memory", 1024, 73_924_000, 41_300_000)
        out += _storage(6, HR_OTHER, "Memory buffers", 1024, 65_536_000, 1_100_000)
        out += _storage(7, HR_OTHER, "Cached memory", 1024, 9_300_000, 9_300_000)
        out += _storage(31, HR_DISK, "/", 4096, 100 * gib4k, 23 * gib4k)
        out += _storage(36, HR_DISK, FILLING_DISK, 65536, video_total, used)
    cpus = 8 if windows else 16
    for n in range(cpus):
        index = 196608 + n
        out += [
            (f"{HR}.3.2.1.1.{index}", "2", str(index)),
            (f"{HR}.3.2.1.2.{index}", "6", HR_PROCESSOR),
            (f"{HR}.3.2.1.3.{index}", "4", "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz"),
            (f"{HR}.3.2.1.5.{index}", "2", "2"),
            (f"{HR}.3.3.1.2.{index}", "2", str(12 + (n * 7) % 19)),
        ]
    disk = 393216
    out += [
        (f"{HR}.3.2.1.1.{disk}", "2", str(disk)),
        (f"{HR}.3.2.1.2.{disk}", "6", HR_DISK_DEVICE),
        (f"{HR}.3.2.1.3.{disk}", "4", "PERC H755 RAID volume"),
        (f"{HR}.3.2.1.5.{disk}", "2", "2"),
    ]
    nic = Port("eno1" if not windows else "Ethernet0", 10_000, "switch", 8e6, 4e6)
    return out + _interfaces([(1, nic, True)], since)


BUILDERS = {
    "huawei-switch": _switch,
    "hikvision-camera": _camera,
    "hikvision-nvr": _nvr,
    "apc-ups": _ups,
    "linux-server": _server,
    "windows-server": _server,
}


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def records(dev: Device, state: SiteState, started: float) -> list[Record]:
    """The device's snmprec records, sorted by OID as snmpsim requires.

    ``started`` is when the demo started (epoch seconds): boot times and counter origins are
    fixed relative to it so that rewriting a file never makes a counter jump backwards.
    """
    boot = state.booted_at.get(dev.name, started - dev.booted_ago)
    out = BUILDERS[dev.kind](dev, state, boot, started)
    for oid, tag, value in out:
        if "|" in value or "\n" in value:
            raise ValueError(f"{dev.name}: record {oid} has a value snmprec cannot hold")
        if tag == "2" and not -(2**31) <= int(value) < 2**31:
            raise ValueError(f"{dev.name}: record {oid} = {value} does not fit an Integer32")
    return sorted(out, key=lambda r: _oid_key(r[0]))


# ------------------------------------------------------------- the core switch over SSH

#: The VLANs of the site: cameras, recorders and servers, management.
VLANS = {10: "cameras", 20: "recorders", 30: "servers", 100: "management"}
#: The edit the "config" fault makes: the video server's port moved out of its VLAN, the
#: kind of unannounced change that breaks recording until someone notices.
EDITED_PORT = "XGigabitEthernet0/0/8"
EDIT = (" port default vlan 30", " port default vlan 99")
SSH_USER = "fieldmon"


def _access_vlan(peer: str) -> int | None:
    """The VLAN of the core switch's port to ``peer``; None for a trunk to a switch."""
    if peer in ACCESS:
        return None
    if peer in NVRS:
        return 20
    return 100 if peer == UPS else 30


def core_config(dev: Device, state: SiteState) -> str:
    """The core switch's ``display current-configuration``, as a Huawei VRP switch prints it.

    Deterministic, so a backup taken twice without a fault is byte-for-byte the same; with
    ``state.core_config_edited`` one line differs (:data:`EDIT`). The ``local-user`` line
    carries a cipher text, which the agent masks in every diff it reports.
    """
    lines = [
        f"!Software Version {dev.firmware}",
        "!Last configuration was updated at 2026-10-28 09:14:03+08:00 by admin",
        "#",
        f"sysname {dev.name}",
        "#",
        f"vlan batch {' '.join(str(v) for v in VLANS)}",
        "#",
        "stp mode rstp",
        "stp instance 0 root primary",
        "#",
        "clock timezone Beijing add 08:00:00",
        "#",
    ]
    for vlan, name in VLANS.items():
        lines += [f"vlan {vlan}", f" name {name}", "#"]
    lines += [
        "aaa",
        f" local-user {SSH_USER} password irreversible-cipher "
        "$1c$K8u+4~Pq5J$Wd3]Y<b@E2N0:zLx7mH=qRr>T6a~9Gf5vS'B1c$",
        f" local-user {SSH_USER} privilege level 3",
        f" local-user {SSH_USER} service-type ssh",
        "#",
        "interface Vlanif100",
        " ip address 10.20.100.1 255.255.255.0",
        "#",
    ]
    for port in dev.ports:
        lines.append(f"interface {port.name}")
        if port.peer is None:
            lines += [" shutdown", "#"]
            continue
        lines.append(f" description to {port.peer}")
        access = _access_vlan(port.peer)
        if access is None:
            lines += [" port link-type trunk", " port trunk allow-pass vlan 10 100"]
        else:
            lines += [" port link-type access", f" port default vlan {access}"]
            if port.name == EDITED_PORT and state.core_config_edited:
                lines[-1] = EDIT[1]
        lines.append("#")
    lines += [
        "snmp-agent",
        "snmp-agent sys-info version v2c v3",
        "#",
        "stelnet server enable",
        f"ssh user {SSH_USER} authentication-type password",
        f"ssh user {SSH_USER} service-type stelnet",
        "#",
        "user-interface vty 0 4",
        " authentication-mode aaa",
        " protocol inbound ssh",
        "#",
        "ntp-service unicast-server 10.20.100.10",
        "#",
        "return",
    ]
    return "\n".join(lines) + "\n"
