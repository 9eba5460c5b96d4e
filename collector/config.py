"""Collector configuration (``collector.toml``)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from checks.status import Status
from collector.http.auth import Principal, TokenEntry, token_digest
from collector.incidents.calendar import make_calendar
from collector.incidents.engine import Policy
from collector.incidents.rules import Rules, Window
from collector.incidents.sla import DEFAULT_TARGETS, LevelTargets, SlaPolicy
from collector.notify.config import NotifyConfig
from fieldmon.config_models import BrokerConfig, Name, StrictModel, load_model, merge_secret_sources
from fieldmon.secrets import read_secret


class MqttConfig(BrokerConfig):
    #: Persistent session name: the broker queues results for it while the collector is down.
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "fieldmon-collector"
    #: Use a shared subscription so several collectors split the results between them. Off
    #: by default: Mosquitto 2.0 does not restore shared subscriptions from its persistence
    #: file after a restart, so results published before the collector resubscribes would
    #: be dropped; a plain subscription on a persistent session keeps them.
    shared: bool = False
    #: With ``shared``: seconds a peer collector may be gone before a survivor adopts its
    #: persistent session (collector/peers.py), so its queued share of results is stored
    #: without it. 0 turns adoption off.
    takeover_after_seconds: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    max_backoff: Annotated[float, Field(gt=0, le=600)] = 10.0


class DatabaseConfig(StrictModel):
    #: SQLAlchemy URL: ``sqlite:///path/fieldmon.db`` (default) or ``postgresql+psycopg://…``.
    url: str = "sqlite:///var/lib/fieldmon/collector.db"


class HttpConfig(StrictModel):
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    #: Signs the web console's session cookies; also ``session_secret_env`` or
    #: ``session_secret_file``. Without it a random key is drawn at every start, which signs
    #: everyone out whenever the collector restarts (a warning says so).
    session_secret: SecretStr | None = None
    #: Failed console logins allowed per user name and per client address within
    #: ``login_window_seconds``; the next attempt is answered 429 until the window passes.
    login_max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    login_window_seconds: Annotated[float, Field(gt=0, le=86400)] = 300

    @model_validator(mode="before")
    @classmethod
    def _secret_sources(cls, data: Any) -> Any:
        return merge_secret_sources(data, "session_secret")

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # A short key can be guessed offline from any cookie, which forges every session.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "session_secret must be at least 32 characters (e.g. openssl rand -hex 32)"
            )
        return value


Level = Annotated[int, Field(ge=1, le=4)]
Minutes = Annotated[float, Field(gt=0)]


class IncidentConfig(StrictModel):
    open_on: list[Literal["WARN", "CRIT", "UNKNOWN"]] = ["CRIT"]
    resolve_after_ok: Annotated[int, Field(ge=1, le=100)] = 1
    agent_offline_level: Level = 3
    #: Seconds an agent may stay offline (last will) before its incident opens; covers the
    #: reconnect after a broker restart. 0 opens at once.
    agent_offline_grace_seconds: Annotated[float, Field(ge=0, le=86_400)] = 90
    flap_threshold: Annotated[int, Field(ge=2, le=1000)] = 6
    flap_window_minutes: Minutes = 60
    dependency_window_minutes: Minutes = 10
    stale_intervals: Annotated[float, Field(ge=1.5, le=100)] = 3
    stale_level: Level = 3

    def policy(self, level_overrides: dict[str, int] | None = None) -> Policy:
        return Policy(
            open_on=frozenset(Status[s] for s in self.open_on),
            resolve_after_ok=self.resolve_after_ok,
            agent_offline_level=self.agent_offline_level,
            agent_offline_grace=timedelta(seconds=self.agent_offline_grace_seconds),
            flap_threshold=self.flap_threshold,
            flap_window=timedelta(minutes=self.flap_window_minutes),
            dependency_window=timedelta(minutes=self.dependency_window_minutes),
            stale_intervals=self.stale_intervals,
            stale_level=self.stale_level,
            level_overrides=dict(level_overrides or {}),
        )


class LevelTargetsConfig(StrictModel):
    respond_minutes: Minutes | None = None
    onsite_minutes: Minutes | None = None
    restore_minutes: Minutes | None = None
    resolve_minutes: Minutes | None = None


class SlaConfig(StrictModel):
    """A contract's clocks. Unset level targets keep the defaults of the contracts
    (respond 5/5/10/10 min, on site 1 h/2 h, resolve 2 h/4 h/3 days/7 days)."""

    calendar: Literal["7x24", "workdays-cn"] = "7x24"
    working_hours: tuple[time, time] = (time(9, 0), time(18, 0))
    #: For ``workdays-cn``: statutory days off and adjusted working days (调休) that the
    #: packaged table lacks (a year it does not cover yet) or gets wrong; they win over it.
    holidays: list[date] = []
    workdays: list[date] = []
    tier2_share: Annotated[float, Field(gt=0, lt=1)] = 0.25
    tier3_share: Annotated[float, Field(gt=0, lt=1)] = 0.45
    levels: dict[Literal["1", "2", "3", "4"], LevelTargetsConfig] = {}

    @model_validator(mode="after")
    def _order(self) -> SlaConfig:
        if self.tier3_share <= self.tier2_share:
            raise ValueError("tier3_share must be greater than tier2_share")
        if self.working_hours[1] <= self.working_hours[0]:
            raise ValueError("working_hours must be [start, end] with end after start")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"{both[0]} is listed both in holidays and in workdays")
        return self

    def policy(self, tz: ZoneInfo) -> SlaPolicy:
        targets = dict(DEFAULT_TARGETS)
        for key, cfg in self.levels.items():
            base = targets[int(key)]

            def pick(value: float | None, default: timedelta | None) -> timedelta | None:
                return timedelta(minutes=value) if value is not None else default

            targets[int(key)] = LevelTargets(
                respond=pick(cfg.respond_minutes, base.respond),
                onsite=pick(cfg.onsite_minutes, base.onsite),
                restore=pick(cfg.restore_minutes, base.restore),
                resolve=pick(cfg.resolve_minutes, base.resolve) or base.resolve,
            )
        return SlaPolicy(
            calendar=make_calendar(
                self.calendar,
                tz,
                self.working_hours,
                frozenset(self.holidays),
                frozenset(self.workdays),
            ),
            targets=targets,
            tier2_share=self.tier2_share,
            tier3_share=self.tier3_share,
        )


class ContractConfig(StrictModel):
    """Per-contract rules for the sites it covers: clocks and fault levels by check id."""

    name: str
    sites: Annotated[list[Name], Field(min_length=1)]
    sla: SlaConfig = SlaConfig()
    levels: dict[str, Level] = {}


class WeeklyConfig(StrictModel):
    days: Annotated[
        list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]], Field(min_length=1)
    ]
    at: time
    hours: Annotated[float, Field(gt=0, le=168)]


class MaintenanceConfig(StrictModel):
    """A planned window: checks failing inside it open nothing and SLA clocks stop."""

    site: Name
    targets: list[Name] = []
    start: datetime | None = None
    end: datetime | None = None
    weekly: WeeklyConfig | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceConfig:
        once = self.start is not None or self.end is not None
        if once == (self.weekly is not None):
            raise ValueError("give either start and end, or weekly")
        if once:
            if self.start is None or self.end is None or self.start.tzinfo is None:
                raise ValueError("start and end need both, with a time zone offset")
            if self.end is not None and self.end <= self.start:
                raise ValueError("end must be after start")
        return self


class SiteConfig(StrictModel):
    """What the reports print on the cover for a site."""

    name: Name
    customer: str = ""
    contract: str = ""
    title: str = ""
    maintainer: str = ""
    #: The customer's contacts an approved report is mailed to (``fieldmon report mail``).
    contacts: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = []


class ReportsConfig(StrictModel):
    """Reports the running collector drafts by itself (collector/reports/schedule.py): each
    month's report on ``monthly_day`` of the next month, each quarter's on ``quarterly_day``
    of the month after it (before the 10th). Drafts keep the remarks engineers added; an
    approved report is never rewritten unless its data changed."""

    out_dir: Path
    monthly_day: Annotated[int, Field(ge=1, le=28)] = 3
    quarterly_day: Annotated[int, Field(ge=1, le=9)] = 5
    langs: Annotated[list[Literal["zh-CN", "en"]], Field(min_length=1)] = ["zh-CN"]
    formats: Annotated[list[Literal["html", "json", "pdf", "xlsx"]], Field(min_length=1)] = [
        "pdf",
        "html",
        "json",
        "xlsx",
    ]
    #: Sites to draft for; default every site under ``[[sites]]``.
    sites: list[Name] | None = None
    #: The ``[notify.channels]`` e-mail channel whose SMTP server sends reports to contacts.
    mail_channel: Name | None = None


class InspectionConfig(StrictModel):
    """When the collector asks agents to run the monthly inspection (collector/inspections.py):
    from ``monthly_day`` at ``at`` (the contract's time zone) each month, every agent of
    ``sites`` (default all) that has connected is asked once."""

    monthly_day: Annotated[int, Field(ge=1, le=28)] = 25
    at: time = time(9, 0)
    sites: list[Name] | None = None


class TokenConfig(StrictModel):
    """An API client. Give ``token_sha256`` (hex SHA-256 of the token), or the token itself
    through ``token_env``/``token_file``; ``sites`` is required for customers."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: Literal["customer", "viewer", "engineer", "admin"]
    sites: list[Name] | None = None
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    token_env: str | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        given = [x for x in (self.token_sha256, self.token_env, self.token_file) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of token_sha256, token_env, token_file")
        if self.role == "customer" and not self.sites:
            raise ValueError("a customer token needs 'sites'")
        if self.token_env or self.token_file:
            read_secret(env=self.token_env, file=self.token_file, name="token")
        return self

    def entry(self) -> TokenEntry:
        digest = self.token_sha256
        if digest is None:
            secret = read_secret(env=self.token_env, file=self.token_file, name="token")
            assert secret is not None
            digest = token_digest(secret.get_secret_value())
        sites = frozenset(self.sites) if self.sites is not None else None
        return TokenEntry(digest, Principal(self.name, self.role, sites))


class UserConfig(StrictModel):
    """A web console login. ``password_hash`` is an argon2 hash (``$argon2id$…``), never the
    password; ``sites`` is required for customers; ``lang`` picks the console's language."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Literal["customer", "viewer", "engineer", "admin"]
    sites: list[Name] | None = None
    password_hash: Annotated[str, Field(pattern=r"^\$argon2(id|i|d)\$")]
    lang: Literal["zh-CN", "en"] = "zh-CN"

    @model_validator(mode="after")
    def _customer_sites(self) -> UserConfig:
        if self.role == "customer" and not self.sites:
            raise ValueError("a customer user needs 'sites'")
        return self

    def principal(self) -> Principal:
        sites = frozenset(self.sites) if self.sites is not None else None
        return Principal(self.name, self.role, sites)


class CollectorConfig(StrictModel):
    #: The contracts' time zone: month boundaries of inspections and times shown in reports.
    timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    catalogue_dirs: list[Path] = []
    mqtt: MqttConfig = MqttConfig()
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    incidents: IncidentConfig = IncidentConfig()
    sla: SlaConfig = SlaConfig()
    contracts: list[ContractConfig] = []
    maintenance: list[MaintenanceConfig] = []
    sites: list[SiteConfig] = []
    tokens: list[TokenConfig] = []
    #: Web console logins (collector/web).
    users: list[UserConfig] = []
    notify: NotifyConfig | None = None
    #: Scheduled report drafts; none unless configured.
    reports: ReportsConfig | None = None
    #: Scheduled inspection requests to agents; none unless configured.
    inspection: InspectionConfig | None = None

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, value: list[SiteConfig]) -> list[SiteConfig]:
        names = [s.name for s in value]
        if len(names) != len(set(names)):
            raise ValueError("site names must be unique")
        return value

    @field_validator("users")
    @classmethod
    def _unique_users(cls, value: list[UserConfig]) -> list[UserConfig]:
        names = [u.name for u in value]
        if len(names) != len(set(names)):
            raise ValueError("user names must be unique")
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

    def rules(self) -> Rules:
        """Everything the incident engine applies, per site."""
        tz = self.tz
        site_policy: dict[str, Policy] = {}
        site_sla: dict[str, SlaPolicy] = {}
        for contract in self.contracts:
            for site in contract.sites:
                site_policy[site] = self.incidents.policy(contract.levels)
                site_sla[site] = contract.sla.policy(tz)
        windows = [
            Window(
                site=m.site,
                targets=frozenset(m.targets),
                start=m.start,
                end=m.end,
                days=frozenset(m.weekly.days) if m.weekly else frozenset(),
                at=m.weekly.at if m.weekly else None,
                length=timedelta(hours=m.weekly.hours) if m.weekly else timedelta(0),
                tz=tz,
                reason=m.reason,
            )
            for m in self.maintenance
        ]
        return Rules(
            policy=self.incidents.policy(),
            sla=self.sla.policy(tz),
            site_policy=site_policy,
            site_sla=site_sla,
            windows=windows,
        )

    def site(self, name: str) -> SiteConfig:
        for s in self.sites:
            if s.name == name:
                return s
        return SiteConfig(name=name)


def load_collector_config(path: Path | None, data: dict[str, Any] | None = None) -> CollectorConfig:
    return load_model(CollectorConfig, path, data)
