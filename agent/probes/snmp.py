"""SNMP probe: reachability, uptime, interface states and inventory of SNMP-managed devices.

One collection costs one GET for every scalar it needs (system group, plus vendor identity OIDs
when inventory is due) and one walk per table column, never one request per check. That GET
doubles as the reachability test: if the device does not answer it, every other check reports
UNKNOWN with the same reason at once instead of waiting for its own timeout.

Interfaces follow the "seen up" rule: an access-switch port that has never been up is an unused
port, not an outage, so it reports "not monitored"; once a port has been seen up, losing it is
an alarm. The memory of ports seen up lives in a dict the caller owns (and persists).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass

from agent.config import SnmpConfig, TargetConfig
from agent.probes.base import Observation, unknown
from agent.snmp_client import (
    SnmpClient,
    SnmpClientError,
    SnmpFailure,
    SnmpUnreachable,
    SnmpValue,
)

REACHABLE = "snmp.reachable"
UPTIME = "snmp.uptime"
IF_OPER = "if.oper_status"
INV_SYSTEM = "inventory.system"
INV_ENTITY = "inventory.entity"
#: The catalogue ids (checks/catalogue/snmp-device.toml) this probe measures.
SUPPORTED = frozenset({REACHABLE, UPTIME, IF_OPER, INV_SYSTEM, INV_ENTITY})

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SYSTEM_OIDS = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME, SYS_LOCATION)

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"

#: IF-MIB ifOperStatus / ifAdminStatus values.
OPER_STATES = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
ADMIN_UP, ADMIN_DOWN = 1, 2
OPER_UP = 1

ENT_PHYSICAL = "1.3.6.1.2.1.47.1.1.1.1"
ENT_CLASS = f"{ENT_PHYSICAL}.5"
ENT_CHASSIS = 3
#: entPhysicalTable columns fetched for inventory, by the fact name they feed.
ENT_COLUMNS = {
    "hardware": f"{ENT_PHYSICAL}.8",
    "firmware_rev": f"{ENT_PHYSICAL}.9",
    "software": f"{ENT_PHYSICAL}.10",
    "serial": f"{ENT_PHYSICAL}.11",
    "model": f"{ENT_PHYSICAL}.13",
}


@dataclass(frozen=True, slots=True)
class VendorOid:
    """A vendor MIB scalar that identifies devices without ENTITY-MIB (cameras, NVRs, UPS)."""

    oid: str
    fact: str
    source: str


#: Checked against the recordings in shared/fixtures/snmprec (see SOURCES.md there).
VENDOR_INVENTORY = (
    VendorOid("1.3.6.1.4.1.39165.1.1.0", "model", "HIKVISION-MIB"),
    VendorOid("1.3.6.1.4.1.39165.1.3.0", "firmware", "HIKVISION-MIB"),
    VendorOid("1.3.6.1.4.1.50001.1.3.0", "serial", "HIKVISION-NVR"),
    VendorOid("1.3.6.1.4.1.1004849.2.1.2.4.0", "serial", "DAHUA-SNMP-MIB"),
    VendorOid("1.3.6.1.4.1.1004849.2.1.2.6.0", "model", "DAHUA-SNMP-MIB"),
    VendorOid("1.3.6.1.4.1.1004849.2.1.1.1.0", "firmware", "DAHUA-SNMP-MIB"),
    VendorOid("1.3.6.1.4.1.318.1.1.1.1.1.1.0", "model", "PowerNet-MIB"),
    VendorOid("1.3.6.1.4.1.318.1.1.1.1.2.3.0", "serial", "PowerNet-MIB"),
    VendorOid("1.3.6.1.4.1.318.1.1.1.1.2.1.0", "firmware", "PowerNet-MIB"),
    VendorOid("1.3.6.1.4.1.6574.1.5.1.0", "model", "SYNOLOGY-SYSTEM-MIB"),
    VendorOid("1.3.6.1.4.1.6574.1.5.2.0", "serial", "SYNOLOGY-SYSTEM-MIB"),
    VendorOid("1.3.6.1.4.1.6574.1.5.3.0", "firmware", "SYNOLOGY-SYSTEM-MIB"),
    VendorOid("1.3.6.1.4.1.14988.1.1.7.3.0", "serial", "MIKROTIK-MIB"),
    VendorOid("1.3.6.1.4.1.14988.1.1.7.4.0", "firmware", "MIKROTIK-MIB"),
)

MAX_VALUE_LEN = 200
MAX_FACT_LEN = 1000


def text(value: SnmpValue | None) -> str:
    """A display string for any SNMP value: octet strings are decoded as UTF-8 (undecodable
    bytes replaced, not fatal), NULs dropped and surrounding whitespace trimmed."""
    if value is None:
        return ""
    raw = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return raw.replace("\x00", "").strip()


def descr_lines(value: SnmpValue | None) -> list[str]:
    """sysDescr as readable lines: some agents store it with CR/LF and wrapping quotes."""
    body = text(value)
    if len(body) >= 2 and body[0] == body[-1] == '"':
        body = body[1:-1]
    lines = (" ".join(line.split()) for line in body.splitlines())
    return [line for line in lines if line]


def _int(value: SnmpValue | None) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(text(value))
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {int(seconds) % 60}s"


def _column(rows: list[tuple[str, SnmpValue]], column: str) -> dict[str, SnmpValue]:
    """Walk result of one table column keyed by row index (the OID suffix)."""
    cut = len(column) + 1
    return {oid[cut:]: value for oid, value in rows}


def _index_key(index: str) -> tuple[int, ...]:
    return tuple(int(p) for p in index.split(".") if p.isdigit())


def interface_items(indexes: list[str], names: dict[str, str]) -> dict[str, str]:
    """Item name per ifIndex: the interface name, ``ifIndex N`` when it has none, and
    ``name#N`` when several interfaces share a name (items must be unique per target)."""
    labels = {i: names.get(i) or f"ifIndex {i}" for i in indexes}
    repeated = Counter(labels.values())
    return {i: f"{labels[i]}#{i}" if repeated[labels[i]] > 1 else labels[i] for i in indexes}


class _Poll:
    """One collection's view of a device: after the first "no answer" every further request
    fails at once with the same reason, so a device that dies mid-collection costs one
    timeout, not one per remaining walk."""

    def __init__(self, client: SnmpClient) -> None:
        self.client = client
        self.dead: SnmpUnreachable | None = None

    async def walk(self, oid: str) -> list[tuple[str, SnmpValue]]:
        if self.dead is not None:
            raise SnmpUnreachable(str(self.dead))
        try:
            return await self.client.walk(oid)
        except SnmpUnreachable as exc:
            self.dead = exc
            raise


class SnmpProbe:
    """The Probe for ``probe = "snmp"`` targets; keeps one :class:`SnmpClient` per target.

    ``seen_up`` maps a target name to the interface items seen up at least once. The dict is
    used as given (not copied) and updated in place, so the caller can persist it.
    """

    def __init__(
        self, seen_up: dict[str, set[str]] | None = None, *, max_concurrency: int = 1
    ) -> None:
        self.seen_up: dict[str, set[str]] = seen_up if seen_up is not None else {}
        self._max_concurrency = max_concurrency
        self._clients: dict[str, tuple[tuple[str, SnmpConfig], SnmpClient]] = {}

    async def close(self) -> None:
        clients = [client for _, client in self._clients.values()]
        self._clients.clear()
        for client in clients:
            await client.close()

    async def _client(self, target: TargetConfig, address: str, config: SnmpConfig) -> SnmpClient:
        """The target's client; rebuilt (and the old one closed) if its address or SNMP
        settings changed, e.g. after a configuration reload."""
        key = (address, config)
        known = self._clients.get(target.name)
        if known is not None:
            if known[0] == key:
                return known[1]
            await known[1].close()
        client = SnmpClient(address, config, max_concurrency=self._max_concurrency)
        self._clients[target.name] = (key, client)
        return client

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        wanted = set(checks)
        if not wanted:
            return []
        out = [unknown(c, "not measured by the SNMP probe") for c in sorted(wanted - SUPPORTED)]
        wanted &= SUPPORTED
        if not wanted:
            return out
        if not target.address or target.snmp is None:
            return out + [unknown(c, "target has no SNMP address") for c in sorted(wanted)]
        try:
            client = await self._client(target, target.address, target.snmp)
        except (ValueError, ImportError) as exc:  # bad v3 settings, SNMP stack missing
            return out + [unknown(c, f"SNMP client: {exc}") for c in sorted(wanted)]

        oids = list(SYSTEM_OIDS)
        if INV_ENTITY in wanted:
            oids += [v.oid for v in VENDOR_INVENTORY]
        started = time.monotonic()
        try:
            scalars = await client.get_many(oids)
        except SnmpClientError as exc:
            return out + self._down(wanted, exc)
        rtt_ms = (time.monotonic() - started) * 1000

        if REACHABLE in wanted:
            out.append(
                Observation(
                    REACHABLE,
                    "up",
                    summary=f"SNMPv{target.snmp.version} answered in {rtt_ms:.0f} ms",
                )
            )
        if UPTIME in wanted:
            out.append(self._uptime(scalars))
        if INV_SYSTEM in wanted:
            out.append(self._system(scalars))

        # Tables one after the other: the device serves one request at a time anyway, and a
        # device that dies now then costs one timeout, after which _Poll fails the rest fast.
        poll = _Poll(client)
        if IF_OPER in wanted:
            out += await self._interfaces(poll, target.name)
        if INV_ENTITY in wanted:
            out += await self._inventory(poll, scalars)
        return out

    # --------------------------------------------------------------------------------- checks

    @staticmethod
    def _down(wanted: set[str], exc: SnmpClientError) -> list[Observation]:
        """Device silent (or refusing us): reachability says so, the rest is UNKNOWN."""
        kind = "no SNMP answer" if isinstance(exc, SnmpUnreachable) else "SNMP error"
        out: list[Observation] = []
        if REACHABLE in wanted:
            out.append(Observation(REACHABLE, "down", summary=f"{kind}: {exc}"))
        reason = f"device not answering SNMP: {exc}"
        out += [unknown(c, reason) for c in sorted(wanted - {REACHABLE})]
        return out

    @staticmethod
    def _uptime(scalars: dict[str, SnmpValue]) -> Observation:
        ticks = scalars.get(SYS_UPTIME)
        if not isinstance(ticks, int) or isinstance(ticks, bool):
            return unknown(UPTIME, "device does not expose sysUpTime")
        seconds = ticks / 100
        return Observation(UPTIME, seconds, summary=f"up {_duration(seconds)}", unit="s")

    @staticmethod
    def _system(scalars: dict[str, SnmpValue]) -> Observation:
        lines = descr_lines(scalars.get(SYS_DESCR))
        facts: dict[str, str] = {}
        if lines:
            facts["sys_descr"] = " ".join(lines)[:MAX_FACT_LEN]
        for key, oid in (
            ("sys_object_id", SYS_OBJECT_ID),
            ("sys_name", SYS_NAME),
            ("sys_location", SYS_LOCATION),
        ):
            value = text(scalars.get(oid))
            if value:
                facts[key] = value.lstrip(".")[:MAX_FACT_LEN]
        if not facts:
            return unknown(INV_SYSTEM, "device exposes no system group (sysDescr, sysName, …)")
        value = lines[0][:MAX_VALUE_LEN] if lines else ""
        summary = value or f"no sysDescr; sysObjectID {facts.get('sys_object_id', '?')}"
        return Observation(INV_SYSTEM, value, summary=summary, facts=facts)

    async def _interfaces(self, poll: _Poll, target: str) -> list[Observation]:
        try:
            oper = _column(await poll.walk(IF_OPER_STATUS), IF_OPER_STATUS)
            if not oper:
                return [unknown(IF_OPER, "device exposes no interfaces (IF-MIB ifTable)")]
            admin = _column(await poll.walk(IF_ADMIN_STATUS), IF_ADMIN_STATUS)
            names = {i: text(v) for i, v in _column(await poll.walk(IF_NAME), IF_NAME).items()}
            if any(not names.get(i) for i in oper):
                descrs = _column(await poll.walk(IF_DESCR), IF_DESCR)
                for index, value in descrs.items():
                    if not names.get(index):
                        names[index] = text(value)
        except SnmpClientError as exc:
            return [unknown(IF_OPER, f"interface table: {exc}")]

        indexes = sorted(oper, key=_index_key)
        items = interface_items(indexes, names)
        seen = self.seen_up.get(target, set())
        out: list[Observation] = []
        for index in indexes:
            item = items[index]
            oper_code = _int(oper[index])
            admin_code = _int(admin.get(index))
            state = OPER_STATES.get(oper_code or 0, f"state {oper[index]!r}")
            facts = {"if_index": index}
            if oper_code == OPER_UP:
                self.seen_up.setdefault(target, set()).add(item)
                value, summary = "up", "up"
            elif admin_code == ADMIN_DOWN:
                value, summary = "admin down", f"administratively down (oper {state})"
            elif item in seen:
                value, summary = state, f"{state}, was up before"
            else:
                value, summary = "not monitored", f"{state}, never seen up"
            out.append(Observation(IF_OPER, value, item=item, summary=summary, facts=facts))
        return out

    async def _inventory(self, poll: _Poll, scalars: dict[str, SnmpValue]) -> list[Observation]:
        facts: dict[str, str] = {}
        sources: list[str] = []
        entity_error: SnmpClientError | None = None
        try:
            facts = await self._entity_facts(poll)
        except SnmpUnreachable as exc:
            return [unknown(INV_ENTITY, f"entity table: {exc}")]
        except SnmpFailure as exc:
            entity_error = exc  # vendor scalars may still identify the device
        if facts:
            sources.append("ENTITY-MIB")
        for vendor in VENDOR_INVENTORY:
            value = text(scalars.get(vendor.oid))[:MAX_VALUE_LEN]
            if value and not facts.get(vendor.fact):
                facts[vendor.fact] = value
                if vendor.source not in sources:
                    sources.append(vendor.source)
        if not facts:
            if entity_error is not None:
                return [unknown(INV_ENTITY, f"entity table: {entity_error}")]
            return [unknown(INV_ENTITY, "no inventory MIB exposed")]
        facts["source"] = ", ".join(sources)
        serial = facts.get("serial", "")
        parts = [facts["model"]] if facts.get("model") else []
        parts.append(f"serial {serial}" if serial else "no serial number exposed")
        if facts.get("firmware"):
            parts.append(f"firmware {facts['firmware']}")
        return [Observation(INV_ENTITY, serial, summary=", ".join(parts), facts=facts)]

    @staticmethod
    async def _entity_facts(poll: _Poll) -> dict[str, str]:
        """Serial, model, firmware and hardware of the device's main entity (ENTITY-MIB).

        The main entity is the chassis with a serial number, else the first entity with one,
        else the first chassis; blanks it leaves are filled from entities sharing its serial
        (fixed-configuration switches often list the main board under the same serial).
        """
        # Every column is walked: some agents leave out columns (ios_c3560 has serial and
        # model but no entPhysicalClass), and on a device without ENTITY-MIB each walk is one
        # short exchange, at the inspection interval only.
        classes = _column(await poll.walk(ENT_CLASS), ENT_CLASS)
        columns: dict[str, dict[str, str]] = {}
        for fact, oid in ENT_COLUMNS.items():
            rows = _column(await poll.walk(oid), oid)
            columns[fact] = {i: text(v)[:MAX_VALUE_LEN] for i, v in rows.items()}
        indexes = sorted(set(classes).union(*columns.values()), key=_index_key)
        serial = columns["serial"]
        chassis = [i for i in indexes if _int(classes.get(i)) == ENT_CHASSIS]
        pick = next((i for i in chassis if serial.get(i)), None)
        if pick is None:
            pick = next((i for i in indexes if serial.get(i)), None)
        if pick is None:
            pick = chassis[0] if chassis else None
        if pick is None:
            return {}
        same = [pick] + [
            i
            for i in indexes
            if i != pick and serial.get(pick) and serial.get(i) == serial.get(pick)
        ]

        def first(fact: str) -> str:
            return next((v for i in same if (v := columns[fact].get(i, ""))), "")

        software, firmware_rev = first("software"), first("firmware_rev")
        found = {
            "serial": serial.get(pick, ""),
            "model": first("model"),
            "firmware": software or firmware_rev,
            "hardware": first("hardware"),
        }
        return {k: v for k, v in found.items() if v}
