"""Agent configuration (``agent.toml``), validated completely before anything connects."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from agent.net_config import NetConfig
from checks.catalogue import DeviceClass, load_catalogue
from checks.thresholds import Threshold, parse_threshold
from fieldmon.config_structs import (
    BrokerConfig,
    Name,
    Port,
    StrictStruct,
    load_struct,
    resolve_secrets,
)
from fieldmon.configfile import ConfigError
from fieldmon.secrets import Secret


class MqttConfig(BrokerConfig):
    keepalive: Annotated[int, Meta(ge=5, le=3600)] = 30
    #: Longest pause between reconnection attempts when the broker is unreachable.
    max_backoff: Annotated[float, Meta(gt=0, le=600)] = 60.0


AuthProtocol = Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
PrivProtocol = Literal["des", "aes", "aes192", "aes256"]


class SnmpConfig(StrictStruct):
    version: Literal["1", "2c", "3"] = "2c"
    port: Port = 161
    #: Never None once loaded: "public" unless given (also ``community_env``/``_file``).
    community: Secret = None  # type: ignore[assignment]
    community_env: str | None = None
    community_file: Path | None = None
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: Secret | None = None
    auth_key_env: str | None = None
    auth_key_file: Path | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: Secret | None = None
    priv_key_env: str | None = None
    priv_key_file: Path | None = None
    timeout: Annotated[float, Meta(gt=0, le=60)] = 2.0
    retries: Annotated[int, Meta(ge=0, le=5)] = 1
    max_repetitions: Annotated[int, Meta(ge=1, le=100)] = 25

    def __post_init__(self) -> None:
        resolve_secrets(
            self, "community", "auth_key", "priv_key", defaults={"community": Secret("public")}
        )
        if self.version == "3":
            if not self.user:
                raise ValueError("SNMPv3 needs 'user'")
            if self.priv_protocol and not self.auth_protocol:
                raise ValueError("SNMPv3 privacy (priv_protocol) needs auth_protocol too")
            if self.auth_protocol and not self.auth_key:
                raise ValueError("'auth_key' is required with auth_protocol")
            if self.priv_protocol and not self.priv_key:
                raise ValueError("'priv_key' is required with priv_protocol")


SshVendor = Literal["ios", "comware", "vrp", "junos", "routeros", "cumulus", "linux"]


class SshConfig(StrictStruct):
    """How the agent logs in to a device to back up its configuration (agent/probes/ssh.py).

    Host keys are never accepted blindly: an unknown or changed key refuses the session, since
    a silently replaced key is exactly what an intrusion looks like. ``accept_new_host_key``
    opts one target into trust-on-first-use (the first key seen is recorded, later changes are
    still refused).
    """

    vendor: SshVendor
    username: Annotated[str, Meta(min_length=1)]
    port: Port = 22
    password: Secret | None = None
    password_env: str | None = None
    password_file: Path | None = None
    key_file: Path | None = None
    #: Trusted host keys (OpenSSH format). Unset: ~/.ssh/known_hosts (read only) plus
    #: ``<state_dir>/ssh_known_hosts``, where trust-on-first-use records new keys.
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    #: Seconds for each network step (connect, login, each command's output to end).
    timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0
    #: linux/cumulus: the files whose contents make up the configuration backup.
    files: list[str] | None = None

    @property
    def session_budget(self) -> float:
        """Seconds one whole session may take: a few steps of ``timeout`` each, so that a
        device that trickles output forever is still cut off."""
        return self.timeout * 6

    def __post_init__(self) -> None:
        resolve_secrets(self, "password")
        if self.password is None and self.key_file is None:
            raise ValueError("SSH needs 'password' or 'key_file'")
        if self.files is not None:
            if self.vendor not in ("linux", "cumulus"):
                raise ValueError("'files' applies to vendor 'linux' or 'cumulus' only")
            for path in self.files:
                if not path.startswith("/") or any(c in path for c in "\n\r\x00"):
                    raise ValueError(f"files: {path!r} must be an absolute path")


class TargetConfig(StrictStruct):
    """One device to inspect. Its class's checklist decides what is checked and by which
    method; the target supplies how to reach it: no ``address`` means the agent's own host
    (``local`` items), a ``[targets.snmp]`` section enables ``snmp`` items, and so on."""

    name: Name
    device_class: str = msgspec.field(name="class")
    address: str | None = None
    location: str = ""
    parent: Name | None = None
    snmp: SnmpConfig | None = None
    ssh: SshConfig | None = None
    #: Ping, TCP ports, HTTP(S) and RTSP checks (agent/probes/net.py).
    net: NetConfig | None = None
    #: Per-check overrides of the catalogue: interval in seconds, threshold table, disabled.
    intervals: dict[str, Annotated[int, Meta(ge=5)]] = {}
    thresholds: dict[str, dict[str, Any]] = {}
    disabled: list[str] = []
    #: Local host only: process names that must be running (``proc.running``, one item each).
    processes: list[Annotated[str, Meta(min_length=1, max_length=64)]] = []
    #: Local host only: listening ports accepted even when absent from the recorded baseline.
    allowed_ports: list[Port] = []

    def __post_init__(self) -> None:
        if self.snmp is not None and not self.address:
            raise ValueError("a target with [snmp] settings needs 'address'")
        if self.net is not None and self.net.needs_address and not self.address:
            raise ValueError("a target with [net] ping or tcp_ports needs 'address'")
        if self.ssh is not None and not self.address:
            raise ValueError("a target with [ssh] settings needs 'address'")
        for check, table in self.thresholds.items():
            try:
                parse_threshold(table)
            except ValueError as exc:
                raise ValueError(f"threshold for {check!r}: {exc}") from None

    @property
    def is_local(self) -> bool:
        """The agent's own host: measured directly, not over the network."""
        return self.address is None

    def methods(self) -> set[str]:
        """The polling methods this target is configured for."""
        out = {"local"} if self.is_local else set()
        if self.snmp is not None:
            out.add("snmp")
        if self.ssh is not None:
            out.add("ssh")
        if self.net is not None:
            out.add("net")
        return out

    def threshold_for(self, check: str, default: Threshold | None) -> Threshold | None:
        table = self.thresholds.get(check)
        return parse_threshold(table) if table is not None else default


class OutboxConfig(StrictStruct):
    #: Results kept while the broker is unreachable; the oldest are dropped (and counted) beyond.
    max_results: Annotated[int, Meta(ge=100, le=10_000_000)] = 500_000
    #: … and beyond this size on disk, and for results older than this.
    max_mib: Annotated[float, Meta(gt=0, le=100_000)] = 256
    max_age_hours: Annotated[float, Meta(gt=0, le=24 * 365)] = 720
    batch_size: Annotated[int, Meta(ge=1, le=2000)] = 500


_OID = re.compile(r"\.?[0-9]+(\.[0-9]+)+")


def _numeric_oid(value: str, what: str) -> str:
    """A dotted numeric OID without the leading dot: trap OIDs are matched as plain text."""
    if not _OID.fullmatch(value.strip()):
        raise ValueError(f"{what} {value!r} must be a numeric OID such as 1.3.6.1.4.1.318.0.5")
    return value.strip().lstrip(".")


class TrapUserConfig(StrictStruct):
    """An SNMPv3 (USM) user allowed to send notifications to the agent's receiver.

    USM keys are localised to the *authoritative* engine: for informs that is the receiver,
    so one user entry serves every device; for traps it is the sending device, so each device's
    engine ID must be listed in ``engine_ids`` (or the device configured to send informs).
    """

    user: Annotated[str, Meta(min_length=1, max_length=32)]
    auth_protocol: AuthProtocol | None = None
    auth_key: Secret | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: Secret | None = None
    #: snmpEngineID (hex) of each device that sends this user's traps.
    engine_ids: list[str] = []

    def __post_init__(self) -> None:
        self.engine_ids = [engine_id_hex(v) for v in self.engine_ids]
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("SNMPv3 privacy (priv_protocol) needs auth_protocol too")
        for proto, key, name in (
            (self.auth_protocol, self.auth_key, "auth"),
            (self.priv_protocol, self.priv_key, "priv"),
        ):
            if proto and key is None:
                raise ValueError(f"'{name}_key' is required with {name}_protocol")
            if key is not None and not proto:
                raise ValueError(f"'{name}_key' is given without {name}_protocol")
            if key is not None and len(key.get_secret_value()) < 8:
                raise ValueError(f"'{name}_key' must be at least 8 characters (RFC 3414)")

    @property
    def security_level(self) -> int:
        """The least USM level this user's notifications must carry: 1 noAuthNoPriv,
        2 authNoPriv, 3 authPriv."""
        return 3 if self.priv_protocol else 2 if self.auth_protocol else 1


def engine_id_hex(value: str) -> str:
    """An snmpEngineID as lower-case hex (``0x`` and ``:`` allowed on input), 5-32 octets."""
    text = value.strip().lower().removeprefix("0x").replace(":", "")
    try:
        octets = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"engine ID {value!r} is not hexadecimal") from None
    if not 5 <= len(octets) <= 32:
        raise ValueError(f"engine ID {value!r} must be 5 to 32 octets, not {len(octets)}")
    return text


class TrapMapConfig(StrictStruct):
    """One vendor notification the built-in table does not know (camera and NVR alarms)."""

    oid: str
    check: str
    status: Literal["OK", "WARN", "UNKNOWN", "CRIT"] = "CRIT"
    #: Fixed item name, or ``item_from``: the varbind OID prefix whose value names the item.
    item: str = ""
    item_from: str | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        self.oid = _numeric_oid(self.oid, "oid")
        if self.item_from is not None:
            self.item_from = _numeric_oid(self.item_from, "item_from")


class TrapsConfig(StrictStruct):
    """The SNMP trap and inform receiver (optional): events arrive as they happen."""

    listen: str = "0.0.0.0"
    port: Port = 162
    #: SNMPv1/v2c communities accepted; anything else is rejected and counted.
    communities: list[Secret] = []
    users: list[TrapUserConfig] = []
    #: The receiver's own snmpEngineID (hex), which v3 informs are keyed to; generated if unset.
    engine_id: str | None = None
    mappings: list[TrapMapConfig] = msgspec.field(default_factory=list, name="map")

    def __post_init__(self) -> None:
        try:
            self.listen = str(ipaddress.IPv4Address(self.listen))
        except ValueError:
            raise ValueError(
                f"listen {self.listen!r} must be an IPv4 address such as 0.0.0.0"
            ) from None
        if self.engine_id is not None:
            self.engine_id = engine_id_hex(self.engine_id)
        if not self.communities and not self.users:
            raise ValueError(
                "the trap receiver would reject everything: give 'communities' (v1/v2c)"
                " and/or [[traps.users]] (v3)"
            )
        if any(not c.get_secret_value() for c in self.communities):
            raise ValueError("communities must not be empty strings")
        names = [u.user for u in self.users]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"trap users must be unique; repeated: {', '.join(dupes)}")
        oids = [m.oid for m in self.mappings]
        dupes = sorted({o for o in oids if oids.count(o) > 1})
        if dupes:
            raise ValueError(f"traps.map: each oid once; repeated: {', '.join(dupes)}")


class AgentConfig(StrictStruct):
    site: Name
    agent: Name
    targets: Annotated[list[TargetConfig], Meta(min_length=1)]
    state_dir: Path = Path("/var/lib/fieldmon")
    catalogue_dirs: list[Path] = []
    ntp_server: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: How often inspection-only items (inventory) are collected, in seconds.
    inspection_interval: Annotated[int, Meta(ge=60)] = 86_400
    #: Collections running at once, over all targets. Without a bound, an agent with
    #: hundreds of devices would send every first poll in the same instant, and a device
    #: (or the agent's host) swamped that way times out and reads as down.
    max_concurrent_collections: Annotated[int, Meta(ge=1, le=10_000)] = 64
    #: Targets started per second when the agent starts, so that their polls keep a
    #: staggered rhythm afterwards instead of all falling due together.
    start_rate: Annotated[float, Meta(gt=0, le=10_000)] = 20.0
    mqtt: MqttConfig = msgspec.field(default_factory=MqttConfig)
    outbox: OutboxConfig = msgspec.field(default_factory=OutboxConfig)
    #: SNMP trap/inform receiver; absent = no receiver (and pysnmp is never loaded).
    traps: TrapsConfig | None = None

    def __post_init__(self) -> None:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")


def load_agent_config(path: Path | None, data: dict[str, Any] | None = None) -> AgentConfig:
    """Load and cross-check an agent configuration; ConfigError names file, key and problem."""
    cfg = load_struct(AgentConfig, path, data)
    where = path or "<embedded defaults>"
    try:
        catalogue = load_catalogue(cfg.catalogue_dirs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for i, target in enumerate(cfg.targets):
        dc = catalogue.get(target.device_class)
        if dc is None:
            raise ConfigError(
                f"{where}: targets[{i}].class: unknown device class {target.device_class!r}"
                f" (known: {', '.join(sorted(catalogue))})"
            )
        _check_overrides(where, i, target, dc)
        _check_methods(where, i, target, dc)
    if cfg.traps is not None:
        _check_trap_map(where, cfg.traps, catalogue)
    return cfg


def _check_trap_map(where: object, traps: TrapsConfig, catalogue: dict[str, DeviceClass]) -> None:
    """A mapped notification must land on a trap item some class defines, or it is lost."""
    known = sorted({it.id for dc in catalogue.values() for it in dc.items if it.method == "trap"})
    for i, mapping in enumerate(traps.mappings):
        if mapping.check not in known:
            raise ConfigError(
                f"{where}: traps.map[{i}].check: {mapping.check!r} is not a trap item of any"
                f" device class (trap items: {', '.join(known) or 'none'})"
            )


#: Item methods that are polled by a probe (traps arrive by themselves; manual is a person).
POLLED_METHODS = ("local", "snmp", "ssh", "net")


def _check_methods(where: object, i: int, target: TargetConfig, dc: DeviceClass) -> None:
    wanted = {it.method for it in dc.items if it.id not in target.disabled}
    # A device with SNMP switched off can still be watched over [net] (ping, RTSP, HTTP).
    if (
        "snmp" in wanted
        and target.snmp is None
        and target.net is None
        and not (target.is_local and "local" in wanted)
    ):
        raise ConfigError(
            f"{where}: targets[{i}]: class {dc.name!r} is checked over SNMP; give 'address'"
            " and add a [targets.snmp] section (community, or v3 user and keys)"
        )
    if "local" in wanted and not target.is_local:
        raise ConfigError(
            f"{where}: targets[{i}]: class {dc.name!r} is measured on the agent's own host;"
            " such a target has no 'address'"
        )
    if not (wanted & target.methods()):
        raise ConfigError(
            f"{where}: targets[{i}]: nothing to check: class {dc.name!r} uses"
            f" {', '.join(sorted(wanted))}, the target is configured for none of them"
        )


def _check_overrides(where: object, i: int, target: TargetConfig, dc: DeviceClass) -> None:
    for key in ("intervals", "thresholds"):
        for check in getattr(target, key):
            if dc.item(check) is None:
                raise ConfigError(
                    f"{where}: targets[{i}].{key}.{check}: no such check in class {dc.name!r}"
                )
    for check in target.disabled:
        if dc.item(check) is None:
            raise ConfigError(
                f"{where}: targets[{i}].disabled: no such check {check!r} in class {dc.name!r}"
            )
