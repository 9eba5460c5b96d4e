"""Secrets in configuration: given inline, named by an environment variable, or read from a file.

Passwords and tokens should not have to sit in a TOML file that is copied around, committed or
attached to a support ticket. Every secret setting ``X`` can therefore be given three ways::

    password = "s3cret"                        # inline (fine for a lab)
    password_env = "FIELDMON_SMTP_PASSWORD"    # from the environment (systemd, containers)
    password_file = "/run/secrets/smtp"        # from a file (Docker/Kubernetes secrets)

The helpers here resolve them while the configuration is validated, so a missing variable or an
unreadable file stops the program with the file, key and reason before anything connects, and the
value itself never appears in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

__all__ = ["SecretError", "merge_secret_sources", "read_secret", "resolve_secret_fields"]


class SecretError(ValueError):
    """A secret setting that cannot be resolved. A ValueError so that pydantic validators turn
    it into an ordinary configuration error located at the offending key."""


def read_secret(
    value: SecretStr | str | None = None,
    *,
    env: str | None = None,
    file: Path | str | None = None,
    name: str = "secret",
    environ: Mapping[str, str] | None = None,
) -> SecretStr | None:
    """Return the secret from exactly one of ``value``, ``env`` or ``file``; None if none is set.

    Giving two sources is an error rather than a precedence rule: an operator who sets both
    would otherwise be surprised which one won. A file's single trailing newline is dropped
    (``echo secret > file`` writes one), nothing else is stripped. Empty secrets are refused:
    they are always a mistake (an unset variable exported as empty, a truncated file).
    """
    given = [k for k, v in (("", value), ("_env", env), ("_file", file)) if v is not None]
    if len(given) > 1:
        keys = " and ".join(f"{name}{k}" for k in given)
        raise SecretError(f"{keys} are both set: give the secret one way only")
    if value is not None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text:
            raise SecretError(f"{name} is empty")
        return SecretStr(text)
    if env is not None:
        source = os.environ if environ is None else environ
        if env not in source:
            raise SecretError(f"{name}_env: environment variable {env} is not set")
        if not source[env]:
            raise SecretError(f"{name}_env: environment variable {env} is empty")
        return SecretStr(source[env])
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SecretError(f"{name}_file: {path}: file not found") from None
        except OSError as exc:
            raise SecretError(f"{name}_file: {path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretError(f"{name}_file: {path}: not UTF-8 text") from None
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        if not text:
            raise SecretError(f"{name}_file: {path} is empty")
        return SecretStr(text)
    return None


def resolve_secret_fields(model: BaseModel, *names: str, required: bool = False) -> None:
    """Resolve each secret field ``X`` of ``model`` from ``X`` / ``X_env`` / ``X_file``.

    Meant for an ``@model_validator(mode="after")``: the resolved value is stored in ``X``, so
    the rest of the program reads one field and never cares where the secret came from. The
    model declares ``X: SecretStr | None``, ``X_env: str | None`` and ``X_file: Path | None``.
    With ``required``, a secret given none of the three ways is an error.
    """
    for name in names:
        secret = read_secret(
            getattr(model, name),
            env=getattr(model, f"{name}_env"),
            file=getattr(model, f"{name}_file"),
            name=name,
        )
        if secret is None and required:
            raise SecretError(f"{name} is required (or {name}_env / {name}_file)")
        setattr(model, name, secret)


def merge_secret_sources(data: Any, *names: str) -> Any:
    """For a ``@model_validator(mode="before")``: accept ``X_env`` / ``X_file`` for each secret
    field ``X`` and put the secret they name into ``X``, so the model keeps one plain field.

    Used where a secret has a default (an SNMP community is "public" unless told otherwise)
    or must stay non-optional, which :func:`resolve_secret_fields` cannot express.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name in names:
        env, file = out.pop(f"{name}_env", None), out.pop(f"{name}_file", None)
        if env is None and file is None:
            continue
        secret = read_secret(out.get(name), env=env, file=file, name=name)
        out[name] = secret
    return out
