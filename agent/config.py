"""Agent configuration (``agent.toml``), validated completely before anything connects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from checks.catalogue import DeviceClass, load_catalogue
from checks.thresholds import Threshold, parse_threshold
from fieldmon.configfile import BrokerConfig, ConfigError, Name, StrictModel, load_model


class MqttConfig(BrokerConfig):
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    #: Longest pause between reconnection attempts when the broker is unreachable.
    max_backoff: Annotated[float, Field(gt=0, le=600)] = 60.0


class SnmpConfig(StrictModel):
    version: Literal["1", "2c", "3"] = "2c"
    port: Annotated[int, Field(ge=1, le=65535)] = 161
    community: SecretStr = SecretStr("public")
    user: str | None = None
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["des", "aes", "aes192", "aes256"] | None = None
    priv_key: SecretStr | None = None
    timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    max_repetitions: Annotated[int, Field(ge=1, le=100)] = 25

    @model_validator(mode="after")
    def _v3_needs_user(self) -> SnmpConfig:
        if self.version == "3":
            if not self.user:
                raise ValueError("SNMPv3 needs 'user'")
            if self.priv_protocol and not self.auth_protocol:
                raise ValueError("SNMPv3 privacy (priv_protocol) needs auth_protocol too")
            if self.auth_protocol and not self.auth_key:
                raise ValueError("'auth_key' is required with auth_protocol")
            if self.priv_protocol and not self.priv_key:
                raise ValueError("'priv_key' is required with priv_protocol")
        return self


class TargetConfig(StrictModel):
    """One device to inspect. Its class's checklist decides what is checked and by which
    method; the target supplies how to reach it: no ``address`` means the agent's own host
    (``local`` items), a ``[targets.snmp]`` section enables ``snmp`` items, and so on."""

    name: Name
    device_class: str = Field(alias="class")
    address: str | None = None
    location: str = ""
    parent: Name | None = None
    snmp: SnmpConfig | None = None
    #: Per-check overrides of the catalogue: interval in seconds, threshold table, disabled.
    intervals: dict[str, Annotated[int, Field(ge=5)]] = {}
    thresholds: dict[str, dict[str, Any]] = {}
    disabled: list[str] = []

    @model_validator(mode="after")
    def _snmp_needs_address(self) -> TargetConfig:
        if self.snmp is not None and not self.address:
            raise ValueError("a target with [snmp] settings needs 'address'")
        return self

    @property
    def is_local(self) -> bool:
        """The agent's own host: measured directly, not over the network."""
        return self.address is None

    def methods(self) -> set[str]:
        """The polling methods this target is configured for."""
        out = {"local"} if self.is_local else set()
        if self.snmp is not None:
            out.add("snmp")
        return out

    @field_validator("thresholds")
    @classmethod
    def _thresholds_parse(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for check, table in value.items():
            try:
                parse_threshold(table)
            except ValueError as exc:
                raise ValueError(f"threshold for {check!r}: {exc}") from None
        return value

    def threshold_for(self, check: str, default: Threshold | None) -> Threshold | None:
        table = self.thresholds.get(check)
        return parse_threshold(table) if table is not None else default


class OutboxConfig(StrictModel):
    #: Results kept while the broker is unreachable; the oldest are dropped (and counted) beyond.
    max_results: Annotated[int, Field(ge=100, le=10_000_000)] = 500_000
    batch_size: Annotated[int, Field(ge=1, le=2000)] = 500


class AgentConfig(StrictModel):
    site: Name
    agent: Name
    state_dir: Path = Path("/var/lib/fieldmon")
    catalogue_dirs: list[Path] = []
    ntp_server: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: How often inspection-only items (inventory) are collected, in seconds.
    inspection_interval: Annotated[int, Field(ge=60)] = 86_400
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    targets: Annotated[list[TargetConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_targets(self) -> AgentConfig:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        return self


def load_agent_config(path: Path | None, data: dict[str, Any] | None = None) -> AgentConfig:
    """Load and cross-check an agent configuration; ConfigError names file, key and problem."""
    cfg = load_model(AgentConfig, path, data)
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
    return cfg


#: Item methods that are polled by a probe (traps arrive by themselves; manual is a person).
POLLED_METHODS = ("local", "snmp")


def _check_methods(where: object, i: int, target: TargetConfig, dc: DeviceClass) -> None:
    wanted = {it.method for it in dc.items if it.id not in target.disabled}
    if "snmp" in wanted and target.snmp is None and not (target.is_local and "local" in wanted):
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
