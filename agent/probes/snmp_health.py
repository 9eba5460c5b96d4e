"""Device health over SNMP: CPU, memory, temperatures, fans, power supplies, disks, RAID, UPS,
environment probes, firmware and the device clock, from whichever MIB the device speaks.

Why sources as data: every vendor answers the same inspection question ("is the fan all
right?") from its own MIB, and most devices speak only one of them. Each :class:`Source` says
which check it answers, from which MIB, for which devices (sysObjectID prefixes), which scalars
it needs in the collection's single GET and which table columns it needs walked, and how to
read them. :data:`SOURCES` lists them in order of preference per check; the probe asks them in
turn and the first one that finds something on the device answers the check. A device where
none finds anything gets one UNKNOWN naming what was looked for, so the inspection record says
"not exposed" instead of silently missing the item.

Parsing is pure (a :class:`Fetched` snapshot in, observations out), so every vendor path is
tested against its real recording. A garbage value, a sentinel or an unknown state code gives
UNKNOWN with a reason for that one item; parsers never raise for device data.

Values are normalised so that one catalogue threshold fits every vendor: percentages, °C,
seconds, volts; component states as ``ok`` / ``warning`` / ``failed`` / ``absent`` / ``standby``
/ ``unknown`` (vendor words kept in the summary and facts). Where a device reports several
boards or CPUs, ``cpu.usage`` and ``mem.usage`` report the busiest main board (named in the
summary; all of them in the facts); HOST-RESOURCES processor load is the average of all
processors, as an operating system reports it.

What the recordings in shared/fixtures/snmprec showed (and the tests check): Huawei and H3C
report the same temperature on every entity, so only entities with a temperature threshold set
are sensors; MikroTik fan gauges read 0 rpm on a fan-controlled switch at rest, so they are not
taken as fan state; the only UPS recording (APC Smart-UPS 1000) exposes the high-precision
PowerNet values but no upsBasicBatteryStatus; no recording exposes hrSystemDate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from agent.probes.base import Observation, unknown
from agent.probes.snmp_values import (
    MAX_FACT_LEN,
    as_int,
    as_number,
    as_percent,
    clip,
    descr_lines,
    index_key,
    text,
    unique_items,
)
from agent.snmp_client import SnmpValue
from checks.status import Status

CPU = "cpu.usage"
MEM = "mem.usage"
TEMPERATURE = "hw.temperature"
FAN = "hw.fan"
PSU = "hw.psu"
DEVICE_STATUS = "hw.device_status"
DEVICE_HEALTH = "device.health"
DISK_USAGE = "disk.usage"
DISK_STATUS = "disk.status"
RAID = "raid.status"
CLOCK = "clock.drift"
FIRMWARE = "firmware.version"
ENV_TEMPERATURE = "env.temperature"
ENV_HUMIDITY = "env.humidity"
UPS_ON_BATTERY = "ups.on_battery"
UPS_OUTPUT = "ups.output_status"
UPS_BATTERY = "ups.battery_status"
UPS_CAPACITY = "ups.battery_capacity"
UPS_REPLACE = "ups.battery_replace"
UPS_RUNTIME = "ups.runtime"
UPS_LOAD = "ups.load"
UPS_INPUT_VOLTAGE = "ups.input_voltage"

# --------------------------------------------------------------------------- OIDs and vendors

SYS_DESCR = "1.3.6.1.2.1.1.1.0"

ENT_PHYSICAL = "1.3.6.1.2.1.47.1.1.1.1"
ENT_NAME = f"{ENT_PHYSICAL}.7"
ENT_CLASS = f"{ENT_PHYSICAL}.5"
ENT_CHASSIS = 3
#: entPhysicalTable columns read for inventory and firmware, by the fact name they feed.
ENT_COLUMNS = {
    "hardware": f"{ENT_PHYSICAL}.8",
    "firmware_rev": f"{ENT_PHYSICAL}.9",
    "software": f"{ENT_PHYSICAL}.10",
    "serial": f"{ENT_PHYSICAL}.11",
    "model": f"{ENT_PHYSICAL}.13",
}

ENT_SENSOR = "1.3.6.1.2.1.99.1.1.1"
ENT_SENSOR_TYPE, ENT_SENSOR_SCALE = f"{ENT_SENSOR}.1", f"{ENT_SENSOR}.2"
ENT_SENSOR_PRECISION, ENT_SENSOR_VALUE = f"{ENT_SENSOR}.3", f"{ENT_SENSOR}.4"
ENT_SENSOR_STATUS = f"{ENT_SENSOR}.5"

HR_SYSTEM_DATE = "1.3.6.1.2.1.25.1.2.0"
HR_STORAGE = "1.3.6.1.2.1.25.2.3.1"
HR_ST_TYPE, HR_ST_DESCR = f"{HR_STORAGE}.2", f"{HR_STORAGE}.3"
HR_ST_UNITS, HR_ST_SIZE, HR_ST_USED = f"{HR_STORAGE}.4", f"{HR_STORAGE}.5", f"{HR_STORAGE}.6"
HR_STORAGE_TYPES = "1.3.6.1.2.1.25.2.1"
HR_DEVICE = "1.3.6.1.2.1.25.3.2.1"
HR_DEV_TYPE, HR_DEV_DESCR, HR_DEV_STATUS = f"{HR_DEVICE}.2", f"{HR_DEVICE}.3", f"{HR_DEVICE}.5"
HR_DEVICE_TYPES = "1.3.6.1.2.1.25.3.1"
HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"

HUAWEI = ("1.3.6.1.4.1.2011",)
HW_STATE = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1"
HW_CPU, HW_CPU_LIMIT = f"{HW_STATE}.5", f"{HW_STATE}.6"
HW_MEM, HW_MEM_LIMIT = f"{HW_STATE}.7", f"{HW_STATE}.8"
HW_TEMP, HW_TEMP_LIMIT = f"{HW_STATE}.11", f"{HW_STATE}.12"
HW_FAN = "1.3.6.1.4.1.2011.5.25.31.1.1.10.1"
HW_FAN_PRESENT, HW_FAN_STATE, HW_FAN_DESC = f"{HW_FAN}.6", f"{HW_FAN}.7", f"{HW_FAN}.8"
HW_PWR = "1.3.6.1.4.1.2011.5.25.31.1.1.18.1"
HW_PWR_PRESENT, HW_PWR_STATE, HW_PWR_DESC = f"{HW_PWR}.5", f"{HW_PWR}.6", f"{HW_PWR}.9"

H3C = ("1.3.6.1.4.1.25506", "1.3.6.1.4.1.2011.10")
H3C_STATE = "1.3.6.1.4.1.25506.2.6.1.1.1.1"
H3C_CPU, H3C_MEM = f"{H3C_STATE}.6", f"{H3C_STATE}.8"
H3C_TEMP, H3C_TEMP_LIMIT = f"{H3C_STATE}.12", f"{H3C_STATE}.13"
H3C_FAN_STATUS = "1.3.6.1.4.1.25506.8.35.9.1.1.1.2"
H3C_PWR_STATUS = "1.3.6.1.4.1.25506.8.35.9.1.2.1.2"

CISCO = ("1.3.6.1.4.1.9",)
CISCO_CPU = "1.3.6.1.4.1.9.9.109.1.1.1.1"
CISCO_CPU_5MIN_REV, CISCO_CPU_5MIN = f"{CISCO_CPU}.8", f"{CISCO_CPU}.5"
CISCO_POOL = "1.3.6.1.4.1.9.9.48.1.1.1"
CISCO_POOL_NAME, CISCO_POOL_USED, CISCO_POOL_FREE = (
    f"{CISCO_POOL}.2",
    f"{CISCO_POOL}.5",
    f"{CISCO_POOL}.6",
)
CISCO_FAN = "1.3.6.1.4.1.9.9.13.1.4.1"
CISCO_FAN_DESCR, CISCO_FAN_STATE = f"{CISCO_FAN}.2", f"{CISCO_FAN}.3"
CISCO_PSU = "1.3.6.1.4.1.9.9.13.1.5.1"
CISCO_PSU_DESCR, CISCO_PSU_STATE = f"{CISCO_PSU}.2", f"{CISCO_PSU}.3"

JUNIPER = ("1.3.6.1.4.1.2636",)
JNX_OPERATING = "1.3.6.1.4.1.2636.3.1.13.1"
JNX_DESCR, JNX_STATE, JNX_TEMP = f"{JNX_OPERATING}.5", f"{JNX_OPERATING}.6", f"{JNX_OPERATING}.7"
JNX_CPU, JNX_BUFFER = f"{JNX_OPERATING}.8", f"{JNX_OPERATING}.11"

MIKROTIK = ("1.3.6.1.4.1.14988",)
MTX_GAUGE = "1.3.6.1.4.1.14988.1.1.3.100.1"
MTX_NAME, MTX_VALUE, MTX_UNIT = f"{MTX_GAUGE}.2", f"{MTX_GAUGE}.3", f"{MTX_GAUGE}.4"
MTX_FIRMWARE = "1.3.6.1.4.1.14988.1.1.4.4.0"

AXIS = ("1.3.6.1.4.1.368",)
AXIS_VIDEO = "1.3.6.1.4.1.368.4.1"
AXIS_PSU_STATUS = f"{AXIS_VIDEO}.1.1.3"
AXIS_FAN_STATUS = f"{AXIS_VIDEO}.2.1.3"
AXIS_TEMP_STATUS, AXIS_TEMP_VALUE = f"{AXIS_VIDEO}.3.1.3", f"{AXIS_VIDEO}.3.1.4"
AXIS_STORAGE_NAME, AXIS_STORAGE_DISRUPTED = f"{AXIS_VIDEO}.8.1.2", f"{AXIS_VIDEO}.8.1.3"

#: "" stands for devices without a system group: the Hikvision camera recording has none.
HIKVISION_CAMERA = ("1.3.6.1.4.1.39165", "")
HIK_CAM_FIRMWARE = "1.3.6.1.4.1.39165.1.3.0"
HIK_CAM_CPU = "1.3.6.1.4.1.39165.1.7.0"
HIK_CAM_MEM_SIZE, HIK_CAM_MEM = "1.3.6.1.4.1.39165.1.10.0", "1.3.6.1.4.1.39165.1.11.0"

HIKVISION_NVR = ("1.3.6.1.4.1.50001",)
HIK_NVR_MEM_SIZE, HIK_NVR_MEM = "1.3.6.1.4.1.50001.1.220.0", "1.3.6.1.4.1.50001.1.221.0"
HIK_DISK = "1.3.6.1.4.1.50001.1.241.1"
HIK_DISK_VOLUME, HIK_DISK_STATUS = f"{HIK_DISK}.2", f"{HIK_DISK}.3"
HIK_DISK_FREE, HIK_DISK_SIZE = f"{HIK_DISK}.4", f"{HIK_DISK}.5"

DAHUA = ("1.3.6.1.4.1.1004849",)
DAHUA_FIRMWARE = "1.3.6.1.4.1.1004849.2.1.1.1.0"
DAHUA_STATUS = "1.3.6.1.4.1.1004849.2.1.2.8.0"
DAHUA_CPU = "1.3.6.1.4.1.1004849.2.1.3.0"

#: Synology DSM answers with the NET-SNMP sysObjectID; its own MIB sits beside it.
SYNOLOGY = ("1.3.6.1.4.1.6574", "1.3.6.1.4.1.8072")
SYNO_STATUS, SYNO_TEMP, SYNO_POWER = (
    "1.3.6.1.4.1.6574.1.1.0",
    "1.3.6.1.4.1.6574.1.2.0",
    "1.3.6.1.4.1.6574.1.3.0",
)
SYNO_SYSTEM_FAN, SYNO_CPU_FAN = "1.3.6.1.4.1.6574.1.4.1.0", "1.3.6.1.4.1.6574.1.4.2.0"
SYNO_VERSION, SYNO_UPGRADE = "1.3.6.1.4.1.6574.1.5.3.0", "1.3.6.1.4.1.6574.1.5.4.0"
SYNO_DISK = "1.3.6.1.4.1.6574.2.1.1"
SYNO_DISK_ID, SYNO_DISK_MODEL = f"{SYNO_DISK}.2", f"{SYNO_DISK}.3"
SYNO_DISK_STATUS, SYNO_DISK_TEMP = f"{SYNO_DISK}.5", f"{SYNO_DISK}.6"
SYNO_RAID = "1.3.6.1.4.1.6574.3.1.1"
SYNO_RAID_NAME, SYNO_RAID_STATUS = f"{SYNO_RAID}.2", f"{SYNO_RAID}.3"

APC = ("1.3.6.1.4.1.318",)
APC_UPS = "1.3.6.1.4.1.318.1.1.1"
APC_FIRMWARE = f"{APC_UPS}.1.2.1.0"
APC_BATTERY_STATUS = f"{APC_UPS}.2.1.1.0"
APC_CAPACITY, APC_BATTERY_TEMP = f"{APC_UPS}.2.2.1.0", f"{APC_UPS}.2.2.2.0"
APC_RUNTIME, APC_REPLACE = f"{APC_UPS}.2.2.3.0", f"{APC_UPS}.2.2.4.0"
APC_HP_CAPACITY, APC_HP_BATTERY_TEMP = f"{APC_UPS}.2.3.1.0", f"{APC_UPS}.2.3.2.0"
APC_INPUT_VOLTAGE, APC_HP_INPUT_VOLTAGE = f"{APC_UPS}.3.2.1.0", f"{APC_UPS}.3.3.1.0"
APC_OUTPUT_STATUS = f"{APC_UPS}.4.1.1.0"
APC_LOAD, APC_HP_LOAD = f"{APC_UPS}.4.2.3.0", f"{APC_UPS}.4.3.3.0"
APC_UIO = "1.3.6.1.4.1.318.1.1.25.1.2.1"
APC_UIO_NAME, APC_UIO_TEMP_C, APC_UIO_HUMIDITY = f"{APC_UIO}.3", f"{APC_UIO}.6", f"{APC_UIO}.7"
APC_UIO_ALARM, APC_UIO_COMM = f"{APC_UIO}.9", f"{APC_UIO}.10"

UPS_MIB = "1.3.6.1.2.1.33.1"
RFC_BATTERY_STATUS, RFC_MINUTES_LEFT = f"{UPS_MIB}.2.1.0", f"{UPS_MIB}.2.3.0"
RFC_CHARGE, RFC_BATTERY_TEMP = f"{UPS_MIB}.2.4.0", f"{UPS_MIB}.2.7.0"
RFC_INPUT_VOLTAGE = f"{UPS_MIB}.3.3.1.3"
RFC_OUTPUT_SOURCE, RFC_OUTPUT_LOAD = f"{UPS_MIB}.4.1.0", f"{UPS_MIB}.4.4.1.5"

# ------------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one collection read from a device, as the parsers see it.

    ``agent_time`` is the agent's wall clock (UTC) half-way through the GET that read the
    scalars, the best estimate of the instant a device clock in those scalars was read.
    """

    scalars: Mapping[str, SnmpValue]
    columns: Mapping[str, Mapping[str, SnmpValue]]
    sys_object_id: str
    agent_time: datetime
    local_zone: tzinfo = UTC

    def get(self, oid: str) -> SnmpValue | None:
        return self.scalars.get(oid)

    def col(self, oid: str) -> Mapping[str, SnmpValue]:
        return self.columns.get(oid, {})


Parser = Callable[[Fetched], list[Observation]]
#: One numeric reading: (item name, value or None if unreadable, raw text, facts).
Reading = tuple[str, float | None, str, dict[str, str]]
#: One component state: (item name, state code, code → word, raw text).
StateRow = tuple[str, int | None, Mapping[int, str], str]


@dataclass(frozen=True, slots=True)
class Source:
    """One way to answer one check from one MIB.

    ``columns`` are walked in order and the first one is the anchor: when it is empty the
    device does not have the table and the other columns are not walked. ``vendors`` are
    sysObjectID prefixes (``""`` matches a device without sysObjectID); ``None`` means any
    device, for standard MIBs.
    """

    check: str
    mib: str
    parse: Parser
    scalars: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    vendors: tuple[str, ...] | None = None

    def applies(self, sys_object_id: str | None) -> bool:
        """Whether to ask this device; ``None`` (not known yet) asks everything."""
        if self.vendors is None or sys_object_id is None:
            return True
        return any(
            sys_object_id == "" if prefix == "" else f"{sys_object_id}.".startswith(f"{prefix}.")
            for prefix in self.vendors
        )


# ----------------------------------------------------------------------------- small helpers


def _name(f: Fetched, index: str, fallback: str) -> str:
    """A component's name from entPhysicalName (same index), else ``fallback``."""
    return clip(text(f.col(ENT_NAME).get(index))) or fallback


def _rows(column: Mapping[str, SnmpValue]) -> list[str]:
    return sorted(column, key=index_key)


def _busiest(
    check: str, mib: str, what: str, readings: Iterable[tuple[str, SnmpValue | None]]
) -> list[Observation]:
    """One percentage for a device with several boards or CPUs: the highest, named."""
    values: list[tuple[float, str]] = []
    for name, raw in readings:
        value = as_percent(raw)
        if value is None:
            return [unknown(check, f"{mib} {what}: unreadable value {text(raw)!r} for {name}")]
        values.append((value, name))
    if not values:
        return []
    value, name = max(values, key=lambda v: v[0])
    facts = {"source": mib, "entity": name}
    if len(values) > 1:
        facts["all"] = clip(", ".join(f"{n}: {v:g}%" for v, n in values), MAX_FACT_LEN)
    where = f" ({name})" if name else ""
    return [Observation(check, round(value, 1), summary=f"{value:g}%{where}", facts=facts)]


def _readings(
    check: str,
    mib: str,
    rows: Iterable[Reading],
    unit: str,
) -> list[Observation]:
    """Per-sensor numeric readings; ``None`` marks a value that could not be read (its raw
    text is the third element)."""
    rows = list(rows)
    items = unique_items({str(i): name for i, (name, _, _, _) in enumerate(rows)})
    out: list[Observation] = []
    for i, (_, value, raw, facts) in enumerate(rows):
        item = items[str(i)]
        if value is None:
            out.append(unknown(check, f"{mib}: unreadable value {raw!r}", item=item))
            continue
        shown = round(value, 1)
        out.append(
            Observation(
                check,
                shown,
                item=item,
                summary=f"{shown:g} {unit}".replace(" %", "%"),
                facts={"source": mib, **facts},
            )
        )
    return out


def _states(check: str, mib: str, rows: Iterable[StateRow]) -> list[Observation]:
    """Per-component states: (name, code, code → normalised word, raw text). An unknown code
    or garbage gives UNKNOWN for that component with the raw value in the reason."""
    rows = list(rows)
    items = unique_items({str(i): row[0] for i, row in enumerate(rows)})
    out: list[Observation] = []
    for i, (_, code, words, raw) in enumerate(rows):
        item = items[str(i)]
        word = words.get(code) if code is not None else None
        if word is None:
            out.append(unknown(check, f"{mib}: unknown state {raw!r}", item=item))
            continue
        facts = {"source": mib, "state_code": str(code)}
        out.append(Observation(check, word, item=item, summary=word, facts=facts))
    return out


def _state_rows(
    f: Fetched, column: str, words: Mapping[int, str], name: Callable[[str], str]
) -> list[StateRow]:
    return [(name(i), as_int(v), words, text(v)) for i, v in sorted(f.col(column).items(), key=_ik)]


def _ik(entry: tuple[str, SnmpValue]) -> tuple[int, ...]:
    return index_key(entry[0])


def _scalar_state(
    check: str, mib: str, f: Fetched, items: Iterable[tuple[str, str]], words: Mapping[int, str]
) -> list[Observation]:
    """States held in scalars, one component per (item, oid); absent scalars are skipped."""
    rows = [
        (item, as_int(f.get(oid)), words, text(f.get(oid)))
        for item, oid in items
        if f.get(oid) is not None
    ]
    return _states(check, mib, rows)


def _single_state(
    check: str, mib: str, raw: SnmpValue | None, words: Mapping[int, str]
) -> list[Observation]:
    """A single-valued check (no item) from one state scalar."""
    if raw is None:
        return []
    code = as_int(raw)
    word = words.get(code) if code is not None else None
    if word is None:
        return [unknown(check, f"{mib}: unknown state {text(raw)!r}")]
    return [Observation(check, word, summary=word, facts={"source": mib, "state_code": str(code)})]


def _scaled(raw: SnmpValue | None, divisor: float) -> float | None:
    number = as_number(raw)
    return None if number is None else number / divisor


def _single_number(
    check: str, mib: str, raw: SnmpValue | None, value: float | None, unit: str, *, lo: float
) -> list[Observation]:
    """A single-valued numeric check; ``value`` is ``raw`` already scaled; below ``lo`` (a
    sentinel such as -1) it is no reading."""
    if raw is None:
        return []
    if value is None or value < lo:
        return [unknown(check, f"{mib}: unreadable value {text(raw)!r}")]
    shown = f"{value:g}{unit}" if unit in ("%", "s") else f"{value:g} {unit}"
    return [Observation(check, round(value, 1), summary=shown, facts={"source": mib})]


def _temperature(raw: SnmpValue | None, divisor: float = 1.0) -> float | None:
    """A plausible temperature in °C, or ``None`` (sentinels such as 65535 or 0x7FFFFFFF)."""
    value = _scaled(raw, divisor)
    return value if value is not None and -60 <= value <= 200 else None


# -------------------------------------------------------------------------------- CPU / memory


def _huawei_usage(check: str, value_col: str, limit_col: str, what: str) -> Parser:
    """hwEntityStateTable: every entity has a row; the boards with a CPU/memory are those with
    a usage threshold set (the others read 0 with threshold 0)."""

    def parse(f: Fetched) -> list[Observation]:
        values, limits = f.col(value_col), f.col(limit_col)
        rows = [i for i in _rows(values) if (as_int(limits.get(i)) or 0) > 0] or [
            i for i in _rows(values) if (as_int(values[i]) or 0) > 0
        ]
        return _busiest(
            check,
            "HUAWEI-ENTITY-EXTENT-MIB",
            what,
            ((_name(f, i, f"entity {i}"), values[i]) for i in rows),
        )

    return parse


def _h3c_usage(check: str, value_col: str, what: str) -> Parser:
    """hh3cEntityExtStateTable: entities without a CPU/memory read 0."""

    def parse(f: Fetched) -> list[Observation]:
        values = f.col(value_col)
        rows = [i for i in _rows(values) if as_int(values[i]) != 0]
        return _busiest(
            check,
            "HH3C-ENTITY-EXT-MIB",
            what,
            ((_name(f, i, f"entity {i}"), values[i]) for i in rows),
        )

    return parse


def _cisco_cpu(column: str, what: str) -> Parser:
    """cpmCPUTotalTable, 5-minute average: one row per CPU (stack members, supervisors)."""

    def parse(f: Fetched) -> list[Observation]:
        values = f.col(column)
        return _busiest(
            CPU,
            "CISCO-PROCESS-MIB",
            what,
            ((f"CPU {i}" if len(values) > 1 else "", values[i]) for i in _rows(values)),
        )

    return parse


def _cisco_memory(f: Fetched) -> list[Observation]:
    """Processor memory pool (index 1 by CISCO-MEMORY-POOL-MIB's pool types), else the
    fullest pool; used / (used + free)."""
    used, free, names = f.col(CISCO_POOL_USED), f.col(CISCO_POOL_FREE), f.col(CISCO_POOL_NAME)
    pools: list[tuple[float, str]] = []
    for index in _rows(used):
        u, fr = as_int(used[index]), as_int(free.get(index))
        name = clip(text(names.get(index))) or f"pool {index}"
        if u is None or fr is None or u < 0 or fr < 0:
            raw = text(used[index]), text(free.get(index))
            return [unknown(MEM, f"CISCO-MEMORY-POOL-MIB: unreadable pool {name}: {raw}")]
        if u + fr > 0:
            pools.append((100 * u / (u + fr), name))
    if not pools:
        return []
    main = next((p for p in pools if p[1].lower() == "processor"), None) or max(pools)
    facts = {
        "source": "CISCO-MEMORY-POOL-MIB",
        "pool": main[1],
        "all": clip(", ".join(f"{n}: {v:.1f}%" for v, n in pools), MAX_FACT_LEN),
    }
    return [Observation(MEM, round(main[0], 1), summary=f"{main[0]:.1f}% ({main[1]})", facts=facts)]


def _juniper_usage(check: str, column: str, what: str) -> Parser:
    """jnxOperatingTable: CPU and buffer memory of the Routing Engines (contents index 9),
    else of any component that reports a non-zero value."""

    def parse(f: Fetched) -> list[Observation]:
        values, descrs = f.col(column), f.col(JNX_DESCR)
        rows = [i for i in _rows(values) if i.split(".")[0] == "9"] or [
            i for i in _rows(values) if as_int(values[i]) != 0
        ]
        return _busiest(
            check,
            "JUNIPER-MIB",
            what,
            ((clip(text(descrs.get(i))) or f"component {i}", values[i]) for i in rows),
        )

    return parse


def _scalar_percent(check: str, mib: str, oid: str, size_oid: str | None = None) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        raw = f.get(oid)
        if raw is None:
            return []
        value = as_percent(raw)
        if value is None:
            return [unknown(check, f"{mib}: unreadable value {text(raw)!r}")]
        facts = {"source": mib, "raw": clip(text(raw))}
        if size_oid and f.get(size_oid) is not None:
            facts["size"] = clip(text(f.get(size_oid)))
        return [Observation(check, round(value, 1), summary=f"{value:g}%", facts=facts)]

    return parse


def _hr_cpu(f: Fetched) -> list[Observation]:
    loads = f.col(HR_PROCESSOR_LOAD)
    values = [as_percent(v) for v in loads.values()]
    if not values:
        return []
    if any(v is None for v in values):
        bad = next(text(v) for v in loads.values() if as_percent(v) is None)
        return [unknown(CPU, f"HOST-RESOURCES-MIB hrProcessorLoad: unreadable value {bad!r}")]
    numbers = [v for v in values if v is not None]
    average = sum(numbers) / len(numbers)
    facts = {"source": "HOST-RESOURCES-MIB", "processors": str(len(numbers))}
    plural = "s" if len(numbers) > 1 else ""
    summary = f"{average:.1f}% (average of {len(numbers)} processor{plural})"
    return [Observation(CPU, round(average, 1), summary=summary, facts=facts)]


def _hr_type(raw: SnmpValue | None, base: str) -> int | None:
    """The last arc of an hrStorageType/hrDeviceType OID under ``base``."""
    oid = text(raw).lstrip(".")
    if not oid.startswith(base + "."):
        return None
    return as_int(oid[len(base) + 1 :])


HR_RAM, HR_FIXED_DISK, HR_OTHER = 2, 4, 1


@dataclass(frozen=True, slots=True)
class _Storage:
    index: str
    kind: int | None
    descr: str
    size: int | None
    used: int | None
    units: int | None


def _storages(f: Fetched) -> list[_Storage]:
    types, descrs = f.col(HR_ST_TYPE), f.col(HR_ST_DESCR)
    units, sizes, used = f.col(HR_ST_UNITS), f.col(HR_ST_SIZE), f.col(HR_ST_USED)
    return [
        _Storage(
            i,
            _hr_type(types[i], HR_STORAGE_TYPES),
            text(descrs.get(i)),
            as_int(sizes.get(i)),
            as_int(used.get(i)),
            as_int(units.get(i)),
        )
        for i in _rows(types)
    ]


def _hr_memory(f: Fetched) -> list[Observation]:
    """Physical memory from hrStorage. net-snmp counts buffers and page cache as used; it lists
    them as separate rows ("Memory buffers", "Cached memory"), which are taken off again so the
    figure means what an operator means by memory in use."""
    storages = _storages(f)
    ram = [s for s in storages if s.kind == HR_RAM and (s.size or 0) > 0]
    if not ram:
        return []
    physical = [s for s in ram if re.search(r"physical|main memory|real memory", s.descr, re.I)]
    main = (physical or sorted(ram, key=lambda s: s.size or 0, reverse=True))[0]
    if main.size is None or main.used is None or main.used < 0 or main.used > main.size:
        return [unknown(MEM, f"HOST-RESOURCES-MIB hrStorage: unreadable row {main.descr!r}")]
    reclaimable = sum(
        s.used or 0
        for s in storages
        if s.kind == HR_OTHER and s.descr.lower() in ("memory buffers", "cached memory")
    )
    used = max(main.used - reclaimable, 0)
    value = 100 * used / main.size
    facts = {"source": "HOST-RESOURCES-MIB", "storage": clip(main.descr)}
    if reclaimable:
        facts["buffers_cache_excluded"] = str(reclaimable * (main.units or 1))
    summary = f"{value:.1f}% of {_bytes(main.size * (main.units or 1))}"
    return [Observation(MEM, round(value, 1), summary=summary, facts=facts)]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


# --------------------------------------------------------------------------------- disks


#: Mount points that are not a customer's disk space: kernel and runtime file systems,
#: removable and optical media (/media holds mounted ISO images, always 100 % full).
_PSEUDO_MOUNTS = re.compile(r"^(/dev|/run|/sys|/proc|/snap|/media)(/|$)")


def _mount_name(descr: str) -> str:
    """``C:\\ Label:  Serial Number 10f82425`` → ``C:\\``; Junos ``re0:/tmp, mounted on /x``
    → ``/x``; anything else as is."""
    if " mounted on " in descr:
        return descr.rsplit(" mounted on ", 1)[1].strip()
    return descr.split(" Label:", 1)[0].strip()


def _hr_disks(f: Fetched) -> list[Observation]:
    rows: list[Reading] = []
    for s in _storages(f):
        mount = _mount_name(s.descr)
        if s.kind != HR_FIXED_DISK or _PSEUDO_MOUNTS.match(mount) or "/dev/loop" in s.descr:
            continue
        if s.size == 0:
            continue  # empty drive (optical drive without a disc)
        if s.size is None or s.used is None or s.used < 0 or s.used > s.size:
            rows.append((mount, None, f"{s.used}/{s.size}", {}))
            continue
        units = s.units or 1
        facts = {"size": _bytes(s.size * units), "used": _bytes(s.used * units)}
        rows.append((mount, 100 * s.used / s.size, "", facts))
    return _readings(DISK_USAGE, "HOST-RESOURCES-MIB", rows, "%")


def _hikvision_disks(f: Fetched) -> list[Observation]:
    """hikDiskTable: free and capacity in MiB; no used column, so used = capacity − free."""
    free, size, volumes = f.col(HIK_DISK_FREE), f.col(HIK_DISK_SIZE), f.col(HIK_DISK_VOLUME)
    rows: list[Reading] = []
    for index in _rows(free):
        name = clip(text(volumes.get(index))) or f"disk {index}"
        fr, sz = as_int(free[index]), as_int(size.get(index))
        if fr is None or sz is None or sz <= 0 or not 0 <= fr <= sz:
            rows.append((name, None, f"free {text(free[index])} of {text(size.get(index))}", {}))
            continue
        mib = 1024 * 1024
        facts = {"size": _bytes(sz * mib), "free": _bytes(fr * mib)}
        rows.append((name, 100 * (sz - fr) / sz, "", facts))
    return _readings(DISK_USAGE, "HIKVISION-MIB", rows, "%")


SYNO_DISK_STATES = {
    1: "ok",
    2: "initialized",
    3: "not initialized",
    4: "system partition failed",
    5: "crashed",
}


def _synology_disks(f: Fetched) -> list[Observation]:
    statuses, names = f.col(SYNO_DISK_STATUS), f.col(SYNO_DISK_ID)
    models, temps = f.col(SYNO_DISK_MODEL), f.col(SYNO_DISK_TEMP)
    out = _states(
        DISK_STATUS,
        "SYNOLOGY-DISK-MIB",
        _state_rows(f, SYNO_DISK_STATUS, SYNO_DISK_STATES, lambda i: text(names.get(i)) or i),
    )
    # the disk's model and temperature go with its status (one item per disk, not three)
    for obs, index in zip(out, _rows(statuses), strict=True):
        if models.get(index) is not None:
            obs.facts["model"] = clip(text(models[index]))
        temp = _temperature(temps.get(index))
        if temp is not None:
            obs.facts["temperature_c"] = f"{temp:g}"
    return out


HIK_DISK_STATES = {
    0: "ok",
    1: "unformatted",
    2: "failed",
    3: "SMART failed",
    4: "mismatch",
    5: "idle",
    6: "offline",
    10: "repairing",
    11: "formatting",
}


def _hikvision_disk_status(f: Fetched) -> list[Observation]:
    volumes = f.col(HIK_DISK_VOLUME)
    return _states(
        DISK_STATUS,
        "HIKVISION-MIB",
        _state_rows(
            f, HIK_DISK_STATUS, HIK_DISK_STATES, lambda i: text(volumes.get(i)) or f"disk {i}"
        ),
    )


def _axis_storage(f: Fetched) -> list[Observation]:
    names = f.col(AXIS_STORAGE_NAME)
    return _states(
        DISK_STATUS,
        "AXIS-VIDEO-MIB",
        _state_rows(
            f,
            AXIS_STORAGE_DISRUPTED,
            {1: "ok", 2: "disruption detected"},
            lambda i: text(names.get(i)) or f"storage {i}",
        ),
    )


SYNO_RAID_STATES = {
    1: "normal",
    2: "repairing",
    3: "migrating",
    4: "expanding",
    5: "deleting",
    6: "creating",
    7: "syncing",
    8: "parity checking",
    9: "assembling",
    10: "canceling",
    11: "degraded",
    12: "crashed",
    13: "data scrubbing",
    14: "deploying",
    15: "undeploying",
    16: "mounting cache",
    17: "unmounting cache",
    18: "expanding",
    19: "converting",
    20: "migrating",
    21: "unknown",
}


def _synology_raid(f: Fetched) -> list[Observation]:
    names = f.col(SYNO_RAID_NAME)
    return _states(
        RAID,
        "SYNOLOGY-RAID-MIB",
        _state_rows(f, SYNO_RAID_STATUS, SYNO_RAID_STATES, lambda i: text(names.get(i)) or i),
    )


# ------------------------------------------------------------------------ sensors, fans, PSUs


def _huawei_temperatures(f: Fetched) -> list[Observation]:
    """Only entities with a temperature threshold are sensors: Huawei repeats readings."""
    temps, limits = f.col(HW_TEMP), f.col(HW_TEMP_LIMIT)
    rows: list[Reading] = []
    for i in _rows(temps):
        limit = as_int(limits.get(i)) or 0
        if limit <= 0:
            continue
        facts = {"device_threshold_c": str(limit)}
        rows.append((_name(f, i, f"entity {i}"), _temperature(temps[i]), text(temps[i]), facts))
    return _readings(TEMPERATURE, "HUAWEI-ENTITY-EXTENT-MIB", rows, "°C")


def _h3c_temperatures(f: Fetched) -> list[Observation]:
    """Comware repeats the chassis temperature on every entity (ports included); the real
    sensors are the entities with a threshold (65535 means none)."""
    temps, limits = f.col(H3C_TEMP), f.col(H3C_TEMP_LIMIT)
    rows: list[Reading] = []
    for i in _rows(temps):
        limit = as_int(limits.get(i))
        if limit is None or not 0 < limit < 65535:
            continue
        facts = {"device_threshold_c": str(limit)}
        rows.append((_name(f, i, f"entity {i}"), _temperature(temps[i]), text(temps[i]), facts))
    return _readings(TEMPERATURE, "HH3C-ENTITY-EXT-MIB", rows, "°C")


def _juniper_temperatures(f: Fetched) -> list[Observation]:
    temps, descrs = f.col(JNX_TEMP), f.col(JNX_DESCR)
    rows: list[Reading] = [
        (clip(text(descrs.get(i))) or f"component {i}", _temperature(temps[i]), text(temps[i]), {})
        for i in _rows(temps)
        if as_int(temps[i]) != 0
    ]
    return _readings(TEMPERATURE, "JUNIPER-MIB", rows, "°C")


MTX_CELSIUS, MTX_STATUS = 1, 6


def _mikrotik_temperatures(f: Fetched) -> list[Observation]:
    names, values, units = f.col(MTX_NAME), f.col(MTX_VALUE), f.col(MTX_UNIT)
    rows: list[Reading] = [
        (
            clip(text(names.get(i))) or f"gauge {i}",
            _temperature(values.get(i)),
            text(values.get(i)),
            {},
        )
        for i in _rows(units)
        if as_int(units[i]) == MTX_CELSIUS
    ]
    return _readings(TEMPERATURE, "MIKROTIK-MIB", rows, "°C")


def _mikrotik_psus(f: Fetched) -> list[Observation]:
    """Status gauges named psu*: 1 is ok, 0 is failed (RouterOS ``/system health``)."""
    names, values, units = f.col(MTX_NAME), f.col(MTX_VALUE), f.col(MTX_UNIT)
    rows = [
        (text(names.get(i)), as_int(values.get(i)), {1: "ok", 0: "failed"}, text(values.get(i)))
        for i in _rows(units)
        if as_int(units[i]) == MTX_STATUS and text(names.get(i)).lower().startswith("psu")
    ]
    return _states(PSU, "MIKROTIK-MIB", rows)


ENT_SENSOR_CELSIUS, ENT_SENSOR_RPM = 8, 10
ENT_SENSOR_OK = 1


def _sensor_value(f: Fetched, index: str) -> float | None:
    """entPhySensorValue × 10^(3·(scale − 9)) / 10^precision (scale 9 is "units")."""
    value = as_int(f.col(ENT_SENSOR_VALUE).get(index))
    scale = as_int(f.col(ENT_SENSOR_SCALE).get(index))
    precision = as_int(f.col(ENT_SENSOR_PRECISION).get(index)) or 0
    if value is None or scale is None or not 1 <= scale <= 17 or not -8 <= precision <= 9:
        return None
    return value * 10.0 ** (3 * (scale - 9)) / 10.0**precision


def _entity_sensor_temperatures(f: Fetched) -> list[Observation]:
    types, statuses = f.col(ENT_SENSOR_TYPE), f.col(ENT_SENSOR_STATUS)
    rows: list[Reading] = []
    for i in _rows(types):
        if as_int(types[i]) != ENT_SENSOR_CELSIUS:
            continue
        status = as_int(statuses.get(i))
        value = _sensor_value(f, i) if status == ENT_SENSOR_OK else None
        raw = text(f.col(ENT_SENSOR_VALUE).get(i))
        if status != ENT_SENSOR_OK:
            raw = f"sensor status {text(statuses.get(i))}"
        reading = value if value is not None and -60 <= value <= 200 else None
        rows.append((_name(f, i, f"sensor {i}"), reading, raw, {}))
    return _readings(TEMPERATURE, "ENTITY-SENSOR-MIB", rows, "°C")


def _entity_sensor_fans(f: Fetched) -> list[Observation]:
    """Fans as rpm sensors; the sensor's operational status is the fan's state."""
    types, statuses = f.col(ENT_SENSOR_TYPE), f.col(ENT_SENSOR_STATUS)
    fans = [i for i in _rows(types) if as_int(types[i]) == ENT_SENSOR_RPM]
    words = {1: "ok", 2: "unknown", 3: "failed"}
    rows = [
        (_name(f, i, f"fan {i}"), as_int(statuses.get(i)), words, text(statuses.get(i)))
        for i in fans
    ]
    out = _states(FAN, "ENTITY-SENSOR-MIB", rows)
    for obs, index in zip(out, fans, strict=True):
        rpm = _sensor_value(f, index)
        if rpm is not None:
            obs.facts["rpm"] = f"{rpm:g}"
    return out


def _axis_temperatures(f: Fetched) -> list[Observation]:
    """tempSensorTable (index type.id): status ok/failure/outOfBoundary beside the value; the
    camera's own "out of boundary" verdict is kept as CRIT whatever the threshold says."""
    statuses, values = f.col(AXIS_TEMP_STATUS), f.col(AXIS_TEMP_VALUE)
    kinds = {1: "temperature", 2: "housing", 3: "rack", 4: "CPU"}
    rows: list[Reading] = []
    for i in _rows(values):
        kind, _, sensor = i.partition(".")
        name = f"{kinds.get(as_int(kind) or 0, 'sensor')} {sensor or kind}"
        status = as_int(statuses.get(i))
        value = _temperature(values[i]) if status != 2 else None
        raw = text(values[i]) if status != 2 else "sensor failure"
        rows.append((name, value, raw, {"sensor_status": text(statuses.get(i))}))
    out = _readings(TEMPERATURE, "AXIS-VIDEO-MIB", rows, "°C")
    return [
        replace(o, summary=f"{o.summary}; camera reports out of boundary", status=Status.CRIT)
        if o.facts.get("sensor_status") == "3" and o.value is not None
        else o
        for o in out
    ]


HUAWEI_FAN_STATES = {1: "ok", 2: "failed"}
HUAWEI_PSU_STATES = {1: "ok", 2: "failed", 3: "standby", 4: "unknown"}


def _huawei_components(
    check: str, state_col: str, present_col: str, desc_col: str, words: Mapping[int, str], kind: str
) -> Parser:
    """hwFanStatusTable / hwPwrStatusTable, index slot.number; "absent" from the presence
    column wins over the state of an empty slot."""

    def parse(f: Fetched) -> list[Observation]:
        states, present, descs = f.col(state_col), f.col(present_col), f.col(desc_col)
        rows: list[StateRow] = []
        for i in _rows(states):
            name = clip(text(descs.get(i))) or f"{kind} {i.replace('.', '/')}"
            if as_int(present.get(i)) == 2:
                rows.append((name, 0, {0: "absent"}, "absent"))
            else:
                rows.append((name, as_int(states[i]), words, text(states[i])))
        return _states(check, "HUAWEI-ENTITY-EXTENT-MIB", rows)

    return parse


H3C_STATES = {1: "ok", 2: "failed", 3: "absent"}


def _h3c_components(check: str, column: str, kind: str) -> Parser:
    """hh3cDevMFanStatus / hh3cDevMPowerStatus: active, deactive, not-install, unsupport; an
    "unsupport" row says the device cannot tell, so it is left out."""

    def parse(f: Fetched) -> list[Observation]:
        rows = [r for r in _state_rows(f, column, H3C_STATES, lambda i: f"{kind} {i}") if r[1] != 4]
        return _states(check, "HH3C-LswDEVM-MIB", rows)

    return parse


CISCO_ENV_STATES = {
    1: "ok",
    2: "warning",
    3: "critical",
    4: "failed",
    5: "absent",
    6: "failed",
}


def _cisco_components(check: str, state_col: str, descr_col: str, kind: str) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        descrs = f.col(descr_col)
        return _states(
            check,
            "CISCO-ENVMON-MIB",
            _state_rows(
                f, state_col, CISCO_ENV_STATES, lambda i: clip(text(descrs.get(i))) or f"{kind} {i}"
            ),
        )

    return parse


JUNIPER_STATES = {
    1: "unknown",
    2: "ok",
    3: "ok",
    4: "failed",
    5: "warning",
    6: "failed",
    7: "standby",
}


def _juniper_components(check: str, container: str, words: re.Pattern[str]) -> Parser:
    """jnxOperatingTable rows of one kind: by jnxContentsContainerIndex (2 power supplies,
    4 fans) or by description (Junos Evolved lists power modules as "PSM slot N")."""

    def parse(f: Fetched) -> list[Observation]:
        descrs = f.col(JNX_DESCR)
        rows = [
            r
            for i, r in zip(
                _rows(f.col(JNX_STATE)),
                _state_rows(f, JNX_STATE, JUNIPER_STATES, lambda i: clip(text(descrs.get(i))) or i),
                strict=True,
            )
            if i.split(".")[0] == container or words.search(text(descrs.get(i)))
        ]
        return _states(check, "JUNIPER-MIB", rows)

    return parse


AXIS_STATES = {1: "ok", 2: "failed"}


def _axis_components(check: str, column: str, kind: str) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        return _states(
            check,
            "AXIS-VIDEO-MIB",
            _state_rows(f, column, AXIS_STATES, lambda i: f"{kind} {i.replace('.', '/')}"),
        )

    return parse


SYNO_STATES = {1: "ok", 2: "failed"}


# ---------------------------------------------------------------------- device-level status

HR_DEVICE_STATES = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}
HR_PROCESSOR, HR_DISK_STORAGE = 3, 6
_HR_WORST = ("down", "warning", "testing", "unknown", "running")


def _hr_devices(f: Fetched) -> list[Observation]:
    """hrDeviceStatus of processors (one item for all: 24 identical CPUs are one fact) and
    disks. Network interfaces are left out (their state is if.oper_status) and so are
    printers and keyboards, which Windows lists by the dozen with status "unknown"."""
    types, descrs, statuses = f.col(HR_DEV_TYPE), f.col(HR_DEV_DESCR), f.col(HR_DEV_STATUS)
    processors: list[tuple[str, SnmpValue]] = []
    rows: list[StateRow] = []
    for i in _rows(statuses):
        kind = _hr_type(types.get(i), HR_DEVICE_TYPES)
        if kind == HR_PROCESSOR:
            processors.append((i, statuses[i]))
        elif kind == HR_DISK_STORAGE:
            name = clip(text(descrs.get(i))) or f"disk {i}"
            rows.append((name, as_int(statuses[i]), HR_DEVICE_STATES, text(statuses[i])))
    out: list[Observation] = []
    if processors:
        words = [HR_DEVICE_STATES.get(as_int(v) or 0) for _, v in processors]
        if any(w is None for w in words):
            bad = next(text(v) for (_, v), w in zip(processors, words, strict=True) if w is None)
            out.append(
                unknown(DEVICE_STATUS, f"HOST-RESOURCES-MIB: unknown state {bad!r}", "processors")
            )
        else:
            known = [w for w in words if w is not None]
            worst = min(known, key=_HR_WORST.index)
            summary = f"{known.count(worst)} of {len(known)} processors {worst}"
            facts = {"source": "HOST-RESOURCES-MIB", "count": str(len(known))}
            out.append(Observation(DEVICE_STATUS, worst, "processors", summary, facts=facts))
    return out + _states(DEVICE_STATUS, "HOST-RESOURCES-MIB", rows)


# ---------------------------------------------------------------------------------- UPS


APC_OUTPUT_STATES = {
    1: "unknown",
    2: "online",
    3: "on battery",
    4: "smart boost",
    5: "timed sleeping",
    6: "software bypass",
    7: "off",
    8: "rebooting",
    9: "switched bypass",
    10: "hardware failure bypass",
    11: "sleeping until power return",
    12: "smart trim",
    13: "eco mode",
    14: "hot standby",
    15: "battery test",
}
RFC_OUTPUT_STATES = {
    1: "other",
    2: "off",
    3: "online",
    4: "bypass",
    5: "on battery",
    6: "smart boost",
    7: "smart trim",
}
APC_BATTERY_STATES = {1: "unknown", 2: "normal", 3: "low", 4: "fault", 5: "no battery"}
RFC_BATTERY_STATES = {1: "unknown", 2: "normal", 3: "low", 4: "depleted"}


def _on_battery(mib: str, oid: str, battery_codes: set[int]) -> Parser:
    """Mains lost: output fed by the battery (a battery self-test does not count)."""

    def parse(f: Fetched) -> list[Observation]:
        raw = f.get(oid)
        if raw is None:
            return []
        code = as_int(raw)
        if code is None:
            return [unknown(UPS_ON_BATTERY, f"{mib}: unreadable value {text(raw)!r}")]
        value = "yes" if code in battery_codes else "no"
        summary = "running on battery: mains lost" if value == "yes" else "on mains"
        facts = {"source": mib, "state_code": str(code)}
        return [Observation(UPS_ON_BATTERY, value, summary=summary, facts=facts)]

    return parse


def _ups_number(check: str, mib: str, oid: str, divisor: float, unit: str) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        raw = f.get(oid)
        return _single_number(check, mib, raw, _scaled(raw, divisor), unit, lo=0)

    return parse


def _ups_runtime(mib: str, oid: str, seconds_per_unit: float) -> Parser:
    """Runtime left on battery in seconds (the threshold's unit), shown in minutes."""

    def parse(f: Fetched) -> list[Observation]:
        raw = f.get(oid)
        value = _scaled(raw, 1 / seconds_per_unit)
        found = _single_number(UPS_RUNTIME, mib, raw, value, "s", lo=0)
        if found and found[0].status is None and value is not None:
            return [replace(found[0], summary=f"{value / 60:.1f} min")]
        return found

    return parse


def _apc_replace(f: Fetched) -> list[Observation]:
    return _single_state(UPS_REPLACE, "PowerNet-MIB", f.get(APC_REPLACE), {1: "no", 2: "yes"})


def _rfc_lines(check: str, column: str, unit: str, pick: Callable[[list[float]], float]) -> Parser:
    """UPS-MIB per-line tables (input voltage, output load): one figure for the device."""

    def parse(f: Fetched) -> list[Observation]:
        values = f.col(column)
        numbers = [as_number(v) for v in values.values()]
        if not numbers:
            return []
        if any(n is None or n < 0 for n in numbers):
            bad = next(text(v) for v in values.values() if (as_number(v) or -1) < 0)
            return [unknown(check, f"UPS-MIB: unreadable value {bad!r}")]
        value = pick([n for n in numbers if n is not None])
        facts = {"source": "UPS-MIB", "lines": str(len(numbers))}
        shown = f"{value:g}{unit}" if unit == "%" else f"{value:g} {unit}"
        return [Observation(check, round(value, 1), summary=shown, facts=facts)]

    return parse


def _ups_temperature(mib: str, oid: str, divisor: float) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        raw = f.get(oid)
        if raw is None:
            return []
        return _readings(
            TEMPERATURE, mib, [("battery", _temperature(raw, divisor), text(raw), {})], "°C"
        )

    return parse


def _apc_environment(check: str, column: str, unit: str) -> Parser:
    """universalInputOutput sensors of the management card; -1 means "no such probe" (a
    temperature-only probe has humidity -1), a lost probe is UNKNOWN."""

    def parse(f: Fetched) -> list[Observation]:
        values, names = f.col(column), f.col(APC_UIO_NAME)
        comms, alarms = f.col(APC_UIO_COMM), f.col(APC_UIO_ALARM)
        rows: list[Reading] = []
        for i in _rows(values):
            value = as_number(values[i])
            if value == -1:
                continue
            name = clip(text(names.get(i))) or f"probe {i}"
            facts = {"alarm_status": text(alarms.get(i))}
            if as_int(comms.get(i)) not in (None, 2):
                rows.append((name, None, f"probe communication status {text(comms.get(i))}", facts))
                continue
            ok = value is not None and (-60 <= value <= 200 if unit == "°C" else 0 <= value <= 100)
            rows.append((name, value if ok else None, text(values[i]), facts))
        return _readings(check, "PowerNet-MIB", rows, unit)

    return parse


# ------------------------------------------------------------------------ firmware and clock


def entity_facts(
    classes: Mapping[str, SnmpValue], columns: Mapping[str, Mapping[str, SnmpValue]]
) -> dict[str, str]:
    """Serial, model, firmware and hardware of the device's main entity (ENTITY-MIB).

    The main entity is the chassis with a serial number, else the first entity with one,
    else the first chassis; blanks it leaves are filled from entities sharing its serial
    (fixed-configuration switches often list the main board under the same serial).
    """
    values = {
        fact: {i: clip(text(v)) for i, v in columns.get(oid, {}).items()}
        for fact, oid in ENT_COLUMNS.items()
    }
    indexes = sorted(set(classes).union(*values.values()), key=index_key)
    serial = values["serial"]
    chassis = [i for i in indexes if as_int(classes.get(i)) == ENT_CHASSIS]
    pick = next((i for i in chassis if serial.get(i)), None)
    if pick is None:
        pick = next((i for i in indexes if serial.get(i)), None)
    if pick is None:
        pick = chassis[0] if chassis else None
    if pick is None:
        return {}
    same = [pick] + [
        i for i in indexes if i != pick and serial.get(pick) and serial.get(i) == serial.get(pick)
    ]

    def first(fact: str) -> str:
        return next((v for i in same if (v := values[fact].get(i, ""))), "")

    software, firmware_rev = first("software"), first("firmware_rev")
    found = {
        "serial": serial.get(pick, ""),
        "model": first("model"),
        "firmware": software or firmware_rev,
        "hardware": first("hardware"),
    }
    return {k: v for k, v in found.items() if v}


def _firmware(mib: str, summary: str = "") -> Callable[[str], list[Observation]]:
    def build(version: str) -> list[Observation]:
        if not version:
            return []
        shown = f"{version}{summary}"
        return [Observation(FIRMWARE, clip(version), summary=shown, facts={"source": mib})]

    return build


def _scalar_firmware(mib: str, oid: str) -> Parser:
    def parse(f: Fetched) -> list[Observation]:
        return _firmware(mib)(text(f.get(oid)))

    return parse


def _synology_firmware(f: Fetched) -> list[Observation]:
    """DSM version, and DSM's own upgrade advice: "available" is a level-4 recommendation."""
    version = text(f.get(SYNO_VERSION))
    if not version:
        return []
    upgrade = as_int(f.get(SYNO_UPGRADE))
    facts = {"source": "SYNOLOGY-SYSTEM-MIB"}
    if upgrade == 1:
        facts["upgrade_available"] = "yes"
        summary = f"{version}; the device reports an update available: plan the upgrade"
        return [
            Observation(FIRMWARE, clip(version), summary=summary, facts=facts, status=Status.WARN)
        ]
    return [Observation(FIRMWARE, clip(version), summary=version, facts=facts)]


def _entity_firmware(f: Fetched) -> list[Observation]:
    facts = entity_facts(f.col(ENT_CLASS), {oid: f.col(oid) for oid in ENT_COLUMNS.values()})
    return _firmware("ENTITY-MIB")(facts.get("firmware", ""))


#: Versions inside sysDescr: Axis "; AXIS P5676-LE; PTZ Camera; 11.10.61; …", Cisco and VRP
#: "…, Version 12.2(55)SE12, …", Comware "Software Version 5.20.99 Release 2222P08".
_DESCR_VERSIONS = (
    re.compile(r"^;\s*AXIS [^;]*;[^;]*;\s*([^;]+?)\s*;"),
    re.compile(r"\bVersion\s+(\d[\w.()\-]*(?:\s+Release\s+\w+)?)"),
    re.compile(r"\bJUNOS\s+(\S+?),"),
)


def _descr_firmware(f: Fetched) -> list[Observation]:
    descr = " ".join(descr_lines(f.get(SYS_DESCR)))
    for pattern in _DESCR_VERSIONS:
        match = pattern.search(descr)
        if match:
            return _firmware("SNMPv2-MIB sysDescr")(match.group(1))
    return []


def parse_date_and_time(raw: SnmpValue | None, local_zone: tzinfo) -> datetime | None:
    """SNMPv2-TC DateAndTime (8 or 11 octets); without the zone octets the device's zone is
    unknown and ``local_zone`` is assumed. ``None`` for anything malformed."""
    if not isinstance(raw, bytes) or len(raw) not in (8, 11):
        return None
    year = int.from_bytes(raw[0:2], "big")
    month, day, hour, minute, second, deci = raw[2:8]
    zone = local_zone
    if len(raw) == 11:
        sign, hours, minutes = chr(raw[8]), raw[9], raw[10]
        if sign not in "+-" or hours > 14 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if sign == "-" else offset)
    if deci > 9 or second > 60:
        return None
    try:
        return datetime(year, month, day, hour, minute, min(second, 59), deci * 100_000, zone)
    except ValueError:
        return None


def _span(seconds: float) -> str:
    """A human size for a clock error: 3.2 s, 5 min 3 s, 2 d 4 h, 4 y 12 d."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    years, days = divmod(days, 365)
    if years:
        return f"{years} y {days} d"
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def clock_drift(raw: SnmpValue | None, f: Fetched) -> list[Observation]:
    """The device clock against the agent's: value is the absolute error in seconds (the
    threshold is symmetric), facts carry the sign and both timestamps for the record."""
    if raw is None:
        return []
    device = parse_date_and_time(raw, f.local_zone)
    if device is None:
        shown = raw.hex() if isinstance(raw, bytes) else text(raw)
        return [unknown(CLOCK, f"HOST-RESOURCES-MIB hrSystemDate: unreadable value {shown!r}")]
    drift = (device - f.agent_time).total_seconds()
    direction = "ahead of" if drift > 0 else "behind"
    summary = f"device clock {device.isoformat(timespec='seconds')} is {_span(abs(drift))} "
    summary += f"{direction} the agent's"
    facts = {
        "source": "HOST-RESOURCES-MIB",
        "drift_s": f"{drift:+.1f}",
        "device_time": device.isoformat(),
        "agent_time": f.agent_time.isoformat(),
        "device_zone": "sent by the device"
        if device.tzinfo is not f.local_zone
        else "none sent; agent zone assumed",
    }
    return [Observation(CLOCK, round(abs(drift), 1), summary=summary, facts=facts)]


def _clock(f: Fetched) -> list[Observation]:
    return clock_drift(f.get(HR_SYSTEM_DATE), f)


# ----------------------------------------------------------------------------- the registry

_PSU_WORDS = re.compile(r"\b(psm|pem|psu|power)", re.I)
_FAN_WORDS = re.compile(r"\bfan", re.I)

#: Every way of answering each check, in order of preference (vendor MIB before standard MIB,
#: because a vendor's own reading is the one its support desk will ask about).
SOURCES: tuple[Source, ...] = (
    # ---- CPU
    Source(
        CPU,
        "HUAWEI-ENTITY-EXTENT-MIB",
        _huawei_usage(CPU, HW_CPU, HW_CPU_LIMIT, "hwEntityCpuUsage"),
        columns=(HW_CPU, HW_CPU_LIMIT, ENT_NAME),
        vendors=HUAWEI,
    ),
    Source(
        CPU,
        "HH3C-ENTITY-EXT-MIB",
        _h3c_usage(CPU, H3C_CPU, "hh3cEntityExtCpuUsage"),
        columns=(H3C_CPU, ENT_NAME),
        vendors=H3C,
    ),
    Source(
        CPU,
        "CISCO-PROCESS-MIB",
        _cisco_cpu(CISCO_CPU_5MIN_REV, "cpmCPUTotal5minRev"),
        columns=(CISCO_CPU_5MIN_REV,),
        vendors=CISCO,
    ),
    Source(
        CPU,
        "CISCO-PROCESS-MIB",
        _cisco_cpu(CISCO_CPU_5MIN, "cpmCPUTotal5min"),
        columns=(CISCO_CPU_5MIN,),
        vendors=CISCO,
    ),
    Source(
        CPU,
        "JUNIPER-MIB",
        _juniper_usage(CPU, JNX_CPU, "jnxOperatingCPU"),
        columns=(JNX_CPU, JNX_DESCR),
        vendors=JUNIPER,
    ),
    Source(
        CPU,
        "DAHUA-SNMP-MIB",
        _scalar_percent(CPU, "DAHUA-SNMP-MIB", DAHUA_CPU),
        scalars=(DAHUA_CPU,),
        vendors=DAHUA,
    ),
    Source(
        CPU,
        "HIKVISION-MIB",
        _scalar_percent(CPU, "HIKVISION-MIB", HIK_CAM_CPU),
        scalars=(HIK_CAM_CPU,),
        vendors=HIKVISION_CAMERA,
    ),
    Source(CPU, "HOST-RESOURCES-MIB", _hr_cpu, columns=(HR_PROCESSOR_LOAD,)),
    # ---- memory
    Source(
        MEM,
        "HUAWEI-ENTITY-EXTENT-MIB",
        _huawei_usage(MEM, HW_MEM, HW_MEM_LIMIT, "hwEntityMemUsage"),
        columns=(HW_MEM, HW_MEM_LIMIT, ENT_NAME),
        vendors=HUAWEI,
    ),
    Source(
        MEM,
        "HH3C-ENTITY-EXT-MIB",
        _h3c_usage(MEM, H3C_MEM, "hh3cEntityExtMemUsage"),
        columns=(H3C_MEM, ENT_NAME),
        vendors=H3C,
    ),
    Source(
        MEM,
        "CISCO-MEMORY-POOL-MIB",
        _cisco_memory,
        columns=(CISCO_POOL_USED, CISCO_POOL_FREE, CISCO_POOL_NAME),
        vendors=CISCO,
    ),
    Source(
        MEM,
        "JUNIPER-MIB",
        _juniper_usage(MEM, JNX_BUFFER, "jnxOperatingBuffer"),
        columns=(JNX_BUFFER, JNX_DESCR),
        vendors=JUNIPER,
    ),
    Source(
        MEM,
        "HIKVISION-MIB",
        _scalar_percent(MEM, "HIKVISION-MIB", HIK_NVR_MEM, HIK_NVR_MEM_SIZE),
        scalars=(HIK_NVR_MEM, HIK_NVR_MEM_SIZE),
        vendors=HIKVISION_NVR,
    ),
    Source(
        MEM,
        "HIKVISION-MIB",
        _scalar_percent(MEM, "HIKVISION-MIB", HIK_CAM_MEM, HIK_CAM_MEM_SIZE),
        scalars=(HIK_CAM_MEM, HIK_CAM_MEM_SIZE),
        vendors=HIKVISION_CAMERA,
    ),
    Source(
        MEM,
        "HOST-RESOURCES-MIB",
        _hr_memory,
        columns=(HR_ST_TYPE, HR_ST_DESCR, HR_ST_UNITS, HR_ST_SIZE, HR_ST_USED),
    ),
    # ---- temperatures
    Source(
        TEMPERATURE,
        "HUAWEI-ENTITY-EXTENT-MIB",
        _huawei_temperatures,
        columns=(HW_TEMP, HW_TEMP_LIMIT, ENT_NAME),
        vendors=HUAWEI,
    ),
    Source(
        TEMPERATURE,
        "HH3C-ENTITY-EXT-MIB",
        _h3c_temperatures,
        columns=(H3C_TEMP, H3C_TEMP_LIMIT, ENT_NAME),
        vendors=H3C,
    ),
    Source(
        TEMPERATURE,
        "JUNIPER-MIB",
        _juniper_temperatures,
        columns=(JNX_TEMP, JNX_DESCR),
        vendors=JUNIPER,
    ),
    Source(
        TEMPERATURE,
        "MIKROTIK-MIB",
        _mikrotik_temperatures,
        columns=(MTX_UNIT, MTX_NAME, MTX_VALUE),
        vendors=MIKROTIK,
    ),
    Source(
        TEMPERATURE,
        "AXIS-VIDEO-MIB",
        _axis_temperatures,
        columns=(AXIS_TEMP_VALUE, AXIS_TEMP_STATUS),
        vendors=AXIS,
    ),
    Source(
        TEMPERATURE,
        "SYNOLOGY-SYSTEM-MIB",
        lambda f: _synology_temperature(f),
        scalars=(SYNO_TEMP,),
        vendors=SYNOLOGY,
    ),
    Source(
        TEMPERATURE,
        "PowerNet-MIB",
        _ups_temperature("PowerNet-MIB", APC_HP_BATTERY_TEMP, 10),
        scalars=(APC_HP_BATTERY_TEMP,),
        vendors=APC,
    ),
    Source(
        TEMPERATURE,
        "PowerNet-MIB",
        _ups_temperature("PowerNet-MIB", APC_BATTERY_TEMP, 1),
        scalars=(APC_BATTERY_TEMP,),
        vendors=APC,
    ),
    Source(
        TEMPERATURE,
        "ENTITY-SENSOR-MIB",
        _entity_sensor_temperatures,
        columns=(
            ENT_SENSOR_TYPE,
            ENT_SENSOR_SCALE,
            ENT_SENSOR_PRECISION,
            ENT_SENSOR_VALUE,
            ENT_SENSOR_STATUS,
            ENT_NAME,
        ),
    ),
    Source(
        TEMPERATURE,
        "UPS-MIB",
        _ups_temperature("UPS-MIB", RFC_BATTERY_TEMP, 1),
        scalars=(RFC_BATTERY_TEMP,),
    ),
    # ---- fans
    Source(
        FAN,
        "HUAWEI-ENTITY-EXTENT-MIB",
        _huawei_components(
            FAN, HW_FAN_STATE, HW_FAN_PRESENT, HW_FAN_DESC, HUAWEI_FAN_STATES, "fan"
        ),
        columns=(HW_FAN_STATE, HW_FAN_PRESENT, HW_FAN_DESC),
        vendors=HUAWEI,
    ),
    Source(
        FAN,
        "HH3C-LswDEVM-MIB",
        _h3c_components(FAN, H3C_FAN_STATUS, "fan"),
        columns=(H3C_FAN_STATUS,),
        vendors=H3C,
    ),
    Source(
        FAN,
        "CISCO-ENVMON-MIB",
        _cisco_components(FAN, CISCO_FAN_STATE, CISCO_FAN_DESCR, "fan"),
        columns=(CISCO_FAN_STATE, CISCO_FAN_DESCR),
        vendors=CISCO,
    ),
    Source(
        FAN,
        "JUNIPER-MIB",
        _juniper_components(FAN, "4", _FAN_WORDS),
        columns=(JNX_STATE, JNX_DESCR),
        vendors=JUNIPER,
    ),
    Source(
        FAN,
        "AXIS-VIDEO-MIB",
        _axis_components(FAN, AXIS_FAN_STATUS, "fan"),
        columns=(AXIS_FAN_STATUS,),
        vendors=AXIS,
    ),
    Source(
        FAN,
        "SYNOLOGY-SYSTEM-MIB",
        lambda f: _scalar_state(
            FAN,
            "SYNOLOGY-SYSTEM-MIB",
            f,
            (("system fan", SYNO_SYSTEM_FAN), ("CPU fan", SYNO_CPU_FAN)),
            SYNO_STATES,
        ),
        scalars=(SYNO_SYSTEM_FAN, SYNO_CPU_FAN),
        vendors=SYNOLOGY,
    ),
    Source(
        FAN,
        "ENTITY-SENSOR-MIB",
        _entity_sensor_fans,
        columns=(
            ENT_SENSOR_TYPE,
            ENT_SENSOR_STATUS,
            ENT_SENSOR_SCALE,
            ENT_SENSOR_PRECISION,
            ENT_SENSOR_VALUE,
            ENT_NAME,
        ),
    ),
    # ---- power supplies
    Source(
        PSU,
        "HUAWEI-ENTITY-EXTENT-MIB",
        _huawei_components(
            PSU, HW_PWR_STATE, HW_PWR_PRESENT, HW_PWR_DESC, HUAWEI_PSU_STATES, "PSU"
        ),
        columns=(HW_PWR_STATE, HW_PWR_PRESENT, HW_PWR_DESC),
        vendors=HUAWEI,
    ),
    Source(
        PSU,
        "HH3C-LswDEVM-MIB",
        _h3c_components(PSU, H3C_PWR_STATUS, "PSU"),
        columns=(H3C_PWR_STATUS,),
        vendors=H3C,
    ),
    Source(
        PSU,
        "CISCO-ENVMON-MIB",
        _cisco_components(PSU, CISCO_PSU_STATE, CISCO_PSU_DESCR, "PSU"),
        columns=(CISCO_PSU_STATE, CISCO_PSU_DESCR),
        vendors=CISCO,
    ),
    Source(
        PSU,
        "JUNIPER-MIB",
        _juniper_components(PSU, "2", _PSU_WORDS),
        columns=(JNX_STATE, JNX_DESCR),
        vendors=JUNIPER,
    ),
    Source(
        PSU,
        "MIKROTIK-MIB",
        _mikrotik_psus,
        columns=(MTX_UNIT, MTX_NAME, MTX_VALUE),
        vendors=MIKROTIK,
    ),
    Source(
        PSU,
        "AXIS-VIDEO-MIB",
        _axis_components(PSU, AXIS_PSU_STATUS, "PSU"),
        columns=(AXIS_PSU_STATUS,),
        vendors=AXIS,
    ),
    Source(
        PSU,
        "SYNOLOGY-SYSTEM-MIB",
        lambda f: _scalar_state(
            PSU, "SYNOLOGY-SYSTEM-MIB", f, (("power", SYNO_POWER),), SYNO_STATES
        ),
        scalars=(SYNO_POWER,),
        vendors=SYNOLOGY,
    ),
    # ---- device-level status
    Source(
        DEVICE_HEALTH,
        "SYNOLOGY-SYSTEM-MIB",
        lambda f: _single_state(
            DEVICE_HEALTH, "SYNOLOGY-SYSTEM-MIB", f.get(SYNO_STATUS), SYNO_STATES
        ),
        scalars=(SYNO_STATUS,),
        vendors=SYNOLOGY,
    ),
    Source(
        DEVICE_HEALTH,
        "DAHUA-SNMP-MIB",
        lambda f: _single_state(
            DEVICE_HEALTH, "DAHUA-SNMP-MIB", f.get(DAHUA_STATUS), {1: "ok", 0: "failed"}
        ),
        scalars=(DAHUA_STATUS,),
        vendors=DAHUA,
    ),
    Source(
        DEVICE_STATUS,
        "HOST-RESOURCES-MIB",
        _hr_devices,
        columns=(HR_DEV_STATUS, HR_DEV_TYPE, HR_DEV_DESCR),
    ),
    # ---- disks and arrays
    Source(
        DISK_USAGE,
        "HIKVISION-MIB",
        _hikvision_disks,
        columns=(HIK_DISK_FREE, HIK_DISK_SIZE, HIK_DISK_VOLUME),
        vendors=HIKVISION_NVR,
    ),
    Source(
        DISK_USAGE,
        "HOST-RESOURCES-MIB",
        _hr_disks,
        columns=(HR_ST_TYPE, HR_ST_DESCR, HR_ST_UNITS, HR_ST_SIZE, HR_ST_USED),
    ),
    Source(
        DISK_STATUS,
        "SYNOLOGY-DISK-MIB",
        _synology_disks,
        columns=(SYNO_DISK_STATUS, SYNO_DISK_ID, SYNO_DISK_MODEL, SYNO_DISK_TEMP),
        vendors=SYNOLOGY,
    ),
    Source(
        DISK_STATUS,
        "HIKVISION-MIB",
        _hikvision_disk_status,
        columns=(HIK_DISK_STATUS, HIK_DISK_VOLUME),
        vendors=HIKVISION_NVR,
    ),
    Source(
        DISK_STATUS,
        "AXIS-VIDEO-MIB",
        _axis_storage,
        columns=(AXIS_STORAGE_DISRUPTED, AXIS_STORAGE_NAME),
        vendors=AXIS,
    ),
    Source(
        RAID,
        "SYNOLOGY-RAID-MIB",
        _synology_raid,
        columns=(SYNO_RAID_STATUS, SYNO_RAID_NAME),
        vendors=SYNOLOGY,
    ),
    # ---- UPS
    Source(
        UPS_ON_BATTERY,
        "PowerNet-MIB",
        _on_battery("PowerNet-MIB", APC_OUTPUT_STATUS, {3}),
        scalars=(APC_OUTPUT_STATUS,),
        vendors=APC,
    ),
    Source(
        UPS_ON_BATTERY,
        "UPS-MIB",
        _on_battery("UPS-MIB", RFC_OUTPUT_SOURCE, {5}),
        scalars=(RFC_OUTPUT_SOURCE,),
    ),
    Source(
        UPS_OUTPUT,
        "PowerNet-MIB",
        lambda f: _single_state(
            UPS_OUTPUT, "PowerNet-MIB", f.get(APC_OUTPUT_STATUS), APC_OUTPUT_STATES
        ),
        scalars=(APC_OUTPUT_STATUS,),
        vendors=APC,
    ),
    Source(
        UPS_OUTPUT,
        "UPS-MIB",
        lambda f: _single_state(UPS_OUTPUT, "UPS-MIB", f.get(RFC_OUTPUT_SOURCE), RFC_OUTPUT_STATES),
        scalars=(RFC_OUTPUT_SOURCE,),
    ),
    Source(
        UPS_BATTERY,
        "PowerNet-MIB",
        lambda f: _single_state(
            UPS_BATTERY, "PowerNet-MIB", f.get(APC_BATTERY_STATUS), APC_BATTERY_STATES
        ),
        scalars=(APC_BATTERY_STATUS,),
        vendors=APC,
    ),
    Source(
        UPS_BATTERY,
        "UPS-MIB",
        lambda f: _single_state(
            UPS_BATTERY, "UPS-MIB", f.get(RFC_BATTERY_STATUS), RFC_BATTERY_STATES
        ),
        scalars=(RFC_BATTERY_STATUS,),
    ),
    Source(
        UPS_CAPACITY,
        "PowerNet-MIB",
        _ups_number(UPS_CAPACITY, "PowerNet-MIB", APC_HP_CAPACITY, 10, "%"),
        scalars=(APC_HP_CAPACITY,),
        vendors=APC,
    ),
    Source(
        UPS_CAPACITY,
        "PowerNet-MIB",
        _ups_number(UPS_CAPACITY, "PowerNet-MIB", APC_CAPACITY, 1, "%"),
        scalars=(APC_CAPACITY,),
        vendors=APC,
    ),
    Source(
        UPS_CAPACITY,
        "UPS-MIB",
        _ups_number(UPS_CAPACITY, "UPS-MIB", RFC_CHARGE, 1, "%"),
        scalars=(RFC_CHARGE,),
    ),
    Source(UPS_REPLACE, "PowerNet-MIB", _apc_replace, scalars=(APC_REPLACE,), vendors=APC),
    Source(
        UPS_RUNTIME,
        "PowerNet-MIB",
        _ups_runtime("PowerNet-MIB", APC_RUNTIME, 0.01),
        scalars=(APC_RUNTIME,),
        vendors=APC,
    ),
    Source(
        UPS_RUNTIME,
        "UPS-MIB",
        _ups_runtime("UPS-MIB", RFC_MINUTES_LEFT, 60),
        scalars=(RFC_MINUTES_LEFT,),
    ),
    Source(
        UPS_LOAD,
        "PowerNet-MIB",
        _ups_number(UPS_LOAD, "PowerNet-MIB", APC_HP_LOAD, 10, "%"),
        scalars=(APC_HP_LOAD,),
        vendors=APC,
    ),
    Source(
        UPS_LOAD,
        "PowerNet-MIB",
        _ups_number(UPS_LOAD, "PowerNet-MIB", APC_LOAD, 1, "%"),
        scalars=(APC_LOAD,),
        vendors=APC,
    ),
    Source(
        UPS_LOAD,
        "UPS-MIB",
        _rfc_lines(UPS_LOAD, RFC_OUTPUT_LOAD, "%", max),
        columns=(RFC_OUTPUT_LOAD,),
    ),
    Source(
        UPS_INPUT_VOLTAGE,
        "PowerNet-MIB",
        _ups_number(UPS_INPUT_VOLTAGE, "PowerNet-MIB", APC_HP_INPUT_VOLTAGE, 10, "V"),
        scalars=(APC_HP_INPUT_VOLTAGE,),
        vendors=APC,
    ),
    Source(
        UPS_INPUT_VOLTAGE,
        "PowerNet-MIB",
        _ups_number(UPS_INPUT_VOLTAGE, "PowerNet-MIB", APC_INPUT_VOLTAGE, 1, "V"),
        scalars=(APC_INPUT_VOLTAGE,),
        vendors=APC,
    ),
    Source(
        UPS_INPUT_VOLTAGE,
        "UPS-MIB",
        _rfc_lines(UPS_INPUT_VOLTAGE, RFC_INPUT_VOLTAGE, "V", min),
        columns=(RFC_INPUT_VOLTAGE,),
    ),
    Source(
        ENV_TEMPERATURE,
        "PowerNet-MIB",
        _apc_environment(ENV_TEMPERATURE, APC_UIO_TEMP_C, "°C"),
        columns=(APC_UIO_TEMP_C, APC_UIO_NAME, APC_UIO_COMM, APC_UIO_ALARM),
        vendors=APC,
    ),
    Source(
        ENV_HUMIDITY,
        "PowerNet-MIB",
        _apc_environment(ENV_HUMIDITY, APC_UIO_HUMIDITY, "%"),
        columns=(APC_UIO_HUMIDITY, APC_UIO_NAME, APC_UIO_COMM, APC_UIO_ALARM),
        vendors=APC,
    ),
    # ---- firmware and clock
    Source(
        FIRMWARE,
        "SYNOLOGY-SYSTEM-MIB",
        _synology_firmware,
        scalars=(SYNO_VERSION, SYNO_UPGRADE),
        vendors=SYNOLOGY,
    ),
    Source(
        FIRMWARE,
        "HIKVISION-MIB",
        _scalar_firmware("HIKVISION-MIB", HIK_CAM_FIRMWARE),
        scalars=(HIK_CAM_FIRMWARE,),
        vendors=HIKVISION_CAMERA,
    ),
    Source(
        FIRMWARE,
        "DAHUA-SNMP-MIB",
        _scalar_firmware("DAHUA-SNMP-MIB", DAHUA_FIRMWARE),
        scalars=(DAHUA_FIRMWARE,),
        vendors=DAHUA,
    ),
    Source(
        FIRMWARE,
        "PowerNet-MIB",
        _scalar_firmware("PowerNet-MIB", APC_FIRMWARE),
        scalars=(APC_FIRMWARE,),
        vendors=APC,
    ),
    Source(
        FIRMWARE,
        "MIKROTIK-MIB",
        _scalar_firmware("MIKROTIK-MIB", MTX_FIRMWARE),
        scalars=(MTX_FIRMWARE,),
        vendors=MIKROTIK,
    ),
    Source(FIRMWARE, "ENTITY-MIB", _entity_firmware, columns=(ENT_CLASS, *ENT_COLUMNS.values())),
    Source(FIRMWARE, "SNMPv2-MIB", _descr_firmware, scalars=(SYS_DESCR,)),
    Source(CLOCK, "HOST-RESOURCES-MIB", _clock, scalars=(HR_SYSTEM_DATE,)),
)


def _synology_temperature(f: Fetched) -> list[Observation]:
    raw = f.get(SYNO_TEMP)
    if raw is None:
        return []
    rows: list[Reading] = [("system", _temperature(raw), text(raw), {})]
    return _readings(TEMPERATURE, "SYNOLOGY-SYSTEM-MIB", rows, "°C")


#: The catalogue ids this module measures.
CHECKS = frozenset(s.check for s in SOURCES)


def sources_for(check: str, sys_object_id: str | None) -> list[Source]:
    return [s for s in SOURCES if s.check == check and s.applies(sys_object_id)]


def scalars_for(checks: Iterable[str], sys_object_id: str | None) -> list[str]:
    """Every scalar the due checks may need, for the collection's one GET."""
    wanted = set(checks)
    return list(
        dict.fromkeys(
            oid
            for s in SOURCES
            if s.check in wanted and s.applies(sys_object_id)
            for oid in s.scalars
        )
    )
