"""SNMP probe: everything the maintenance contracts inspect on SNMP-managed devices.

Reachability, uptime, interface states and inventory live here; device health (CPU, memory,
temperatures, fans, power, disks, RAID, UPS, environment probes, firmware, clock) comes from the
vendor-MIB sources of :mod:`agent.probes.snmp_health`, interface rates from
:mod:`agent.probes.snmp_rates`, the default-community security item from
:mod:`agent.probes.snmp_community`.

Requests are merged per device, never one per check: one collection costs one GET for every
scalar the due checks need (system group, vendor identity and health scalars) and one walk per
table column, and only the columns of the due checks are walked. Walks are shared within a
collection (interface names serve if.oper_status and the rates; entPhysicalName serves
temperatures and fans), a vendor's tables are walked only on that vendor's devices (by
sysObjectID), and a table whose first column is empty is not walked further. That GET doubles as
the reachability test: if the device does not answer it, every other check reports UNKNOWN with
the same reason at once instead of waiting for its own timeout. The scalars of vendor MIBs are
chosen by the sysObjectID seen at the previous collection (all candidates at the first one), so
the GET stays small; that matters on SNMPv1, where every OID a device lacks costs one more
single GET (see :meth:`agent.snmp_client.SnmpClient.get_many`).

Interfaces follow the "seen up" rule: an access-switch port that has never been up is an unused
port, not an outage, so it reports "not monitored"; once a port has been seen up, losing it is
an alarm. The memory of ports seen up lives in a dict the caller owns (and persists). Rates
(errors, discards, utilisation) need two counter samples: the first collection after the agent
starts only takes a baseline and reports nothing for them (see :mod:`agent.probes.snmp_rates`).

A value the device garbles, a table it does not have, or a counter that went backwards gives
UNKNOWN with a reason for that item; nothing a device sends raises out of :meth:`collect`.

What that costs, measured against the recordings served by snmpsim on loopback (one GET in
every case): a Huawei S5720 as ``switch`` with every item due takes 27 walks (0.9 s), its
5-minute monitoring items 21, its 60-second items 6 (0.2 s); a Juniper QFX 21/15/5; a Synology
NAS 24/18/9; an APC UPS 15/9/4 (0.05 s for the 60-second items); an Axis camera 16/10/4; a
Windows server 18/12/9. Inventory and firmware (the inspection-only items) are the expensive
part, and they run once a day by default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from agent.config import SnmpConfig, TargetConfig
from agent.probes import snmp_community as community
from agent.probes import snmp_health as health
from agent.probes import snmp_rates as rates
from agent.probes import snmp_usm as usm
from agent.probes.base import Observation, unknown
from agent.probes.snmp_health import ENT_CHASSIS, ENT_CLASS, ENT_COLUMNS, ENT_PHYSICAL
from agent.probes.snmp_values import (
    MAX_FACT_LEN,
    MAX_VALUE_LEN,
    as_int,
    column,
    descr_lines,
    index_key,
    text,
    unique_items,
)
from agent.snmp_client import (
    SnmpClient,
    SnmpClientError,
    SnmpFailure,
    SnmpUnreachable,
    SnmpValue,
)
from checks.status import Status

log = logging.getLogger(__name__)

REACHABLE = "snmp.reachable"
UPTIME = "snmp.uptime"
IF_OPER = "if.oper_status"
INV_SYSTEM = "inventory.system"
INV_ENTITY = "inventory.entity"
#: The catalogue ids this probe measures (snmp-device.toml and the classes built on it).
SUPPORTED = frozenset({REACHABLE, UPTIME, IF_OPER, INV_SYSTEM, INV_ENTITY, community.CHECK}) | (
    health.CHECKS | rates.CHECKS
)

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

__all__ = [
    "ENT_CHASSIS",
    "ENT_CLASS",
    "ENT_COLUMNS",
    "ENT_PHYSICAL",
    "SUPPORTED",
    "SnmpProbe",
    "descr_lines",
    "interface_items",
    "text",
]


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


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {int(seconds) % 60}s"


def interface_items(indexes: list[str], names: dict[str, str]) -> dict[str, str]:
    """Item name per ifIndex: the interface name, ``ifIndex N`` when it has none, and
    ``name#N`` when several interfaces share a name (items must be unique per target)."""
    return unique_items({i: names.get(i) or f"ifIndex {i}" for i in indexes})


class _Poll:
    """One collection's view of a device.

    Walks are cached for the collection (a column several checks need is walked once, and a
    failed walk is not retried by the next check). After the first "no answer" every further
    request fails at once with the same reason, so a device that dies mid-collection costs one
    timeout, not one per remaining walk.
    """

    def __init__(self, client: SnmpClient) -> None:
        self.client = client
        self.dead: SnmpUnreachable | None = None
        self._walked: dict[str, list[tuple[str, SnmpValue]] | SnmpFailure] = {}

    async def walk(self, oid: str) -> list[tuple[str, SnmpValue]]:
        known = self._walked.get(oid)
        if isinstance(known, SnmpFailure):
            raise known
        if known is not None:
            return known
        if self.dead is not None:
            raise SnmpUnreachable(str(self.dead))
        try:
            rows = await self.client.walk(oid)
        except SnmpUnreachable as exc:
            self.dead = exc
            raise
        except SnmpFailure as exc:
            self._walked[oid] = exc
            raise
        self._walked[oid] = rows
        return rows

    async def column(self, oid: str) -> dict[str, SnmpValue]:
        return column(await self.walk(oid), oid)


@dataclass(frozen=True, slots=True)
class _Interfaces:
    """The interface table as one collection read it: item names and states by ifIndex."""

    items: dict[str, str]
    oper: dict[str, SnmpValue]
    admin: dict[str, SnmpValue]

    def up(self) -> dict[str, str]:
        return {i: item for i, item in self.items.items() if as_int(self.oper[i]) == OPER_UP}


def _local_zone() -> tzinfo | None:
    return datetime.now().astimezone().tzinfo


class SnmpProbe:
    """The Probe for ``probe = "snmp"`` targets; keeps one :class:`SnmpClient` per target.

    ``seen_up`` maps a target name to the interface items seen up at least once. The dict is
    used as given (not copied) and updated in place, so the caller can persist it. Counter
    samples for rates and each target's last sysObjectID live in the probe (memory only).
    ``clock`` (monotonic seconds) and ``wall_clock`` (UTC now) can be replaced in tests.
    """

    def __init__(
        self,
        seen_up: dict[str, set[str]] | None = None,
        *,
        max_concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.seen_up: dict[str, set[str]] = seen_up if seen_up is not None else {}
        self.counters = rates.CounterMemory()
        self._max_concurrency = max_concurrency
        self._clock = clock
        self._wall_clock = wall_clock
        self._clients: dict[str, tuple[tuple[str, SnmpConfig], SnmpClient]] = {}
        self._sys_object_ids: dict[str, str] = {}

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
            self._sys_object_ids.pop(target.name, None)  # maybe another device now
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
        oids += health.scalars_for(wanted, self._sys_object_ids.get(target.name))
        started, wall_before = time.monotonic(), self._wall_clock()
        try:
            scalars = await client.get_many(oids)
        except SnmpClientError as exc:
            return out + await self._down(wanted, exc, target.address, target.snmp)
        rtt_ms = (time.monotonic() - started) * 1000
        agent_time = wall_before + (self._wall_clock() - wall_before) / 2
        sys_object_id = text(scalars.get(SYS_OBJECT_ID)).lstrip(".")
        self._sys_object_ids[target.name] = sys_object_id

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
        if wanted & rates.CHECKS:
            uptime = scalars.get(SYS_UPTIME)
            out += await self._rates(poll, target.name, wanted & rates.CHECKS, as_int(uptime))
        if INV_ENTITY in wanted:
            out += await self._inventory(poll, scalars)
        fetched = health.Fetched(scalars, {}, sys_object_id, agent_time, _local_zone() or UTC)
        for check in sorted(wanted & health.CHECKS):
            out += await self._health(poll, check, fetched)
        if community.CHECK in wanted:  # last: a device that died meanwhile makes it UNKNOWN
            out.append(await community.check(target.address, target.snmp, poll.dead))
        return out

    # --------------------------------------------------------------------------------- checks

    @staticmethod
    async def _down(
        wanted: set[str], exc: SnmpClientError, address: str, config: SnmpConfig
    ) -> list[Observation]:
        """Device silent (or refusing us): reachability says so, the rest is UNKNOWN.

        An SNMPv3 device that refuses our credentials is not down: when the device reports
        (or its silence shows) a wrong key or an unknown user (:mod:`agent.probes.snmp_usm`),
        reachability is UNKNOWN with that reason, so nobody is sent to a device that is up.
        """
        problem = await usm.diagnose(address, config) if usm.worth_diagnosing(config, exc) else None
        out: list[Observation] = []
        if problem is not None:
            if REACHABLE in wanted:
                reason = f"{problem.summary} ({exc})"
                out.append(
                    Observation(
                        REACHABLE,
                        None,
                        summary=reason[:MAX_FACT_LEN],
                        facts=problem.facts(),
                        status=Status.UNKNOWN,
                    )
                )
            reason = f"SNMPv3 credentials refused: {problem.summary}"
            return out + [unknown(c, reason) for c in sorted(wanted - {REACHABLE})]
        kind = "no SNMP answer" if isinstance(exc, SnmpUnreachable) else "SNMP error"
        if REACHABLE in wanted:
            out.append(Observation(REACHABLE, "down", summary=f"{kind}: {exc}"))
        reason = f"device not answering SNMP: {exc}"
        out += [unknown(c, reason) for c in sorted(wanted - {REACHABLE})]
        return out

    @staticmethod
    def _uptime(scalars: Mapping[str, SnmpValue]) -> Observation:
        ticks = scalars.get(SYS_UPTIME)
        if not isinstance(ticks, int) or isinstance(ticks, bool):
            return unknown(UPTIME, "device does not expose sysUpTime")
        seconds = ticks / 100
        return Observation(UPTIME, seconds, summary=f"up {_duration(seconds)}", unit="s")

    @staticmethod
    def _system(scalars: Mapping[str, SnmpValue]) -> Observation:
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

    @staticmethod
    async def _interface_table(poll: _Poll, with_admin: bool) -> _Interfaces | None:
        """ifOperStatus, names (ifName, else ifDescr) and, for if.oper_status, ifAdminStatus;
        ``None`` when the device has no ifTable."""
        oper = await poll.column(IF_OPER_STATUS)
        if not oper:
            return None
        admin = await poll.column(IF_ADMIN_STATUS) if with_admin else {}
        names = {i: text(v) for i, v in (await poll.column(IF_NAME)).items()}
        if any(not names.get(i) for i in oper):
            for index, value in (await poll.column(IF_DESCR)).items():
                if not names.get(index):
                    names[index] = text(value)
        items = interface_items(sorted(oper, key=index_key), names)
        return _Interfaces(items, oper, admin)

    async def _interfaces(self, poll: _Poll, target: str) -> list[Observation]:
        try:
            table = await self._interface_table(poll, with_admin=True)
        except SnmpClientError as exc:
            return [unknown(IF_OPER, f"interface table: {exc}")]
        if table is None:
            return [unknown(IF_OPER, "device exposes no interfaces (IF-MIB ifTable)")]
        seen = self.seen_up.get(target, set())
        out: list[Observation] = []
        for index, item in table.items.items():
            oper_code = as_int(table.oper[index])
            admin_code = as_int(table.admin.get(index))
            state = OPER_STATES.get(oper_code or 0, f"state {table.oper[index]!r}")
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

    async def _rates(
        self, poll: _Poll, target: str, checks: set[str], uptime: int | None
    ) -> list[Observation]:
        """Errors, discards and utilisation of the interfaces that are up (two samples)."""
        self.counters.device_restarted(target, uptime)
        try:
            table = await self._interface_table(poll, with_admin=False)
            if table is None:
                reason = "device exposes no interfaces (IF-MIB ifTable)"
                return [unknown(c, reason) for c in sorted(checks)]
            columns = {oid: await poll.column(oid) for oid in rates.columns_for(checks)}
            if rates.UTILISATION in checks and not columns[rates.HC_OCTETS.inbound.oid]:
                for oid in rates.columns_for({rates.UTILISATION}, hc_available=False):
                    columns[oid] = await poll.column(oid)
        except SnmpClientError as exc:
            return [unknown(c, f"interface counters: {exc}") for c in sorted(checks)]
        view = rates.InterfaceView(table.up(), columns)
        at = self._clock()
        out: list[Observation] = []
        for check in sorted(checks - {rates.UTILISATION}):
            out += rates.packet_rates(check, target, view, self.counters, at)
        if rates.UTILISATION in checks:
            out += rates.utilisation(target, view, self.counters, at)
        return out

    async def _inventory(self, poll: _Poll, scalars: Mapping[str, SnmpValue]) -> list[Observation]:
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
        """The main entity's serial, model, firmware and hardware (see
        :func:`agent.probes.snmp_health.entity_facts`)."""
        # Every column is walked: some agents leave out columns (ios_c3560 has serial and
        # model but no entPhysicalClass), and on a device without ENTITY-MIB each walk is one
        # short exchange, at the inspection interval only.
        classes = await poll.column(ENT_CLASS)
        columns = {oid: await poll.column(oid) for oid in ENT_COLUMNS.values()}
        return health.entity_facts(classes, columns)

    async def _health(self, poll: _Poll, check: str, base: health.Fetched) -> list[Observation]:
        """Ask the check's sources in order of preference; the first that finds anything on
        this device answers. Walk failures of one source let the next one try."""
        looked: list[str] = []
        errors: list[str] = []
        for source in health.sources_for(check, base.sys_object_id):
            columns: dict[str, dict[str, SnmpValue]] = {}
            try:
                for oid in source.columns:
                    columns[oid] = await poll.column(oid)
                    if not columns[oid] and oid == source.columns[0]:
                        break  # the anchor column is empty: this device has no such table
            except SnmpUnreachable as exc:
                return [unknown(check, f"{source.mib}: {exc}")]
            except SnmpFailure as exc:
                errors.append(f"{source.mib}: {exc}")
                continue
            if source.columns and not columns[source.columns[0]]:
                looked.append(source.mib)
                continue
            fetched = health.Fetched(
                base.scalars, columns, base.sys_object_id, base.agent_time, base.local_zone
            )
            try:
                found = source.parse(fetched)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
                # A device answer no parser foresaw: that item is UNKNOWN, the rest goes on.
                log.warning("%s: %s answer not understood", check, source.mib, exc_info=True)
                return [unknown(check, f"{source.mib}: answer not understood: {exc!r}")]
            if found:
                return found
            looked.append(source.mib)
        if errors:
            return [unknown(check, "; ".join(errors)[:MAX_FACT_LEN])]
        if not looked:
            return [unknown(check, "no MIB fieldmon knows exposes this on this kind of device")]
        mibs = ", ".join(dict.fromkeys(looked))
        return [unknown(check, f"not exposed by the device (looked in {mibs})")]
