"""Why an SNMPv3 device refuses us: a wrong key is not a device that is down.

A device with a wrong auth key, a wrong priv key or an unknown user name is up and serving
everybody else; reading that as ``snmp.reachable`` down (CRIT, "not reachable") sends an
engineer to a device that works. The device does say what is wrong, in a REPORT PDU whose one
varbind is a USM counter (RFC 3414): ``usmStatsUnknownUserNames`` (1.3.6.1.6.3.15.1.1.3),
``usmStatsWrongDigests`` (.5), ``usmStatsDecryptionErrors`` (.6), ``usmStatsNotInTimeWindows``
(.2), ``usmStatsUnsupportedSecLevels`` (.1). gufo-snmp, the poller's client, turns every REPORT
into one ``SnmpAuthError("authentication failed")`` and drops the varbind (its Rust socket
matches ``SnmpPdu::Report(_)``), so it cannot tell those apart.

So when a v3 collection fails with an authentication error or with silence, :func:`diagnose`
asks once more with pysnmp, which maps the report's OID to an error indication:

1. a GET at noAuthNoPriv with the configured user name only. No answer: the device really is
   silent (nothing more to say; one timeout spent). ``usmStatsUnknownUserNames``: the user does
   not exist there. Any other answer (a report about the security level, or a response VACM
   refused) proves the device is up and knows the user.
2. the GET with the configured keys. The report names the problem. Silence after step 1 was
   answered means the device drops what it cannot decrypt: net-snmp 5.9 does exactly that
   with a wrong priv key (AES decrypts to garbage, it logs "error parsing ScopedPDU" and sends
   nothing), where RFC 3414 would have it send ``usmStatsDecryptionErrors``.

Nothing here raises: a diagnosis that fails leaves the original reason standing. Keys never
appear in a reason; the user name (not a secret) does. pysnmp is imported here only when a v3
target fails, so a healthy agent does not load it; each diagnosis uses its own engine, closed
afterwards, so it does not disturb the trap receiver's engine on the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from agent.config import SnmpConfig
from agent.snmp_client import SnmpClientError, SnmpFailure, SnmpUnreachable

log = logging.getLogger(__name__)

#: pysnmp's names for the agent configuration's protocols. AES-192/256 use the Blumenthal key
#: extension, as net-snmp and gufo-snmp do.
AUTH_PROTOCOLS = {
    "md5": "USM_AUTH_HMAC96_MD5",
    "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224",
    "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384",
    "sha512": "USM_AUTH_HMAC384_SHA512",
}
PRIV_PROTOCOLS = {
    "des": "USM_PRIV_CBC56_DES",
    "aes": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "aes256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
}

#: The reasons, as the summaries start; tests and people search for these words.
AUTH_FAILED = "SNMPv3 authentication failed (wrong auth key or auth protocol)"
DECRYPTION_FAILED = "SNMPv3 decryption failed (wrong priv key or priv protocol)"
UNKNOWN_USER = "SNMPv3 unknown user name"
NOT_IN_TIME_WINDOW = "SNMPv3 message not in time window (device engine time out of step)"
SECURITY_LEVEL = "SNMPv3 security level not supported for this user"
UNKNOWN_ENGINE = "SNMPv3 engine ID not accepted"

_SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
#: pysnmp error indication class name → (reason, the USM counter the device reported).
_REPORTS = {
    "WrongDigest": (AUTH_FAILED, "usmStatsWrongDigests"),
    "DecryptionError": (DECRYPTION_FAILED, "usmStatsDecryptionErrors"),
    "UnknownUserName": (UNKNOWN_USER, "usmStatsUnknownUserNames"),
    "NotInTimeWindow": (NOT_IN_TIME_WINDOW, "usmStatsNotInTimeWindows"),
    "UnsupportedSecurityLevel": (SECURITY_LEVEL, "usmStatsUnsupportedSecLevels"),
    "UnknownEngineID": (UNKNOWN_ENGINE, "usmStatsUnknownEngineIDs"),
}
_TIMED_OUT = "RequestTimedOut"


@dataclass(frozen=True, slots=True)
class UsmProblem:
    """What the device said is wrong with our SNMPv3 credentials: the device is up."""

    reason: str
    #: The USM counter the device reported, or "" when it stayed silent (wrong priv key).
    report: str
    detail: str

    @property
    def summary(self) -> str:
        return f"{self.reason}: {self.detail}"

    def facts(self) -> dict[str, str]:
        out = {"snmpv3_problem": self.reason}
        if self.report:
            out["usm_report"] = self.report
        return out


def worth_diagnosing(config: SnmpConfig, exc: SnmpClientError) -> bool:
    """True for SNMPv3 failures that a wrong credential can explain: an authentication error
    (gufo's ``SnmpAuthError``, i.e. the device sent a REPORT) or plain silence after every
    attempt. "Port unreachable" and name-resolution failures carry an ``OSError`` cause and
    are what they say."""
    if config.version != "3":
        return False
    cause = exc.__cause__
    if isinstance(exc, SnmpFailure):
        from gufo.snmp import SnmpAuthError  # loaded already: the client is gufo's

        return isinstance(cause, SnmpAuthError)
    return isinstance(exc, SnmpUnreachable) and cause is None


async def _get(address: str, config: SnmpConfig, *, with_keys: bool) -> str:
    """One pysnmp GET of sysUpTime.0 as the configured user; returns the error indication's
    class name, ``""`` for an answer (a response, even an error-status one).

    The request goes through pysnmp's command generator with a numeric varbind, not through
    ``hlapi.get_cmd``: that resolves every varbind against the MIBs and, the first time, builds
    pysmi's MIB compiler (seconds of CPU) that a numeric OID never needs.
    """
    from pysnmp.entity.rfc3413 import cmdgen
    from pysnmp.hlapi.v3arch import asyncio as hlapi
    from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
    from pysnmp.proto import rfc1902

    if with_keys:
        auth = config.auth_protocol
        priv = config.priv_protocol
        user = hlapi.UsmUserData(
            config.user or "",
            authKey=config.auth_key.get_secret_value() if config.auth_key and auth else None,
            privKey=config.priv_key.get_secret_value() if config.priv_key and priv else None,
            authProtocol=getattr(hlapi, AUTH_PROTOCOLS[auth]) if auth else hlapi.USM_AUTH_NONE,
            privProtocol=getattr(hlapi, PRIV_PROTOCOLS[priv]) if priv else hlapi.USM_PRIV_NONE,
        )
    else:
        user = hlapi.UsmUserData(config.user or "")
    engine = hlapi.SnmpEngine()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    def answered(
        _engine: Any, _handle: Any, indication: Any, _status: Any, _index: Any, *_rest: Any
    ) -> None:
        if not done.done():
            done.set_result("" if indication is None else type(indication).__name__)

    try:
        transport = await hlapi.UdpTransportTarget.create(
            (address, config.port), timeout=config.timeout, retries=0
        )
        target, _ = CommandGeneratorLcdConfigurator().configure(engine, user, transport, b"")
        cmdgen.GetCommandGenerator().send_varbinds(
            engine, target, None, b"", [(rfc1902.ObjectName(_SYS_UPTIME), rfc1902.Null())], answered
        )
        async with asyncio.timeout(config.timeout * 2 + 2):
            return await done
    except TimeoutError:
        return _TIMED_OUT
    finally:
        engine.close_dispatcher()


def _from_report(name: str, user: str) -> UsmProblem | None:
    known = _REPORTS.get(name)
    if known is None:
        return None
    reason, report = known
    if reason == UNKNOWN_USER:
        detail = f"the device has no SNMPv3 user '{user}' (it answered with {report})"
    else:
        detail = f"the device answered with {report}; it is up, only our credentials fail"
    return UsmProblem(reason, report, detail)


async def diagnose(address: str, config: SnmpConfig) -> UsmProblem | None:
    """What the device reports about our SNMPv3 credentials, or None when it stays silent
    (really unreachable), answers normally now, or the diagnosis itself failed."""
    user = config.user or ""
    try:
        plain = await _get(address, config, with_keys=False)
        if plain == _TIMED_OUT:
            return None
        if plain == "UnknownUserName":
            return _from_report(plain, user)
        keyed = await _get(address, config, with_keys=True)
    except Exception as exc:  # a diagnosis must never turn into the failure itself
        log.debug("SNMPv3 diagnosis of %s failed: %r", address, exc)
        return None
    if keyed == "":
        return None  # it answers now: the failure was passing
    if keyed == _TIMED_OUT:
        if config.priv_protocol:
            return UsmProblem(
                DECRYPTION_FAILED,
                "",
                f"the device answers SNMPv3 and knows user '{user}', but drops every request"
                " encrypted with the configured priv key",
            )
        return None
    return _from_report(keyed, user)
