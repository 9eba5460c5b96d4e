"""``fieldmon agent discover``: what an SNMP device is, and a ready-to-paste ``[[targets]]`` block.

Why: adding a customer site means dozens of devices, and choosing each one's device class by
hand is where mistakes happen (a core switch filed as a generic device opens level 2 instead of
level 1 incidents). Discovery reads the identity every device gives away (sysObjectID,
sysDescr, sysName, sysLocation) plus the vendor identity OIDs of devices that hide it (the
Hikvision camera recording has no system group at all; Synology answers as a plain NET-SNMP
Linux box), and matches them against :data:`RULES`: data, in order, the first match wins.

Then, unless told not to, it polls the device once with the proposed class and lists the items
the device does not expose under ``disabled`` (each with the reason as a comment), so the
inspection record does not carry a permanent UNKNOWN for, say, a camera without a clock in its
MIB. Items that failed for a passing reason (a timeout) are reported, not disabled.

The rules were checked against every recording in shared/fixtures/snmprec: switches (Huawei
VRP and YunShan, H3C/HP Comware, Cisco IOS and IOS-XE, Ruijie, Cumulus, Juniper QFX, MikroTik
CRS) are ``switch``; their router and firewall lines (Huawei AR/USG, H3C MSR/SecPath, Cisco
ISR/ASR/ASA, Juniper MX/SRX, other MikroTik, Ruijie RSR/EG) are ``router``; Hikvision, Dahua,
Axis, Hanwha/Samsung and Vivotek cameras and recorders are ``camera`` / ``nvr``; APC and RFC 1628
UPSes ``ups``; Synology ``nas``; Windows ``windows-server``; other NET-SNMP hosts (Linux, BSD)
``server-snmp``, the HOST-RESOURCES class; anything else the generic ``snmp-device``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec

from agent.config import SnmpConfig, TargetConfig
from agent.probes.snmp_values import descr_lines, text
from agent.snmp_client import SnmpClient, SnmpClientError
from checks.catalogue import DeviceClass, load_catalogue
from checks.status import Status
from checks.topics import NAME_RE

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"

HIKVISION_MODEL = "1.3.6.1.4.1.39165.1.1.0"
HIKVISION_NVR_TYPE = "1.3.6.1.4.1.50001.1.100.0"
DAHUA_MODEL = "1.3.6.1.4.1.1004849.2.1.2.6.0"
APC_UPS_MODEL = "1.3.6.1.4.1.318.1.1.1.1.1.1.0"
UPS_MIB_MODEL = "1.3.6.1.2.1.33.1.1.2.0"
SYNOLOGY_MODEL = "1.3.6.1.4.1.6574.1.5.1.0"
#: Identity OIDs read besides the system group: vendor MIBs that name the device.
IDENTITY_OIDS = (
    HIKVISION_MODEL,
    HIKVISION_NVR_TYPE,
    DAHUA_MODEL,
    APC_UPS_MODEL,
    UPS_MIB_MODEL,
    SYNOLOGY_MODEL,
)
SYSTEM_OIDS = (SYS_DESCR, SYS_OBJECT_ID, SYS_NAME, SYS_LOCATION)

# enterprise numbers (sysObjectID prefixes)
HUAWEI = "1.3.6.1.4.1.2011"
H3C = "1.3.6.1.4.1.25506"
CISCO = "1.3.6.1.4.1.9"
JUNIPER = "1.3.6.1.4.1.2636"
MIKROTIK = "1.3.6.1.4.1.14988"
RUIJIE = "1.3.6.1.4.1.4881"
HIKVISION_NVR = "1.3.6.1.4.1.50001"
DAHUA = "1.3.6.1.4.1.1004849"
AXIS = "1.3.6.1.4.1.368"
HANWHA = "1.3.6.1.4.1.36849"
VIVOTEK = "1.3.6.1.4.1.23465"
APC = "1.3.6.1.4.1.318"
QNAP = "1.3.6.1.4.1.24681"
WINDOWS = "1.3.6.1.4.1.311.1.1.3"
NET_SNMP = "1.3.6.1.4.1.8072"
SWITCH_VENDORS = (
    "1.3.6.1.4.1.40310",  # Cumulus
    "1.3.6.1.4.1.30065",  # Arista
    "1.3.6.1.4.1.6027",  # Dell Force10 / OS10
    "1.3.6.1.4.1.47196",  # Aruba CX
)


@dataclass(frozen=True, slots=True)
class Rule:
    """Propose ``device_class`` when every given condition holds: the sysObjectID starts with
    one of ``sys_object_id``, the device answers every OID in ``identity``, and ``text`` (a
    case-insensitive regular expression) is found in sysDescr or the vendor identity strings.
    ``reason`` is shown to the operator."""

    device_class: str
    reason: str
    sys_object_id: tuple[str, ...] = ()
    identity: tuple[str, ...] = ()
    text: str = ""


ROUTER_WORDS = {
    HUAWEI: r"\b(AR\d|NE\d|USG|Eudemon|SRG|NetEngine)",
    H3C: r"\b(MSR|SR\d{2}|SecPath|VSR|F\d{3,4}\b)",
    CISCO: (
        r"\b(ISR|ASR|ASA\b|Adaptive Security|Firepower|CSR1000V|IOS[ -]XR"
        r"|C(1900|2900|3900|8\d\d)\b)"
    ),
    JUNIPER: r"\b(mx\d|srx\d|ptx\d|acx\d|vmx)",
    RUIJIE: r"\b(RSR|RG-EG|EG\d|RG-WALL|NBR)",
}

#: In order; the first rule that matches decides.
RULES: tuple[Rule, ...] = (
    # video: cameras and recorders (recorders first: they share the vendor MIBs)
    Rule(
        "nvr",
        "Hikvision recorder (HIKVISION-MIB model DS-7/8/9…)",
        identity=(HIKVISION_MODEL,),
        text=r"\bi?DS-[789]\d|\bNVR\b|\bDVR\b",
    ),
    Rule("camera", "Hikvision camera (HIKVISION-MIB 39165)", identity=(HIKVISION_MODEL,)),
    Rule("nvr", "Hikvision recorder (HIKVISION-MIB 50001)", sys_object_id=(HIKVISION_NVR,)),
    Rule("nvr", "Hikvision recorder (HIKVISION-MIB 50001)", identity=(HIKVISION_NVR_TYPE,)),
    Rule(
        "nvr",
        "Dahua recorder (model names NVR/DVR/XVR)",
        sys_object_id=(DAHUA,),
        text=r"NVR|DVR|XVR|HCVR|IVSS|EVS",
    ),
    Rule("camera", "Dahua camera", sys_object_id=(DAHUA,)),
    Rule("nvr", "Axis recorder", sys_object_id=(AXIS,), text=r"recorder"),
    Rule("camera", "Axis camera (AXIS-VIDEO-MIB)", sys_object_id=(AXIS,)),
    Rule(
        "nvr", "Hanwha/Samsung recorder", sys_object_id=(HANWHA,), text=r"\b(SRN|XRN|PRN|WRN|NVR)"
    ),
    Rule("camera", "Hanwha/Samsung (iPolis/Wisenet) camera", sys_object_id=(HANWHA,)),
    Rule("nvr", "Vivotek recorder", sys_object_id=(VIVOTEK,), text=r"NVR|video recorder"),
    Rule("camera", "Vivotek camera", sys_object_id=(VIVOTEK,)),
    # power and storage
    Rule("ups", "APC UPS (PowerNet-MIB upsBasicIdentModel)", identity=(APC_UPS_MODEL,)),
    Rule("ups", "UPS speaking RFC 1628 UPS-MIB", identity=(UPS_MIB_MODEL,)),
    Rule("nas", "Synology NAS (SYNOLOGY-SYSTEM-MIB)", identity=(SYNOLOGY_MODEL,)),
    Rule("nas", "QNAP NAS", sys_object_id=(QNAP,)),
    # servers
    Rule("windows-server", "Windows (Microsoft sysObjectID)", sys_object_id=(WINDOWS,)),
    Rule("windows-server", "Windows (sysDescr)", text=r"\bSoftware: Windows\b"),
    # network: router and firewall lines first, then each vendor's switches
    *(
        Rule(
            "router",
            f"router/firewall line of {vendor_name}",
            sys_object_id=(prefix,),
            text=ROUTER_WORDS[prefix],
        )
        for prefix, vendor_name in (
            (HUAWEI, "Huawei"),
            (H3C, "H3C/HPE Comware"),
            (CISCO, "Cisco"),
            (JUNIPER, "Juniper"),
            (RUIJIE, "Ruijie"),
        )
    ),
    Rule("switch", "Huawei switch (VRP / YunShan)", sys_object_id=(HUAWEI,)),
    Rule("switch", "H3C/HPE Comware switch", sys_object_id=(H3C,)),
    Rule("switch", "Cisco switch (IOS / IOS-XE / NX-OS)", sys_object_id=(CISCO,)),
    Rule("switch", "Juniper switch (QFX/EX)", sys_object_id=(JUNIPER,), text=r"\b(qfx|ex\d)"),
    Rule("router", "Juniper router", sys_object_id=(JUNIPER,)),
    Rule(
        "switch", "MikroTik Cloud Router Switch (CRS)", sys_object_id=(MIKROTIK,), text=r"\bCRS\d"
    ),
    Rule("router", "MikroTik RouterOS router", sys_object_id=(MIKROTIK,)),
    Rule("switch", "Ruijie switch", sys_object_id=(RUIJIE,)),
    Rule("switch", "switch vendor (Cumulus, Arista, Dell, Aruba)", sys_object_id=SWITCH_VENDORS),
    # by words only, for vendors not listed above
    Rule("nvr", "sysDescr names a video recorder", text=r"\bNVR\b|network video recorder"),
    Rule("camera", "sysDescr names a camera", text=r"camera|\bIPC\b"),
    Rule("switch", "sysDescr names a switch", text=r"\bswitch\b"),
    Rule("router", "sysDescr names a router or firewall", text=r"\brouter\b|firewall"),
    Rule(
        "server-snmp",
        "NET-SNMP host (Linux/BSD) with HOST-RESOURCES-MIB",
        sys_object_id=(NET_SNMP,),
    ),
    Rule("server-snmp", "Linux/BSD host", text=r"^(Linux|FreeBSD|OpenBSD|NetBSD)\b"),
)
FALLBACK_CLASS = "snmp-device"


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device says about itself."""

    sys_descr: str = ""
    sys_object_id: str = ""
    sys_name: str = ""
    sys_location: str = ""
    vendor: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_scalars(cls, scalars: Mapping[str, Any]) -> Identity:
        return cls(
            sys_descr=" ".join(descr_lines(scalars.get(SYS_DESCR))),
            sys_object_id=text(scalars.get(SYS_OBJECT_ID)).lstrip("."),
            sys_name=text(scalars.get(SYS_NAME)),
            sys_location=text(scalars.get(SYS_LOCATION)),
            vendor={oid: text(scalars[oid]) for oid in IDENTITY_OIDS if scalars.get(oid)},
        )

    @property
    def haystack(self) -> str:
        return "\n".join([self.sys_descr, *self.vendor.values()])


def _matches(rule: Rule, who: Identity) -> bool:
    if rule.sys_object_id and not any(
        f"{who.sys_object_id}.".startswith(f"{prefix}.") for prefix in rule.sys_object_id
    ):
        return False
    if any(oid not in who.vendor for oid in rule.identity):
        return False
    return not rule.text or any(
        re.search(rule.text, line, re.IGNORECASE) for line in who.haystack.splitlines()
    )


def classify(who: Identity, rules: Sequence[Rule] = RULES) -> tuple[str, str]:
    """(device class, why) for a device's identity."""
    for rule in rules:
        if _matches(rule, who):
            return rule.device_class, rule.reason
    return FALLBACK_CLASS, "no rule matched; the generic SNMP checklist"


class DiscoverError(Exception):
    """The device could not be asked (no answer, bad settings); the message says why."""


@dataclass(slots=True)
class Discovery:
    """The outcome: the device's identity, the proposed class, items to disable (check id →
    reason), and items that failed for another reason during the trial poll."""

    address: str
    snmp: SnmpConfig
    identity: Identity
    device_class: str
    reason: str
    disabled: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    trial: bool = False


def parse_host(spec: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address → (host, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, ""
    if not host:
        raise ValueError(f"{spec!r}: no host")
    if not port:
        return host, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{spec!r}: port must be a number 1-65535")
    return host, int(port)


#: Words in an UNKNOWN's reason that mean "the device has no such data" (not a passing fault).
_ABSENT = re.compile(r"expose", re.IGNORECASE)


async def discover(
    address: str,
    snmp: SnmpConfig,
    *,
    trial: bool = True,
    classes: Mapping[str, DeviceClass] | None = None,
) -> Discovery:
    """Identify the device at ``address``; with ``trial``, poll its class's items once."""
    client = SnmpClient(address, snmp)
    try:
        scalars = await client.get_many([*SYSTEM_OIDS, *IDENTITY_OIDS])
    except SnmpClientError as exc:
        raise DiscoverError(str(exc)) from exc
    finally:
        await client.close()
    if not scalars:
        raise DiscoverError(f"{address}: the device answered but exposes none of the identity OIDs")
    who = Identity.from_scalars(scalars)
    device_class, reason = classify(who)
    found = Discovery(address, snmp, who, device_class, reason)
    if trial:
        await _trial(found, classes if classes is not None else load_catalogue())
    return found


async def _trial(found: Discovery, classes: Mapping[str, DeviceClass]) -> None:
    """One collection of the class's SNMP items, as the agent would run it."""
    from agent.probes.snmp import SnmpProbe

    dc = classes[found.device_class]
    checks = {it.id for it in dc.items if it.method == "snmp"}
    target = TargetConfig(
        name="discover", device_class=found.device_class, address=found.address, snmp=found.snmp
    )
    probe = SnmpProbe({})
    try:
        observations = await probe.collect(target, checks)
    finally:
        await probe.close()
    found.trial = True
    measured = {o.check for o in observations if o.status is not Status.UNKNOWN}
    for obs in observations:
        if obs.status is not Status.UNKNOWN or obs.check in measured:
            continue  # one interface without counters does not make the check useless
        bucket = found.disabled if _ABSENT.search(obs.summary) else found.problems
        bucket.setdefault(obs.check, obs.summary)


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def target_name(found: Discovery) -> str:
    """sysName when it is a usable target name, else class and address."""
    name = found.identity.sys_name
    if NAME_RE.fullmatch(name) and name.lower() not in ("localhost", "private"):
        return name
    slug = re.sub(r"[^A-Za-z0-9]+", "-", found.address).strip("-")
    return f"{found.device_class}-{slug}"[:64]


def render(found: Discovery) -> str:
    """The ``[[targets]]`` block for agent.toml, with what was seen as comments."""
    who, snmp = found.identity, found.snmp
    lines = [
        f"# {found.address}: class {found.device_class!r} ({found.reason})",
        f"# sysObjectID {who.sys_object_id or '(none)'}",
    ]
    if who.sys_descr:
        lines.append(f"# sysDescr {who.sys_descr[:150]}")
    lines += [f"# {oid} = {value[:80]}" for oid, value in who.vendor.items()]
    for check, reason in sorted(found.problems.items()):
        lines.append(f"# {check} failed during discovery, not disabled: {reason[:120]}")
    lines += [
        "[[targets]]",
        f"name = {_toml(target_name(found))}",
        f"class = {_toml(found.device_class)}",
        f"address = {_toml(found.address)}",
    ]
    if who.sys_location and who.sys_location.lower() not in ("<private>", "unknown"):
        lines.append(f"location = {_toml(who.sys_location)}")
    if found.disabled:
        lines.append("disabled = [")
        lines += [
            f"    {_toml(check)},  # {reason[:100]}"
            for check, reason in sorted(found.disabled.items())
        ]
        lines.append("]")
    lines.append("[targets.snmp]")
    defaults = SnmpConfig()
    lines.append(f"version = {_toml(snmp.version)}")
    if snmp.version == "3":
        for key in ("user", "auth_protocol", "priv_protocol"):
            value = getattr(snmp, key)
            if value:
                lines.append(f"{key} = {_toml(value)}")
        for key in ("auth_key", "priv_key"):
            secret = getattr(snmp, key)
            if secret is not None:
                lines.append(f"{key} = {_toml(secret.get_secret_value())}")
    else:
        lines.append(f"community = {_toml(snmp.community.get_secret_value())}")
    for key in ("port", "timeout", "retries", "max_repetitions"):
        value = getattr(snmp, key)
        if value != getattr(defaults, key):
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def command(
    host_spec: str,
    snmp_fields: Mapping[str, Any],
    *,
    trial: bool = True,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """``fieldmon agent discover``: 0 and the block on ``out``; 1 if the device does not
    answer; 2 for bad arguments (reported before anything is sent)."""
    try:
        host, port = parse_host(host_spec)
        fields = dict(snmp_fields)
        if port is not None:
            fields["port"] = port
        snmp = SnmpConfig.from_dict(fields)
    except (ValueError, msgspec.ValidationError) as exc:
        print(f"fieldmon: discover: {exc}", file=err)
        return 2
    try:
        found = asyncio.run(discover(host, snmp, trial=trial))
    except DiscoverError as exc:
        print(f"fieldmon: discover: {exc}", file=err)
        return 1
    out.write(render(found))
    return 0
