"""Notification settings: named channels and the routes that pick them (``[notify]``).

Channels are declared once by name (``[notify.channels.duty-sms]``) and routes refer to them,
so one DingTalk group or one SMS gateway can serve several rules without repeating its
credentials. Every secret can come inline, from the environment or from a file (see
``fieldmon.secrets``) and is resolved while the configuration is validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from checks.topics import NAME_RE
from collector.notify.model import KINDS, Kind, Notice
from fieldmon.config_models import Name, StrictModel, resolve_secret_fields

__all__ = [
    "ChannelConfig",
    "DingTalkConfig",
    "EmailConfig",
    "FeishuConfig",
    "Lang",
    "NotifyConfig",
    "RecipientGroup",
    "RetryConfig",
    "RouteConfig",
    "SmsConfig",
    "WeComConfig",
    "WebhookConfig",
]

Lang = Literal["zh-CN", "en"]
Level = Annotated[int, Field(ge=1, le=4)]
Tier = Annotated[int, Field(ge=1, le=3)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+")]
#: Deliberately loose: the mail server is the authority on addresses; this catches typos like
#: a missing "@" or a pasted "Name <addr>" where a bare address is expected.
Address = Annotated[str, Field(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$")]
Seconds = Annotated[float, Field(gt=0, le=600)]


def _secret_query(url: str, *names: str) -> str | None:
    query = parse_qs(urlsplit(url).query)
    return next((n for n in names if n in query), None)


class ChannelBase(StrictModel):
    """Settings every channel has."""

    #: Language of the messages (an e-mail channel sets it per recipient group instead).
    lang: Lang = "zh-CN"
    #: How many notices a message lists one by one; the rest are counted ("… and 490 more").
    max_items: Annotated[int, Field(ge=1, le=10000)] = 10
    #: At most ``rate_limit`` messages per ``rate_period`` seconds. Notices arriving while the
    #: channel is at its limit wait and go out together in the next message. The IM robots
    #: allow about 20 a minute and start refusing beyond.
    rate_limit: Annotated[int, Field(ge=1, le=10000)] = 20
    rate_period: Seconds = 60.0
    #: Longest one delivery attempt may take, connection and all.
    timeout: Seconds = 10.0

    def secret_values(self) -> list[str]:
        """Every secret this channel holds, for scrubbing logs."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]


class RecipientGroup(StrictModel):
    """People who read the same language get one message between them."""

    to: Annotated[list[Address], Field(min_length=1)]
    lang: Lang = "zh-CN"


class EmailConfig(ChannelBase):
    type: Literal["email"]
    host: str
    #: Default: 465 for ``tls``, 587 for ``starttls``, 25 for ``plain``.
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    #: ``starttls`` (submission port), ``tls`` (implicit TLS, "SMTPS"), or ``plain`` (only for
    #: a relay on the same host or a trusted LAN: credentials would cross the wire in clear).
    security: Literal["starttls", "tls", "plain"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    #: The From header, e.g. ``"fieldmon <noc@example.net>"``.
    sender: Annotated[str, Field(min_length=3)]
    groups: Annotated[list[RecipientGroup], Field(min_length=1)]
    #: CA bundle for a server whose certificate a private CA signed.
    ca_file: Path | None = None
    #: Skip certificate verification. Only for a lab; never on a customer network.
    insecure: bool = False
    max_items: Annotated[int, Field(ge=1, le=10000)] = 50
    timeout: Seconds = 30.0

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        resolve_secret_fields(self, "password")
        if self.password is not None and not self.username:
            raise ValueError("password is set but username is not")
        if self.username and self.password is None:
            raise ValueError("username is set but no password (or password_env/password_file)")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"tls": 465, "starttls": 587, "plain": 25}[self.security]


class WebhookConfig(ChannelBase):
    """A JSON POST to any HTTP endpoint, signed with ``X-Fieldmon-Signature: sha256=<hex>``."""

    type: Literal["webhook"]
    url: HttpUrl
    #: HMAC-SHA256 key for the signature header; without it requests are not signed.
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    #: Extra request headers (not for secrets: they are logged with the configuration).
    headers: dict[str, str] = {}
    #: Machines read this one: list every notice unless there are really many.
    max_items: Annotated[int, Field(ge=1, le=10000)] = 1000
    rate_limit: Annotated[int, Field(ge=1, le=10000)] = 60

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        resolve_secret_fields(self, "secret")
        return self


class DingTalkConfig(ChannelBase):
    """A DingTalk group's custom robot (自定义机器人), optionally with 加签 signing."""

    type: Literal["dingtalk"]
    url: HttpUrl = "https://oapi.dingtalk.com/robot/send"
    access_token: SecretStr | None = None
    access_token_env: str | None = None
    access_token_file: Path | None = None
    #: The robot's signing secret (``SEC…``); required when the robot has 加签 enabled.
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    format: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[str] = []
    at_all: bool = False
    #: For robots secured by custom keyword (自定义关键词): a word every message must contain.
    keyword: str | None = None

    @field_validator("url")
    @classmethod
    def _no_token_in_url(cls, value: str) -> str:
        if _secret_query(value, "access_token"):
            raise ValueError("put the access token in access_token (or _env/_file), not in url")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        resolve_secret_fields(self, "access_token", required=True)
        resolve_secret_fields(self, "secret")
        return self


class WeComConfig(ChannelBase):
    """A WeCom (企业微信) group robot: the webhook key is the only credential, there is no
    signature, so keep the key out of shared files (``key_env`` / ``key_file``)."""

    type: Literal["wecom"]
    url: HttpUrl = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    key: SecretStr | None = None
    key_env: str | None = None
    key_file: Path | None = None
    format: Literal["markdown", "text"] = "markdown"
    #: Mobile numbers to @-mention; WeCom honours mentions in text messages only.
    mentioned_mobiles: list[str] = []

    @field_validator("url")
    @classmethod
    def _no_key_in_url(cls, value: str) -> str:
        if _secret_query(value, "key"):
            raise ValueError("put the webhook key in key (or key_env/key_file), not in url")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        resolve_secret_fields(self, "key", required=True)
        return self


class FeishuConfig(ChannelBase):
    """A Feishu / Lark custom bot (自定义机器人), optionally with signature verification.

    The hook URL is ``url`` followed by ``token`` (the last path segment of the address the
    group settings show). For Lark use ``url = "https://open.larksuite.com/open-apis/bot/v2/hook/"``.
    """

    type: Literal["feishu"]
    url: HttpUrl = "https://open.feishu.cn/open-apis/bot/v2/hook/"
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: Path | None = None
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    #: ``card``: an interactive card with a title and markdown (lark_md); ``text``: plain text.
    format: Literal["card", "text"] = "card"

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        resolve_secret_fields(self, "token", required=True)
        resolve_secret_fields(self, "secret")
        return self


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return {p for p in ("{phone}", "{text}", "{token}") if p in value}
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value))
    return set()


class SmsConfig(ChannelBase):
    """An SMS gateway reached over HTTP, described by a request template.

    Gateways differ in everything, so the request is data: ``template`` is the JSON body (or
    the form / query fields) with ``{phone}``, ``{text}`` and ``{token}`` placeholders, sent
    once per number. Example: ``template = { mobile = "{phone}", content = "{text}" }``.
    """

    type: Literal["sms"]
    url: HttpUrl
    method: Literal["POST", "GET"] = "POST"
    #: How a POST carries the template: a JSON body or an HTML form. A GET puts it in the query.
    encoding: Literal["json", "form"] = "json"
    template: dict[str, Any]
    #: Extra headers. ``{token}`` is replaced in their values (``Authorization = "Bearer {token}"``)
    #: and in ``url`` (for gateways that want the key in the query).
    headers: dict[str, str] = {}
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: Path | None = None
    numbers: Annotated[
        list[Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{4,19}$")]], Field(min_length=1)
    ]
    #: Longest text sent, in characters (70 is one SMS segment of Chinese text).
    max_length: Annotated[int, Field(ge=10, le=2000)] = 70
    #: Fields the gateway's JSON answer must have for success, e.g. ``{ code = 0 }``; without
    #: them any 2xx answer counts as accepted.
    ok_json: dict[str, str | int | bool] = {}
    rate_limit: Annotated[int, Field(ge=1, le=10000)] = 10

    @model_validator(mode="after")
    def _check(self) -> Self:
        resolve_secret_fields(self, "token")
        used = _placeholders(self.template)
        missing = {"{phone}", "{text}"} - used
        if missing:
            raise ValueError(f"template must contain {' and '.join(sorted(missing))}")
        used |= _placeholders(self.url) | _placeholders(self.headers)
        if "{token}" in used and self.token is None:
            raise ValueError("template uses {token} but no token (or token_env/token_file) is set")
        if self.method == "GET" or self.encoding == "form":
            nested = [k for k, v in self.template.items() if isinstance(v, dict | list)]
            if nested:
                raise ValueError(
                    f"template fields {nested} are nested: only a JSON body can carry them"
                )
        return self


ChannelConfig = Annotated[
    EmailConfig | WebhookConfig | DingTalkConfig | WeComConfig | FeishuConfig | SmsConfig,
    Field(discriminator="type"),
]


class RouteConfig(StrictModel):
    """Which channels hear about which notices. A notice goes to the channels of every route it
    matches (each channel once)."""

    #: Site names, or ``"*"`` for every site.
    sites: Annotated[list[str], Field(min_length=1)] = ["*"]
    levels: Annotated[list[Level], Field(min_length=1)] = [1, 2, 3, 4]
    tiers: Annotated[list[Tier], Field(min_length=1)] = [1, 2, 3]
    kinds: Annotated[list[Kind], Field(min_length=1)] = list(KINDS)
    channels: Annotated[list[Name], Field(min_length=1)]
    #: Grouping window for notices this route matches, overriding ``notify.window`` (shorter
    #: for level 1, so a system-down page waits seconds, not the whole window).
    window: Annotated[float, Field(ge=0, le=600)] | None = None

    @field_validator("sites")
    @classmethod
    def _site_names(cls, value: list[str]) -> list[str]:
        for s in value:
            if s != "*" and not NAME_RE.fullmatch(s):
                raise ValueError(f"{s!r} is neither a site name nor '*'")
        return value

    def matches(self, notice: Notice) -> bool:
        return (
            ("*" in self.sites or notice.site in self.sites)
            and notice.level in self.levels
            and notice.tier in self.tiers
            and notice.kind in self.kinds
        )


class RetryConfig(StrictModel):
    """Failed deliveries are retried with exponential backoff: ``initial``, 2×, 4× … capped at
    ``max_delay``, for at most ``attempts`` attempts in all."""

    attempts: Annotated[int, Field(ge=1, le=20)] = 4
    initial: Annotated[float, Field(ge=0, le=600)] = 2.0
    max_delay: Annotated[float, Field(ge=0, le=3600)] = 60.0

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.initial * 2 ** (attempt - 1)))


class NotifyConfig(StrictModel):
    #: Notices for one channel arriving within this many seconds of the first go out as one
    #: message: a switch failing takes its 500 cameras with it, and that is one page, not 500.
    window: Annotated[float, Field(ge=0, le=600)] = 10.0
    #: On shutdown, pending messages are sent at once; this long at most, then given up.
    flush_timeout: Annotated[float, Field(ge=0, le=600)] = 10.0
    retry: RetryConfig = RetryConfig()
    channels: dict[Name, ChannelConfig] = {}
    routes: list[RouteConfig] = []

    @model_validator(mode="after")
    def _routes_name_channels(self) -> Self:
        for i, route in enumerate(self.routes):
            unknown = [c for c in route.channels if c not in self.channels]
            if unknown:
                raise ValueError(
                    f"routes[{i}] names undefined channel(s) {unknown}; "
                    f"defined: {sorted(self.channels) or 'none'}"
                )
        return self

    def route(self, notice: Notice) -> dict[str, float]:
        """The channels ``notice`` goes to, each with its grouping window (the shortest window
        of the routes that chose it)."""
        out: dict[str, float] = {}
        for route in self.routes:
            if not route.matches(notice):
                continue
            window = self.window if route.window is None else route.window
            for name in route.channels:
                out[name] = min(out.get(name, window), window)
        return out
