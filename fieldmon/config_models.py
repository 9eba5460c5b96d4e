"""The collector's configuration layer: pydantic models with errors that name file and key.

The collector already loads pydantic for its HTTP API (FastAPI), so its configuration uses it
too. The agent's configuration does not (:mod:`fieldmon.config_structs`): pydantic's model
builder alone is about 6 MiB of a customer host's memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from checks.topics import NAME_RE
from fieldmon.configfile import UNKNOWN_KEY, ConfigError, mqtt_connection, read_config, where
from fieldmon.secrets import SecretError, read_secret
from fieldmon.tls import tls_context

M = TypeVar("M", bound=BaseModel)

#: Site, agent and target names as configuration fields.
Name = Annotated[str, Field(pattern=NAME_RE.pattern)]


class StrictModel(BaseModel):
    """Configuration sections: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def resolve_secret_fields(model: BaseModel, *names: str, required: bool = False) -> None:
    """Resolve each secret field ``X`` of ``model`` from ``X`` / ``X_env`` / ``X_file``.

    Meant for an ``@model_validator(mode="after")``: the resolved value is stored in ``X``, so
    the rest of the program reads one field and never cares where the secret came from. The
    model declares ``X: SecretStr | None``, ``X_env: str | None`` and ``X_file: Path | None``.
    With ``required``, a secret given none of the three ways is an error.
    """
    for name in names:
        current = getattr(model, name)
        secret = read_secret(
            current.get_secret_value() if current is not None else None,
            env=getattr(model, f"{name}_env"),
            file=getattr(model, f"{name}_file"),
            name=name,
        )
        if secret is None and required:
            raise SecretError(f"{name} is required (or {name}_env / {name}_file)")
        setattr(model, name, SecretStr(secret.get_secret_value()) if secret else None)


def merge_secret_sources(data: Any, *names: str) -> Any:
    """For a ``@model_validator(mode="before")``: accept ``X_env`` / ``X_file`` for each secret
    field ``X`` and put the secret they name into ``X``, so the model keeps one plain field.

    Used where a secret has a default or must stay non-optional, which
    :func:`resolve_secret_fields` cannot express.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name in names:
        env, file = out.pop(f"{name}_env", None), out.pop(f"{name}_file", None)
        if env is None and file is None:
            continue
        given = out.get(name)
        if isinstance(given, SecretStr):
            given = given.get_secret_value()
        secret = read_secret(given, env=env, file=file, name=name)
        out[name] = secret.get_secret_value() if secret is not None else None
    return out


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Skip certificate verification. Only for a lab; never on a customer network.
    insecure: bool = False

    def context(self) -> Any:
        return tls_context(self.ca_file, self.cert_file, self.key_file, self.insecure)


class BrokerConfig(StrictModel):
    """How to reach the MQTT broker.

    The agent's twin is :class:`fieldmon.config_structs.BrokerConfig`; both build their
    connection with :func:`fieldmon.configfile.mqtt_connection`."""

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
        return mqtt_connection(self.host, self.port, self.username, self.password, self.tls)


def explain(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors(include_url=False):
        msg = UNKNOWN_KEY if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {where(err['loc'])}: {msg}")
    return "\n".join(lines)


def load_model(model: type[M], path: Path | None, data: dict[str, Any] | None = None) -> M:
    """Validate ``data`` (or the file at ``path``) as ``model``; ConfigError on any problem."""
    data = read_config(path, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(path or "<embedded defaults>", exc)) from None
