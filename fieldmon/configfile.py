"""Reading TOML configuration files, and the error every configuration problem becomes.

Shared by the agent and the collector: a bad config must stop the program with exit code 2
before anything connects, and tell the operator exactly what to fix. The files are validated
by two layers that share these pieces: :mod:`fieldmon.config_structs` (msgspec, the agent)
and :mod:`fieldmon.config_models` (pydantic, the collector).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Protocol


class Revealable(Protocol):
    """A secret of either layer (:class:`fieldmon.secrets.Secret`, pydantic's ``SecretStr``)."""

    def get_secret_value(self) -> str: ...


class HasContext(Protocol):
    """Either layer's ``[mqtt.tls]`` settings."""

    def context(self) -> Any: ...


class ConfigError(Exception):
    """A configuration that cannot be used. ``str()`` is the message to show the operator."""


#: What an unknown key is told, by both layers: a typo must not be silently ignored.
UNKNOWN_KEY = "unknown key (check the spelling against the configuration reference)"


def where(loc: tuple[int | str, ...]) -> str:
    """``("targets", 0, "snmp")`` → ``targets[0].snmp``: a key path as the operator reads it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_config(path: Path | None, data: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` when given (embedded defaults, tests), else the TOML file at ``path``."""
    if data is not None:
        return data
    if path is None:
        raise ConfigError("no configuration given")
    return load_toml(path)


def mqtt_connection(
    host: str, port: int, username: str | None, password: Revealable | None, tls: HasContext | None
) -> dict[str, Any]:
    """Where and how to connect, as keyword arguments of ``aiomqtt.Client``; each caller adds
    its own identifier, session and will."""
    return {
        "hostname": host,
        "port": port,
        "username": username,
        "password": password.get_secret_value() if password is not None else None,
        "tls_context": tls.context() if tls is not None else None,
    }
