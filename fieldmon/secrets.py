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

__all__ = ["Secret", "SecretError", "read_secret"]


class Secret:
    """A password, key or community string: its ``repr`` and ``str`` never show the value.

    Our own small type rather than pydantic's ``SecretStr`` because the agent's configuration
    is not built with pydantic (see :mod:`fieldmon.config_structs`); the collector's pydantic
    models convert with ``SecretStr(secret.get_secret_value())`` where they need to.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


class SecretError(ValueError):
    """A secret setting that cannot be resolved. A ValueError so that validators (pydantic's and
    msgspec's) turn it into an ordinary configuration error located at the offending key."""


def read_secret(
    value: Secret | str | None = None,
    *,
    env: str | None = None,
    file: Path | str | None = None,
    name: str = "secret",
    environ: Mapping[str, str] | None = None,
) -> Secret | None:
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
        text = value.get_secret_value() if isinstance(value, Secret) else value
        if not text:
            raise SecretError(f"{name} is empty")
        return Secret(text)
    if env is not None:
        source = os.environ if environ is None else environ
        if env not in source:
            raise SecretError(f"{name}_env: environment variable {env} is not set")
        if not source[env]:
            raise SecretError(f"{name}_env: environment variable {env} is empty")
        return Secret(source[env])
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
        return Secret(text)
    return None
