"""The agent's configuration layer: msgspec structs with errors that name file and key.

Why not pydantic, as the collector uses: the agent runs on customers' NVRs and servers, and
pydantic's model builder costs about 6 MiB of resident memory before a single check runs;
msgspec validates the same declarations (types, bounds, patterns, unknown keys) for about
2 MiB. Declarations read the same: ``Annotated[int, Meta(ge=1, le=65535)]`` for a bounded
number, ``__post_init__`` for the cross-field rules (a ``ValueError`` raised there becomes an
error located at that section).

msgspec stops at the first problem, so an operator sees one error at a time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import msgspec
from msgspec import Meta

from checks.topics import NAME_PATTERN
from fieldmon.configfile import UNKNOWN_KEY, ConfigError, mqtt_connection, read_config
from fieldmon.secrets import Secret, read_secret
from fieldmon.tls import tls_context

S = TypeVar("S", bound="StrictStruct")

#: Site, agent and target names as configuration fields.
Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
Port = Annotated[int, Meta(ge=1, le=65535)]


def _decode_hook(kind: type, value: Any) -> Any:
    """The types TOML has no word for: secrets and file paths arrive as strings."""
    if kind is Secret or kind is Path:
        if isinstance(value, str):
            return kind(value)
        raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
    raise NotImplementedError(f"no conversion to {kind!r}")


class StrictStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A configuration section: unknown keys are errors (a typo must not be silently ignored)."""

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Validate ``data`` (a TOML table as dict) as this section; ``msgspec.ValidationError``
        when it does not fit. :func:`load_struct` turns that into a :class:`ConfigError`."""
        return msgspec.convert(data, cls, dec_hook=_decode_hook)


def resolve_secrets(
    section: object, *names: str, defaults: dict[str, Secret] | None = None
) -> None:
    """Resolve each secret field ``X`` of ``section`` from ``X`` / ``X_env`` / ``X_file``.

    For ``__post_init__``: the secret ends in ``X`` and ``X_env``/``X_file`` are cleared, so
    the rest of the program reads one field and never cares where the secret came from. A
    name in ``defaults`` gets that value when given none of the three ways (``X`` is declared
    ``Secret | None`` and is never None afterwards).
    """
    for name in names:
        secret = read_secret(
            getattr(section, name),
            env=getattr(section, f"{name}_env"),
            file=getattr(section, f"{name}_file"),
            name=name,
        )
        if secret is None and defaults and name in defaults:
            secret = defaults[name]
        setattr(section, name, secret)
        setattr(section, f"{name}_env", None)
        setattr(section, f"{name}_file", None)


class TlsConfig(StrictStruct):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Skip certificate verification. Only for a lab; never on a customer network.
    insecure: bool = False

    def context(self) -> Any:
        return tls_context(self.ca_file, self.cert_file, self.key_file, self.insecure)


class BrokerConfig(StrictStruct):
    """How to reach the MQTT broker.

    The collector's twin is :class:`fieldmon.config_models.BrokerConfig`; both build their
    connection with :func:`fieldmon.configfile.mqtt_connection`."""

    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    #: Also ``password_env`` (an environment variable) or ``password_file``.
    password: Secret | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None

    def __post_init__(self) -> None:
        resolve_secrets(self, "password")

    def connection(self) -> dict[str, Any]:
        return mqtt_connection(self.host, self.port, self.username, self.password, self.tls)


#: msgspec's messages end in " - at `$.a.b[0]`"; the operator reads ``a.b[0]``.
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]*)`")


def explain(path: Path | str, exc: msgspec.ValidationError) -> str:
    """``<file>: invalid configuration`` and an indented ``key.path: problem`` line."""
    text = str(exc)
    at = _AT.search(text)
    loc = at.group("path").lstrip(".") if at else ""
    msg = text[: at.start()] if at else text
    for pattern, say in ((_UNKNOWN, UNKNOWN_KEY), (_MISSING, "required key is missing")):
        found = pattern.match(msg)
        if found:
            key = found.group("key")
            loc = f"{loc}.{key}" if loc else key
            msg = say
    return f"{path}: invalid configuration\n  {loc or '(top level)'}: {msg}"


def load_struct(kind: type[S], path: Path | None, data: dict[str, Any] | None = None) -> S:
    """Validate ``data`` (or the file at ``path``) as ``kind``; ConfigError on any problem."""
    data = read_config(path, data)
    try:
        return kind.from_dict(data)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(path or "<embedded defaults>", exc)) from None
