"""SNMP trap and inform receiver: a device's own alarm becomes a result within seconds.

Polling notices a dead port or a UPS on battery at the next poll, up to a minute later; the
device knows at once and says so with a notification. The receiver turns each notification
into a :class:`~checks.result.Result` on the target whose ``address`` sent it and hands it to
the same sink the scheduler uses, so it is in the outbox (and on its way to the collector)
before the next poll would even have started.

What is understood without configuration (trap OID → catalogue item of ``snmp-device``):

* linkDown / linkUp (``1.3.6.1.6.3.1.1.5.3`` / ``.4``) → ``trap.link``, one item per interface,
  named like the poller names it: ifName, else ifDescr (from the varbinds), else ``ifIndex N``.
  Values ``down`` / ``up`` / ``admin down``; the catalogue threshold turns them into a status,
  so a target may override it (``otherwise = "WARN"`` for access ports with PCs behind them).
* coldStart / warmStart (``.5.1`` / ``.5.2``) → ``trap.reboot``, CRIT.
* authenticationFailure (``.5.5``) → ``trap.auth_failure``, CRIT: someone is guessing
  communities or credentials on the device. Except when this agent itself sent that address
  a community it is not configured with within the last minute (the daily
  ``sec.snmp_default_community`` probe, see :class:`agent.probes.snmp_community.OwnProbes`):
  then the trap is the device's answer to our own probe, and it is only counted
  (``own_probe``) and logged at debug level.
* UPS on battery / power restored → ``trap.power`` (``on battery`` / ``mains``): APC PowerNet
  ``1.3.6.1.4.1.318.0.5`` / ``.0.9``; RFC 1628 ``upsTrapOnBattery`` and
  ``upsTrapAlarmEntryAdded`` / ``Removed`` carrying ``upsAlarmOnBattery`` (both the
  ``upsTraps.N`` and the SMIv1-converted ``upsTraps.0.N`` forms).

Restart and authentication-failure events have no "all clear" notification: their incidents
are closed by a person. Link and power incidents resolve with the matching up/restored trap.

* Dahua cameras and NVRs (DAHUA-SNMP-MIB, enterprise 1004849, Dahua's own file of 2014 as
  LibreNMS ships it in ``mibs/dahua/DAHUA-SNMP-MIB``): videoLossEvent → ``trap.video_loss``,
  videoBlindEvent → ``trap.video_tamper`` (per channel), storageFailureEvent and
  storageSMARTAbnormityEvent → ``trap.disk`` (per disk). Each carries ``action``, a
  DisplayString the MIB only calls "trap info"; public integrations read it as ``Start`` /
  ``Stop``, so ``Stop`` (any case) clears the alarm and anything else raises it, with any other
  text shown in the summary (no Dahua device was at hand to confirm the values). Motion
  detection and alarm inputs (videoMotionEvent, localAlarmEvent) are site security events, not
  maintenance faults, and storageLowSpaceEvent, storageInOutEvent and the record events do not
  say which way they go; they stay unmapped (counted) unless ``[[traps.map]]`` maps them.
* Hikvision (HIKVISION-MIB, enterprise 50001, as LibreNMS ships it in
  ``mibs/hikvision/HIKVISION-MIB``, where the SMIv1 TRAP-TYPEs are kept as comments):
  Power_PowerOn / Power_PowerOff / Power_ReBoot (``1.3.6.1.4.1.50001.0.1`` / ``.2`` / ``.3``)
  → ``trap.reboot``. That MIB defines no video or disk notifications, and none could be found
  for the 39165 tree the cameras answer polls under.

Everything else comes from ``[[traps.map]]`` in ``agent.toml``, written by the operator from the
vendor's MIB, rather than guessed here; its entries take precedence over the built-in ones.

Security. v1/v2c notifications must carry one of ``traps.communities``. SNMPv3 uses USM users:
an *inform* is authenticated with keys localised to the receiver's own engine ID (the sender
discovers it), so one user entry serves every device; a *trap* is authenticated with keys
localised to the sender's engine ID, so each sending device's snmpEngineID must be listed in the
user's ``engine_ids``. A v3 trap from an unlisted engine counts as an unknown user. pysnmp
accepts a message at a lower security level than the user is configured for (noAuthNoPriv with
an authPriv user's name); the receiver refuses those itself. Rejections, unknown sources,
unmapped notifications and malformed datagrams are counted (:meth:`TrapReceiver.stats`) and
logged once per source and reason, never raised: a hostile or broken sender must not be able
to stop the agent or flood its log.

pysnmp is imported by this module only when ``[traps]`` is configured (the SNMP poller loads it
only to diagnose a failing SNMPv3 target, see :mod:`agent.probes.snmp_usm`).
pysnmp 7 wants one SnmpEngine per event loop: the engine is created in :meth:`start`, inside
the running loop, and torn down in :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from agent.config import TargetConfig, TrapMapConfig, TrapsConfig
from agent.evaluate import to_results
from agent.probes.base import Observation
from agent.probes.snmp import (
    ADMIN_DOWN,
    IF_ADMIN_STATUS,
    IF_DESCR,
    IF_NAME,
    IF_OPER_STATUS,
    OPER_STATES,
)
from agent.probes.snmp_community import PROBED, OwnProbes
from agent.probes.snmp_usm import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from fieldmon.configfile import ConfigError

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Result]], None]
#: A varbind value as Python sees it: numbers as int, everything else as display text.
VarValue = int | str

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
#: snmpTrapCommunity: pysnmp adds it when converting a v1 trap. It is a secret; never stored.
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"

COLD_START = "1.3.6.1.6.3.1.1.5.1"
WARM_START = "1.3.6.1.6.3.1.1.5.2"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
AUTH_FAILURE = "1.3.6.1.6.3.1.1.5.5"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"

APC_ON_BATTERY = "1.3.6.1.4.1.318.0.5"
APC_POWER_RESTORED = "1.3.6.1.4.1.318.0.9"
UPS_TRAPS = "1.3.6.1.2.1.33.2"
UPS_ALARM_DESCR = "1.3.6.1.2.1.33.1.6.2.1.2"
UPS_ALARM_ON_BATTERY = "1.3.6.1.2.1.33.1.6.3.2"

TRAP_LINK = "trap.link"
TRAP_REBOOT = "trap.reboot"
TRAP_AUTH_FAILURE = "trap.auth_failure"
TRAP_POWER = "trap.power"
TRAP_VIDEO_LOSS = "trap.video_loss"
TRAP_VIDEO_TAMPER = "trap.video_tamper"
TRAP_DISK = "trap.disk"

#: DAHUA-SNMP-MIB (enterprise 1004849; source: Dahua's MIB file of 2014-04-28 as shipped by
#: LibreNMS, mibs/dahua/DAHUA-SNMP-MIB). Notification OIDs, then the varbinds they carry.
DAHUA = "1.3.6.1.4.1.1004849.2"
DAHUA_VIDEO_MOTION = f"{DAHUA}.11.11.1"  # videoMotionEvent: not mapped (security event)
DAHUA_VIDEO_BLIND = f"{DAHUA}.11.11.2"  # videoBlindEvent
DAHUA_VIDEO_LOSS = f"{DAHUA}.11.11.3"  # videoLossEvent
DAHUA_LOCAL_ALARM = f"{DAHUA}.11.12.1"  # localAlarmEvent: not mapped (alarm input)
DAHUA_STORAGE_FAILURE = f"{DAHUA}.11.13.1"  # storageFailureEvent
DAHUA_STORAGE_SMART = f"{DAHUA}.11.13.4"  # storageSMARTAbnormityEvent
DAHUA_ACTION = f"{DAHUA}.12.1"  # action (DisplayString)
DAHUA_CURRENT_TIME = f"{DAHUA}.12.2"  # currentTime (DisplayString, the device's clock)
DAHUA_VIDEO_BLIND_INDEX = f"{DAHUA}.3.2.1.3.1.1"  # videoBlindIndex
DAHUA_VIDEO_LOSS_INDEX = f"{DAHUA}.3.2.1.2.1.1"  # videoLossIndex
DAHUA_LOGIC_NO = f"{DAHUA}.4.1.1.3"  # logicNo (the disk)
#: HIKVISION-MIB (enterprise 50001; source: LibreNMS mibs/hikvision/HIKVISION-MIB): the SMIv1
#: TRAP-TYPEs Power_PowerOn (1), Power_PowerOff (2), Power_ReBoot (3) of ENTERPRISE hikvision,
#: in their SNMPv2 form (enterprise.0.specific, RFC 3584).
HIKVISION_POWER_ON = "1.3.6.1.4.1.50001.0.1"
HIKVISION_POWER_OFF = "1.3.6.1.4.1.50001.0.2"
HIKVISION_REBOOT = "1.3.6.1.4.1.50001.0.3"

ON_BATTERY, MAINS = "on battery", "mains"
#: Most distinct sources/reasons remembered for "log once": a spoofing sender cannot grow
#: memory without bound; past this everything is still counted, only no longer logged.
MAX_REMEMBERED = 1024
MAX_FACT_LEN = 1000


# ------------------------------------------------------------------------------ interpretation


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification that passed SNMP authentication, as plain Python values."""

    source: str
    trap_oid: str
    varbinds: tuple[tuple[str, VarValue], ...]
    pdu: str = "trap"  # or "inform"
    security: str = "v2c"

    def value(self, oid: str) -> VarValue | None:
        return next((v for o, v in self.varbinds if o == oid), None)

    def column(self, column: str) -> dict[str, VarValue]:
        """Varbinds under a table column, keyed by row index (the OID suffix)."""
        cut = len(column) + 1
        return {o[cut:]: v for o, v in self.varbinds if o.startswith(column + ".")}


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """What a notification means for one catalogue item.

    ``status`` None leaves the verdict to the item's threshold (and the target's override).
    """

    check: str
    value: str
    item: str = ""
    summary: str = ""
    status: Status | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


def _interface(n: Notification) -> tuple[str, str]:
    """(ifIndex, item name) from linkDown/linkUp varbinds, named the way the poller names
    interfaces: ifName, else ifDescr, else ``ifIndex N``."""
    index = ""
    indexes = n.column(IF_INDEX)
    if indexes:
        index = str(next(iter(indexes.values())))
    else:
        for column in (IF_ADMIN_STATUS, IF_OPER_STATUS, IF_NAME, IF_DESCR):
            rows = n.column(column)
            if rows:
                index = next(iter(rows))
                break
    for column in (IF_NAME, IF_DESCR):
        rows = n.column(column)
        name = str(rows.get(index, "")) if index else ""
        if not name and len(rows) == 1:
            name = str(next(iter(rows.values())))
        if name:
            return index, name
    return index, f"ifIndex {index}" if index else ""


def _link(n: Notification, up: bool) -> TrapEvent:
    index, item = _interface(n)
    facts = {"if_index": index} if index else {}
    where = item or "an interface (no ifIndex in the trap)"
    if up:
        return TrapEvent(TRAP_LINK, "up", item, f"{where}: link up (linkUp trap)", facts=facts)
    admin = n.column(IF_ADMIN_STATUS).get(index) if index else None
    oper = n.column(IF_OPER_STATUS).get(index) if index else None
    state = OPER_STATES.get(oper, f"state {oper}") if isinstance(oper, int) else "down"
    if admin == ADMIN_DOWN:
        return TrapEvent(
            TRAP_LINK,
            "admin down",
            item,
            f"{where}: administratively down (linkDown trap)",
            facts=facts,
        )
    return TrapEvent(TRAP_LINK, "down", item, f"{where}: link {state} (linkDown trap)", facts=facts)


def _ups_alarm(n: Notification, added: bool) -> TrapEvent | None:
    """RFC 1628 alarm-table traps: only the on-battery alarm is a power event."""
    if UPS_ALARM_ON_BATTERY not in {str(v) for v in n.column(UPS_ALARM_DESCR).values()}:
        return None
    if added:
        return TrapEvent(TRAP_POWER, ON_BATTERY, summary="UPS on battery: mains lost (UPS-MIB)")
    return TrapEvent(TRAP_POWER, MAINS, summary="UPS back on mains (UPS-MIB alarm cleared)")


def _fixed(event: TrapEvent) -> Callable[[Notification], TrapEvent | None]:
    return lambda _n: event


def _first_under(n: Notification, prefix: str) -> VarValue | None:
    """The value of the first varbind at or under ``prefix`` (a scalar's ``.0`` instance or a
    column's row), or None."""
    return next((v for o, v in n.varbinds if o == prefix or o.startswith(prefix + ".")), None)


def _dahua(check: str, what: str, index_oid: str, noun: str) -> Callable[[Notification], TrapEvent]:
    """A DAHUA-SNMP-MIB event: ``action`` says whether it starts or stops, the index object
    names the channel or disk (its value; its row index if the value is empty)."""

    def event(n: Notification) -> TrapEvent:
        action = str(_first_under(n, DAHUA_ACTION) or "").strip()
        index = _first_under(n, index_oid)
        if index is None or str(index) == "":
            rows = n.column(index_oid)
            index = next(iter(rows), None) if rows else None
        item = f"{noun} {index}" if index is not None and str(index) != "" else ""
        where = item or f"{noun} (not named in the trap)"
        facts = {"action": action[:MAX_FACT_LEN]} if action else {}
        device_time = _first_under(n, DAHUA_CURRENT_TIME)
        if device_time is not None:
            facts["device_time"] = str(device_time)[:MAX_FACT_LEN]
        if action.lower() == "stop":
            return TrapEvent(
                check, "ok", item, f"{where}: {what} cleared (Dahua trap)", facts=facts
            )
        said = f" (action {action!r})" if action and action.lower() != "start" else ""
        return TrapEvent(check, what, item, f"{where}: {what}{said} (Dahua trap)", facts=facts)

    return event


#: The notifications fieldmon understands by itself, by snmpTrapOID.
BUILTIN: dict[str, Callable[[Notification], TrapEvent | None]] = {
    LINK_DOWN: lambda n: _link(n, up=False),
    LINK_UP: lambda n: _link(n, up=True),
    COLD_START: _fixed(
        TrapEvent(
            TRAP_REBOOT,
            "coldStart",
            summary="device restarted (coldStart: its configuration may have changed)",
            status=Status.CRIT,
        )
    ),
    WARM_START: _fixed(
        TrapEvent(
            TRAP_REBOOT,
            "warmStart",
            summary="device restarted (warmStart: configuration unchanged)",
            status=Status.CRIT,
        )
    ),
    AUTH_FAILURE: _fixed(
        TrapEvent(
            TRAP_AUTH_FAILURE,
            "authenticationFailure",
            summary="the device rejected an SNMP request with a wrong community or credentials",
            status=Status.CRIT,
        )
    ),
    APC_ON_BATTERY: _fixed(
        TrapEvent(TRAP_POWER, ON_BATTERY, summary="UPS on battery: mains lost (APC upsOnBattery)")
    ),
    APC_POWER_RESTORED: _fixed(
        TrapEvent(TRAP_POWER, MAINS, summary="UPS back on mains (APC powerRestored)")
    ),
    DAHUA_VIDEO_LOSS: _dahua(TRAP_VIDEO_LOSS, "video lost", DAHUA_VIDEO_LOSS_INDEX, "channel"),
    DAHUA_VIDEO_BLIND: _dahua(
        TRAP_VIDEO_TAMPER, "video blinded", DAHUA_VIDEO_BLIND_INDEX, "channel"
    ),
    DAHUA_STORAGE_FAILURE: _dahua(TRAP_DISK, "disk failure", DAHUA_LOGIC_NO, "disk"),
    DAHUA_STORAGE_SMART: _dahua(TRAP_DISK, "SMART abnormal", DAHUA_LOGIC_NO, "disk"),
    HIKVISION_POWER_ON: _fixed(
        TrapEvent(
            TRAP_REBOOT,
            "powerOn",
            summary="device powered on (Hikvision Power_PowerOn)",
            status=Status.CRIT,
        )
    ),
    HIKVISION_POWER_OFF: _fixed(
        TrapEvent(
            TRAP_REBOOT,
            "powerOff",
            summary="device shutting down (Hikvision Power_PowerOff)",
            status=Status.CRIT,
        )
    ),
    HIKVISION_REBOOT: _fixed(
        TrapEvent(
            TRAP_REBOOT,
            "reboot",
            summary="device restarting (Hikvision Power_ReBoot)",
            status=Status.CRIT,
        )
    ),
}
for _prefix in (UPS_TRAPS, f"{UPS_TRAPS}.0"):
    BUILTIN[f"{_prefix}.1"] = _fixed(
        TrapEvent(TRAP_POWER, ON_BATTERY, summary="UPS on battery: mains lost (upsTrapOnBattery)")
    )
    BUILTIN[f"{_prefix}.3"] = lambda n: _ups_alarm(n, added=True)
    BUILTIN[f"{_prefix}.4"] = lambda n: _ups_alarm(n, added=False)


def _mapped(n: Notification, mapping: TrapMapConfig) -> TrapEvent:
    item = mapping.item
    if mapping.item_from is not None:
        prefix = mapping.item_from
        found = [v for o, v in n.varbinds if o == prefix or o.startswith(prefix + ".")]
        item = str(found[0]) if found else item
    summary = mapping.summary or f"notification {mapping.oid} ({mapping.status})"
    return TrapEvent(
        mapping.check, mapping.status.lower(), item, summary, status=Status.parse(mapping.status)
    )


def interpret(n: Notification, mappings: Sequence[TrapMapConfig] = ()) -> TrapEvent | None:
    """The event a notification stands for, or None when nothing maps it.

    The operator's ``[[traps.map]]`` entries come first, so a vendor that reuses a standard
    OID differently can be corrected without a release.
    """
    for mapping in mappings:
        if mapping.oid == n.trap_oid:
            return _mapped(n, mapping)
    handler = BUILTIN.get(n.trap_oid)
    return handler(n) if handler is not None else None


# ---------------------------------------------------------------------------- value conversion


def _octets_text(raw: bytes) -> str:
    """Display text of an OCTET STRING: UTF-8, else GB18030 (Chinese camera firmware),
    else hex for binary such as MAC addresses."""
    for codec in ("utf-8", "gb18030"):
        try:
            decoded = raw.decode(codec).replace("\x00", "").strip()
        except UnicodeDecodeError:
            continue
        if decoded.isprintable():
            return decoded
    return "0x" + raw.hex()


def py_value(value: Any) -> VarValue:
    """A pysnmp value as int (INTEGER, Counter, Gauge, TimeTicks) or display text."""
    from pysnmp.proto import rfc1902

    if isinstance(value, rfc1902.IpAddress):
        return str(value.prettyPrint())
    if hasattr(value, "asTuple"):  # OBJECT IDENTIFIER
        return ".".join(str(part) for part in value.asTuple())
    if hasattr(value, "asOctets"):  # OCTET STRING (and Null, which is empty)
        return _octets_text(bytes(value.asOctets()))
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value.prettyPrint())


# ------------------------------------------------------------------------------------ receiver


class TrapReceiverError(ConfigError):
    """The receiver cannot listen where it is configured to (port in use, no permission)."""


#: pysnmp's protocol names (shared with the SNMPv3 diagnosis of the poller).
_AUTH = AUTH_PROTOCOLS
_PRIV = PRIV_PROTOCOLS
#: Engine counters that mean "a notification was refused", by the name stats() reports.
_REJECTION_COUNTERS = {
    "bad_community": ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    "unknown_user": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    "wrong_digest": ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    "decryption_error": ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    "not_in_time_window": ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"),
    "unsupported_security_level": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
}
_OTHER_COUNTERS = {
    "malformed": ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    "bad_version": ("__SNMPv2-MIB", "snmpInBadVersions"),
    #: Includes every SNMPv3 sender's engine discovery, which is normal, not a rejection.
    "engine_discovery": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),
}
_REQUEST_CONTEXT = "rfc3412.receiveMessage:request"
_SECURITY_MODELS = {1: "v1", 2: "v2c", 3: "v3"}


def _ip(text: str) -> str:
    """Canonical text of an IP address (IPv6 case and ``::`` compression), so two spellings
    of one address still match."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


class TrapReceiver:
    """Listens for SNMP notifications and pushes the results they mean into ``sink``.

    ``targets`` are matched by the notification's UDP source address against their
    ``address`` (a v1 trap's agent-addr field and snmpTrapAddress are claims inside the
    packet, so they are not used for matching); when several targets share an address, the
    first (in configuration order) whose class defines the event's check and has not disabled
    it receives it.
    """

    def __init__(
        self,
        cfg: TrapsConfig,
        targets: Sequence[TargetConfig],
        classes: Mapping[str, DeviceClass],
        sink: Sink,
        *,
        own_probes: OwnProbes | None = None,
    ) -> None:
        self._cfg = cfg
        self._classes = classes
        self._sink = sink
        #: Where the default-community probe notes the devices it provoked (same process).
        self._own_probes = PROBED if own_probes is None else own_probes
        self._by_address: dict[str, list[TargetConfig]] = {}
        for target in targets:
            if target.address:
                self._by_address.setdefault(_ip(target.address), []).append(target)
        self._levels = {u.user: u.security_level for u in cfg.users}
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        self._engine: Any = None
        self._transport: Any = None
        self._counters: dict[str, Any] = {}
        self.address: tuple[str, int] = (cfg.listen, cfg.port)
        self.engine_id = ""

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the UDP port and start answering; raises TrapReceiverError if it cannot."""
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
        from pysnmp.entity import config as snmp_config
        from pysnmp.entity import engine as snmp_engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto import rfc1902

        sock = self._bind()
        loop = asyncio.get_running_loop()
        try:
            if self._cfg.engine_id:
                engine_id = rfc1902.OctetString(hexValue=self._cfg.engine_id)
                engine = snmp_engine.SnmpEngine(snmpEngineID=engine_id)
            else:
                engine = snmp_engine.SnmpEngine()
            dispatcher = AsyncioDispatcher(loop=loop)
            # Our callback sees every datagram first (to guard and attribute rejections);
            # the engine's own one is parked under another id and never routed to.
            dispatcher.register_recv_callback(self._on_datagram)
            engine.register_transport_dispatcher(dispatcher, "fieldmon-unused")
            transport = udp.UdpAsyncioTransport(loop=loop).open_server_mode(sock=sock)
            snmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
            self._engine, self._transport = engine, transport
            self._configure_security(snmp_config, rfc1902)
            ntfrcv.NotificationReceiver(engine, self._on_notification)
            builder = engine.get_mib_builder()
            for name, (module, symbol) in (_REJECTION_COUNTERS | _OTHER_COUNTERS).items():
                (self._counters[name],) = builder.import_symbols(module, symbol)
            self.engine_id = bytes(engine.snmpEngineID.asOctets()).hex()
            await self._wait_ready()
        except BaseException:
            sock.close()
            await self.stop()
            raise
        unmatched = [a for a in self._by_address if not _is_ip(a)]
        if not self._by_address:
            log.warning(
                "trap receiver: no target has an 'address', so every notification will be"
                " counted as coming from an unknown source"
            )
        if unmatched:
            log.warning(
                "trap receiver: target address(es) %s are not IP addresses; notifications"
                " are matched by source IP, so these targets will not receive any",
                ", ".join(unmatched),
            )
        log.info(
            "trap receiver listening on %s:%d (engine ID %s for SNMPv3 informs; %d communities,"
            " %d v3 users, %d mapped vendor notifications)",
            *self.address,
            self.engine_id,
            len(self._cfg.communities),
            len(self._cfg.users),
            len(self._cfg.mappings),
        )

    def _bind(self) -> socket.socket:
        """Bind here rather than inside pysnmp, so a busy or privileged port fails at start
        with a clear message instead of inside a background future."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self._cfg.listen, self._cfg.port))
        except OSError as exc:
            sock.close()
            hint = ""
            if self._cfg.port < 1024 and isinstance(exc, PermissionError):
                hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            raise TrapReceiverError(
                f"traps.listen/traps.port: cannot listen on {self._cfg.listen}:{self._cfg.port}:"
                f" {exc.strerror or exc}{hint}"
            ) from None
        sock.setblocking(False)
        host, port = sock.getsockname()[:2]
        self.address = (str(host), int(port))
        return sock

    async def _wait_ready(self) -> None:
        """pysnmp creates the datagram endpoint in a background future; wait for it."""
        for _ in range(500):
            if self._transport.transport is not None:
                return
            await asyncio.sleep(0.01)
        raise TrapReceiverError(
            f"trap receiver on {self.address[0]}:{self.address[1]} did not start"
        )

    def _configure_security(self, snmp_config: Any, rfc1902: Any) -> None:
        for i, community in enumerate(self._cfg.communities):
            snmp_config.add_v1_system(self._engine, f"fieldmon-{i}", community.get_secret_value())
        for user in self._cfg.users:
            auth = getattr(snmp_config, _AUTH[user.auth_protocol or "md5"])
            priv = getattr(snmp_config, _PRIV[user.priv_protocol or "des"])
            args: dict[str, Any] = {
                "authProtocol": auth if user.auth_protocol else snmp_config.USM_AUTH_NONE,
                "authKey": user.auth_key.get_secret_value() if user.auth_key else None,
                "privProtocol": priv if user.priv_protocol else snmp_config.USM_PRIV_NONE,
                "privKey": user.priv_key.get_secret_value() if user.priv_key else None,
            }
            # Keys localised to our engine (informs), then to each trap sender's engine.
            snmp_config.add_v3_user(self._engine, user.user, **args)
            for engine_id in user.engine_ids:
                snmp_config.add_v3_user(
                    self._engine,
                    user.user,
                    securityEngineId=rfc1902.OctetString(hexValue=engine_id),
                    **args,
                )

    async def stop(self) -> None:
        """Close the socket and the engine; safe to call twice or after a failed start."""
        engine, self._engine, self._transport = self._engine, None, None
        if engine is not None and engine.transport_dispatcher is not None:
            engine.close_dispatcher()
            await asyncio.sleep(0)  # let the transport finish closing
            log.info("trap receiver stopped: %s", self._summary())

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------- stats

    def stats(self) -> dict[str, int]:
        """Counters since start: ``received`` notifications that passed SNMP security,
        ``results`` pushed to the sink, ``unknown_source``, ``unmapped``, ``own_probe``
        (authenticationFailure traps our own default-community probe caused), the rejection
        reasons (``bad_community``, ``wrong_digest``, ``unknown_user``, ``security_level``,
        …) with their sum in ``rejected``, ``malformed`` datagrams and internal ``errors``."""
        out = dict(self._counts)
        for name, counter in self._counters.items():
            out[name] = int(counter.syntax)
        out["rejected"] = sum(out.get(n, 0) for n in (*_REJECTION_COUNTERS, "security_level"))
        for name in ("received", "results", "unknown_source", "unmapped", "own_probe", "errors"):
            out.setdefault(name, 0)
        return out

    def _summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.stats().items()) if v)

    def _log_once(self, key: str, reason: str, message: str, *args: object) -> None:
        """Warn about ``reason`` for ``key`` (a source) the first time only: senders decide
        how often this happens, and they must not be able to flood the agent's log."""
        if (key, reason) in self._logged or len(self._logged) >= MAX_REMEMBERED:
            return
        self._logged.add((key, reason))
        log.warning(message + "; further ones are only counted", *args)

    def _rejections(self) -> dict[str, int]:
        return {n: int(self._counters[n].syntax) for n in _REJECTION_COUNTERS}

    # ---------------------------------------------------------------------------- receiving

    def _on_datagram(self, dispatcher: Any, domain: Any, address: Any, message: bytes) -> None:
        """Every datagram passes here: nothing a sender puts in it may raise out of here."""
        engine = self._engine
        if engine is None:
            return
        before = self._rejections()
        try:
            engine.message_dispatcher.receive_message(engine, domain, address, message)
        except Exception as exc:  # pysnmp or our mapping failed on this datagram: drop it
            self._counts["errors"] += 1
            self._log_once(
                str(address[0]),
                "error",
                "trap receiver: datagram from %s dropped: %s: %s",
                address[0],
                type(exc).__name__,
                exc,
            )
        after = self._rejections()
        for reason, count in after.items():
            if count > before[reason]:
                self._log_once(
                    str(address[0]),
                    reason,
                    "trap receiver: notification from %s rejected (%s)",
                    address[0],
                    reason.replace("_", " "),
                )

    def _on_notification(
        self,
        engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        varbinds: Any,
        cb_ctx: Any,
    ) -> None:
        """Called by pysnmp for each notification that passed community/USM checks."""
        request = engine.observer.get_execution_context(_REQUEST_CONTEXT)
        source = _ip(str(request["transportAddress"][0]))
        model = _SECURITY_MODELS.get(int(request["securityModel"]), "?")
        security = model
        if model == "v3":
            user = bytes(request["securityName"].asOctets()).decode("utf-8", "replace")
            security = f"v3 user {user}"
            level = int(request["securityLevel"])
            if level < self._levels.get(user, 4):
                self._counts["security_level"] += 1
                self._log_once(
                    source,
                    "security_level",
                    "trap receiver: notification from %s as %s rejected: security level %d is"
                    " below the user's configured level %d",
                    source,
                    user,
                    level,
                    self._levels.get(user, 4),
                )
                return
        self._counts["received"] += 1
        pdu = "inform" if "Inform" in type(request["pdu"]).__name__ else "trap"
        pairs = tuple((".".join(map(str, name.asTuple())), py_value(v)) for name, v in varbinds)
        trap_oid = next((str(v) for o, v in pairs if o == SNMP_TRAP_OID), "")
        self.handle(Notification(source, trap_oid, pairs, pdu, security))

    def handle(self, n: Notification) -> list[Result]:
        """Map one authenticated notification to its target and push the result to the sink."""
        candidates = self._by_address.get(n.source)
        if not candidates:
            self._counts["unknown_source"] += 1
            self._log_once(
                n.source,
                "unknown_source",
                "trap receiver: %s %s from %s ignored: no target has this address",
                n.pdu,
                n.trap_oid or "?",
                n.source,
            )
            return []
        if n.trap_oid == AUTH_FAILURE:
            since = self._own_probes.since(n.source)
            if since is not None:
                self._counts["own_probe"] += 1
                log.debug(
                    "trap receiver: authenticationFailure from %s ignored: this agent sent it"
                    " a default community %.1f s ago (sec.snmp_default_community)",
                    n.source,
                    since,
                )
                return []
        event = interpret(n, self._cfg.mappings)
        target = dc = None
        if event is not None:
            for candidate in candidates:
                cls = self._classes.get(candidate.device_class)
                item = cls.item(event.check) if cls else None
                if (
                    item is not None
                    and item.method == "trap"
                    and event.check not in candidate.disabled
                ):
                    target, dc = candidate, cls
                    break
        if event is None or target is None or dc is None:
            self._counts["unmapped"] += 1
            self._log_once(
                f"{n.source} {n.trap_oid}",
                "unmapped",
                "trap receiver: %s %s from %s (%s) is not mapped to any check ([[traps.map]])",
                n.pdu,
                n.trap_oid or "?",
                n.source,
                candidates[0].name,
            )
            return []
        results = to_results(target, dc, [self._observation(n, event)])
        try:
            self._sink(results)
        except Exception:
            self._counts["errors"] += 1
            log.exception(
                "trap receiver: could not store the result of %s from %s", n.trap_oid, n.source
            )
            return []
        self._counts["results"] += len(results)
        for r in results:
            log.info(
                "trap %s from %s → %s %s %s: %s",
                n.trap_oid,
                n.source,
                r.target,
                r.key,
                r.status.name,
                r.summary,
            )
        return results

    @staticmethod
    def _observation(n: Notification, event: TrapEvent) -> Observation:
        shown = "; ".join(
            f"{o}={v}" for o, v in n.varbinds if o not in (SNMP_TRAP_COMMUNITY, SNMP_TRAP_OID)
        )
        facts = {
            "source": n.source,
            "trap_oid": n.trap_oid,
            "pdu": n.pdu,
            "security": n.security,
            "varbinds": shown[:MAX_FACT_LEN],
            **event.facts,
        }
        uptime = n.value(SYS_UPTIME)
        if isinstance(uptime, int):
            facts["device_uptime_s"] = str(uptime // 100)
        return Observation(
            check=event.check,
            value=event.value,
            item=event.item,
            summary=event.summary,
            status=event.status,
            facts=facts,
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
