"""Configuration files for the processes a test starts."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fieldmon.allinone import free_port

#: API tokens of the test collectors, by role (the config holds only their SHA-256).
TOKENS = {
    "admin": "admin-token-for-tests",
    "engineer": "engineer-token-for-tests",
    "viewer": "viewer-token-for-tests",
    "customer": "customer-s1-token-for-tests",
    "other": "customer-s2-token-for-tests",
}
TOKENS_TOML = "".join(
    f'[[tokens]]\nname = "{name}"\nrole = "{"customer" if name == "other" else name}"\n'
    f'token_sha256 = "{hashlib.sha256(tok.encode()).hexdigest()}"\n'
    + (
        f'sites = ["{"s2" if name == "other" else "s1"}"]\n'
        if name in ("customer", "other")
        else ""
    )
    for name, tok in TOKENS.items()
)


#: Collector config for tests that time the last will itself: its incident opens at once.
NO_GRACE = "[incidents]\nagent_offline_grace_seconds = 0\n"


def collector_toml(
    tmp: Path,
    broker_port: int,
    *,
    http_port: int | None = None,
    client_id: str = "fieldmon-collector",
    extra: str = "",
    log_level: str = "DEBUG",
) -> tuple[Path, int]:
    """A collector on ``broker_port`` with SQLite in ``tmp``; tests read its DEBUG log,
    benchmarks pass ``log_level="WARNING"`` so that logging is not what they measure."""
    port = http_port or free_port()
    path = tmp / f"collector-{client_id}.toml"
    path.write_text(
        f'log_level = "{log_level}"\n{extra}\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nclient_id = "{client_id}"\n'
        "max_backoff = 2\n"
        f'[database]\nurl = "sqlite:///{tmp}/collector.db"\n'
        f'[http]\nlisten = "127.0.0.1"\nport = {port}\n'
        '[[sites]]\nname = "s1"\ncustomer = "Example Public Security Bureau"\n'
        'contract = "FM-2026-001"\ntitle = "East gate"\nmaintainer = "Example Integrator"\n'
        + TOKENS_TOML,
        encoding="utf-8",
    )
    return path, port


def agent_toml(
    tmp: Path, broker_port: int, targets: str, *, agent: str = "a1", extra: str = ""
) -> Path:
    path = tmp / f"agent-{agent}.toml"
    path.write_text(
        f'site = "s1"\nagent = "{agent}"\nstate_dir = "{tmp}/agent-{agent}"\n{extra}\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nmax_backoff = 2\n'
        f"{targets}",
        encoding="utf-8",
    )
    return path


LOCAL_TARGET = """
[[targets]]
name = "host1"
class = "linux-server"
intervals = { "cpu.usage" = 5, "mem.usage" = 5 }
"""


def mail_notify_toml(
    smtp_port: int,
    *,
    window: float = 0,
    lang: str = "en",
    retry: bool = True,
    rate_limit: int | None = None,
) -> str:
    """``[notify]`` with one plain-SMTP e-mail channel to desk@example.net and one route for
    every incident: what the notification tests and benchmarks run against aiosmtpd."""
    retry_toml = "[notify.retry]\nattempts = 2\ninitial = 1\n" if retry else ""
    limit = f"rate_limit = {rate_limit}\nrate_period = 1\n" if rate_limit else ""
    return (
        f"\n[notify]\nwindow = {window}\n{retry_toml}"
        "[notify.channels.desk]\n"
        'type = "email"\nhost = "127.0.0.1"\n'
        f"port = {smtp_port}\n"
        'security = "plain"\nsender = "fieldmon <noc@example.net>"\n'
        f"{limit}"
        f'groups = [{{ to = ["desk@example.net"], lang = "{lang}" }}]\n'
        '[[notify.routes]]\nchannels = ["desk"]\n'
    )
