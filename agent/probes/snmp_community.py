"""Security item ``sec.snmp_default_community``: does a device still answer ``public``?

Factory-default communities are the first thing anyone on the same network tries: ``public``
hands out the whole configuration and topology (interfaces, addresses, neighbours, software
versions), ``private`` is often the write community. A device that was set up with a proper
community, or with SNMPv3, frequently keeps the factory ones as well, and nothing in normal
polling shows it, because the agent only ever uses the configured credentials. So at the
inspection interval this module sends one GET of sysObjectID.0/sysDescr.0 with each default
community the agent is *not* configured with, and reports which of them the device answered.

* ``refused`` (OK): no default community answered. An SNMPv1/v2c agent discards a message
  with a community it does not know, without a reply (it only counts it), so silence within
  the short timeout is the expected answer; UDP loss can only make this err towards
  "refused", never towards a false alarm.
* ``public``, ``private`` or ``public, private`` (the catalogue makes anything else than
  ``refused`` a fault): the device answered those communities. The worst case, a device
  configured for SNMPv3 that still answers SNMPv2c, is named as such in the summary and in
  the fact ``worst_case``.

When the agent itself polls with ``public`` or ``private`` (SNMPv1/v2c), that community is not
sent again: the device answered the collection's own GET with it, which is the same finding.
Only the default names are ever printed; a configured community that is not a default name
is never part of the result.

The probe follows the configured version for SNMPv1 devices (which may not speak v2c) and
uses SNMPv2c otherwise. Each wrong community makes the device count an authentication failure
and, if it sends authentication traps, an ``authenticationFailure`` trap: one per default
community per inspection run. That is why this runs at the inspection interval and never at
every poll. Those traps are this agent's own doing, so before sending, :func:`ask` notes the
address in :data:`PROBED` (an :class:`OwnProbes`); the agent's trap receiver
(:mod:`agent.traps`) consults it and only counts an ``authenticationFailure`` from an address
noted there within the last :data:`OWN_PROBE_WINDOW` seconds instead of raising
``trap.auth_failure``. Another receiver (the customer's NMS) still sees them, once a day.

The address is noted as configured. A target named by host name is never matched by the trap
receiver (it matches the UDP source address against IP literals), so its traps cannot be
mistaken for an intrusion here either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from agent.config import SnmpConfig
from agent.probes.base import Observation, unknown
from agent.probes.snmp_values import MAX_FACT_LEN, descr_lines, text
from agent.snmp_client import SnmpClient, SnmpClientError, SnmpFailure, SnmpUnreachable
from fieldmon.secrets import Secret

CHECK = "sec.snmp_default_community"
#: The communities devices ship with; the order is the order they are reported in.
DEFAULTS = ("public", "private")
#: The value when no default community answered.
REFUSED = "refused"
#: Longest wait for each default community's answer (seconds): a device answers a community
#: it accepts within milliseconds on a LAN, and every second here delays the inspection run.
MAX_TIMEOUT = 2.0

#: How long after sending a default community an ``authenticationFailure`` trap from that
#: address is taken as the device's answer to our own probe (seconds). A device sends the trap
#: within milliseconds of the rejected request; a minute also covers a slow trap queue.
OWN_PROBE_WINDOW = 60.0
#: Most addresses remembered at once; only reached if thousands of targets are inspected
#: within one window, and then the oldest notes go first.
MAX_NOTED = 4096

_SYS_DESCR = "1.3.6.1.2.1.1.1.0"
_SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the device did with one default community: ``answered`` or stayed silent."""

    community: str
    answered: bool
    #: sysDescr (first line) or sysObjectID the device gave away; the error if it replied one.
    evidence: str = ""


def canonical_address(address: str) -> str:
    """One spelling per IP address (IPv6 case and ``::``), so the probe's note and the trap's
    UDP source compare equal; anything else is kept as given."""
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return address.strip()


class OwnProbes:
    """Addresses this agent recently sent a community it is not configured with.

    Shared by the probe (which notes) and the trap receiver (which asks) within one agent
    process, so that the ``authenticationFailure`` traps our own default-community probe
    causes are not reported as someone guessing communities. Both run on the agent's event
    loop, so no lock is needed. ``clock`` is monotonic seconds (replaceable in tests).
    """

    def __init__(
        self,
        window: float = OWN_PROBE_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_NOTED,
    ) -> None:
        self.window = window
        self._clock = clock
        self._limit = limit
        self._sent: dict[str, float] = {}

    def note(self, address: str) -> None:
        """Record that a non-configured community is being sent to ``address`` now."""
        now = self._clock()
        key = canonical_address(address)
        self._sent.pop(key, None)  # re-insert: the dict stays ordered oldest first
        self._sent[key] = now
        if len(self._sent) > self._limit:
            for old in [a for a, t in self._sent.items() if now - t > self.window]:
                del self._sent[old]
            while len(self._sent) > self._limit:
                del self._sent[next(iter(self._sent))]

    def clear(self) -> None:
        """Forget every note (tests, or a process that starts over)."""
        self._sent.clear()

    def since(self, address: str) -> float | None:
        """Seconds since a non-configured community was last sent to ``address``, if that was
        within the window; None otherwise."""
        sent = self._sent.get(canonical_address(address))
        if sent is None:
            return None
        age = self._clock() - sent
        return age if 0 <= age <= self.window else None


#: The agent's one registry: the SNMP probe notes into it, the trap receiver reads it.
PROBED = OwnProbes()


def probe_config(config: SnmpConfig, community: str) -> SnmpConfig:
    """The settings for asking ``community``: the device's port, v1 for v1 devices (else
    v2c), a short timeout and no retry, no SNMPv3 user."""
    return msgspec.structs.replace(
        config,
        version="1" if config.version == "1" else "2c",
        community=Secret(community),
        user=None,
        auth_protocol=None,
        auth_key=None,
        priv_protocol=None,
        priv_key=None,
        timeout=min(config.timeout, MAX_TIMEOUT),
        retries=0,
    )


def configured_default(config: SnmpConfig) -> str | None:
    """The default community the agent itself polls with, if it does (v1/v2c only)."""
    if config.version == "3":
        return None
    community = config.community.get_secret_value()
    return community if community in DEFAULTS else None


async def ask(
    address: str, config: SnmpConfig, community: str, probed: OwnProbes | None = None
) -> Answer:
    """One GET of sysObjectID.0 and sysDescr.0 with ``community``.

    Any reply counts as answered, an SNMP error reply too: a device that rejects a community
    sends nothing at all. Silence (or "port unreachable") is not answered. The address is noted
    in ``probed`` (default :data:`PROBED`) before the request leaves, so the trap the device
    may send in answer is already expected when it arrives.
    """
    (PROBED if probed is None else probed).note(address)
    client = SnmpClient(address, probe_config(config, community))
    try:
        got = await client.get_many([_SYS_OBJECT_ID, _SYS_DESCR])
    except SnmpUnreachable:
        return Answer(community, answered=False)
    except SnmpFailure as exc:
        return Answer(community, answered=True, evidence=f"replied with an error: {exc}")
    finally:
        await client.close()
    lines = descr_lines(got.get(_SYS_DESCR))
    evidence = lines[0] if lines else text(got.get(_SYS_OBJECT_ID)).lstrip(".")
    return Answer(community, answered=True, evidence=evidence[:MAX_FACT_LEN])


def verdict(config: SnmpConfig, answers: list[Answer]) -> Observation:
    """The observation for ``answers`` (one per community sent) on a device set up with
    ``config``; pure, so the wording is tested without a device."""
    own = configured_default(config)
    answered = {a.community: a for a in answers if a.answered}
    found = [c for c in DEFAULTS if c in answered or c == own]
    sent = [a.community for a in answers]
    facts = {"communities_tried": ", ".join(sent) or "none", "configured_version": config.version}
    if not found:
        wait = min(config.timeout, MAX_TIMEOUT)
        summary = (
            f"no answer to the default communities {', '.join(sent)}"
            f" (one GET each, {wait:g} s): they are switched off"
        )
        return Observation(CHECK, REFUSED, summary=summary, facts=facts)
    facts["answered"] = ", ".join(found)
    for community in found:
        if community in answered and answered[community].evidence:
            facts[f"answer_{community}"] = answered[community].evidence
    quoted = " and ".join(f"'{c}'" for c in found)
    parts: list[str] = []
    if config.version == "3":
        facts["worst_case"] = "SNMPv3 device answers SNMPv2c"
        parts.append(
            f"configured for SNMPv3 but still answers SNMPv2c with the default community"
            f" {quoted}: the v3 protection is bypassed"
        )
    else:
        parts.append(f"answers the default community {quoted}")
    if own is not None:
        parts.append(
            f"this agent itself polls with the default community '{own}'; set a community"
            " of your own (or SNMPv3) on the device and in the agent configuration"
        )
    else:
        parts.append("remove the default communities from the device's SNMP configuration")
    first = next((answered[c].evidence for c in found if c in answered), "")
    if first:
        parts.append(f"it gave away: {first}")
    return Observation(CHECK, ", ".join(found), summary="; ".join(parts)[:1000], facts=facts)


async def check(
    address: str,
    config: SnmpConfig,
    dead: SnmpClientError | None,
    probed: OwnProbes | None = None,
) -> Observation:
    """Ask the device every default community it is not polled with (concurrently, each on
    its own socket) and judge. ``dead`` is the collection's "device stopped answering": then
    silence would prove nothing, so the item is UNKNOWN. ``probed`` is the registry the sends
    are noted in (default :data:`PROBED`, the one the agent's trap receiver reads)."""
    if dead is not None:
        return unknown(CHECK, f"device stopped answering during the collection: {dead}")
    own = configured_default(config)
    candidates = [c for c in DEFAULTS if c != own]
    answers = await asyncio.gather(*(ask(address, config, c, probed) for c in candidates))
    return verdict(config, list(answers))
