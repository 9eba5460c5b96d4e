"""Collector configuration (``collector.toml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from checks.status import Status
from collector.incidents.engine import Policy
from fieldmon.configfile import BrokerConfig, Name, StrictModel, load_model


class MqttConfig(BrokerConfig):
    #: Persistent session name: the broker queues results for it while the collector is down.
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "fieldmon-collector"
    #: Use a shared subscription so several collectors split the results between them. Off
    #: by default: Mosquitto 2.0 does not restore shared subscriptions from its persistence
    #: file after a restart, so results published before the collector resubscribes would
    #: be dropped; a plain subscription on a persistent session keeps them.
    shared: bool = False
    max_backoff: Annotated[float, Field(gt=0, le=600)] = 10.0


class DatabaseConfig(StrictModel):
    #: SQLAlchemy URL: ``sqlite:///path/fieldmon.db`` (default) or ``postgresql+psycopg://…``.
    url: str = "sqlite:///var/lib/fieldmon/collector.db"


class HttpConfig(StrictModel):
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470


class IncidentConfig(StrictModel):
    open_on: list[Literal["WARN", "CRIT", "UNKNOWN"]] = ["CRIT"]
    resolve_after_ok: Annotated[int, Field(ge=1, le=100)] = 1
    agent_offline_level: Annotated[int, Field(ge=1, le=4)] = 3

    def policy(self) -> Policy:
        return Policy(
            open_on=frozenset(Status[s] for s in self.open_on),
            resolve_after_ok=self.resolve_after_ok,
            agent_offline_level=self.agent_offline_level,
        )


class SiteConfig(StrictModel):
    """What the reports print on the cover for a site."""

    name: Name
    customer: str = ""
    contract: str = ""
    title: str = ""
    maintainer: str = ""


class CollectorConfig(StrictModel):
    #: The contracts' time zone: month boundaries of inspections and times shown in reports.
    timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    catalogue_dirs: list[Path] = []
    mqtt: MqttConfig = MqttConfig()
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    incidents: IncidentConfig = IncidentConfig()
    sites: list[SiteConfig] = []

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, value: list[SiteConfig]) -> list[SiteConfig]:
        names = [s.name for s in value]
        if len(names) != len(set(names)):
            raise ValueError("site names must be unique")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def site(self, name: str) -> SiteConfig:
        for s in self.sites:
            if s.name == name:
                return s
        return SiteConfig(name=name)


def load_collector_config(path: Path | None, data: dict[str, Any] | None = None) -> CollectorConfig:
    return load_model(CollectorConfig, path, data)
