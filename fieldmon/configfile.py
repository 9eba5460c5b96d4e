"""Loading TOML configuration into pydantic models with errors that name file and key.

Shared by the agent and the collector: a bad config must stop the program with exit code 2
before anything connects, and tell the operator exactly what to fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from checks.topics import NAME_RE
from fieldmon.secrets import merge_secret_sources
from fieldmon.tls import TlsConfig

M = TypeVar("M", bound=BaseModel)

#: Site, agent and target names as configuration fields.
Name = Annotated[str, Field(pattern=NAME_RE.pattern)]


class StrictModel(BaseModel):
    """Configuration sections: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BrokerConfig(StrictModel):
    """How to reach the MQTT broker; the agent and the collector extend it."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    #: Also ``password_env`` (an environment variable) or ``password_file``.
    password: SecretStr | None = None
    tls: TlsConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _secret_sources(cls, data: Any) -> Any:
        return merge_secret_sources(data, "password")

    def connection(self) -> dict[str, Any]:
        """Where and how to connect, as keyword arguments of ``aiomqtt.Client``; each caller
        adds its own identifier, session and will."""
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "tls_context": self.tls.context() if self.tls else None,
        }


class ConfigError(Exception):
    """A configuration that cannot be used. ``str()`` is the message to show the operator."""


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def explain(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors(include_url=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the configuration reference)"
        lines.append(f"  {_where(err['loc'])}: {msg}")
    return "\n".join(lines)


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


def load_model(model: type[M], path: Path | None, data: dict[str, Any] | None = None) -> M:
    """Validate ``data`` (or the file at ``path``) as ``model``; ConfigError on any problem."""
    if data is None:
        if path is None:
            raise ConfigError("no configuration given")
        data = load_toml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(path or "<embedded defaults>", exc)) from None
