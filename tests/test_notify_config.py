"""Notification configuration, the secret helper shared by fieldmon, and message wording."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest

from collector.notify.config import NotifyConfig, RetryConfig
from collector.notify.model import Notice
from collector.notify.redact import Scrubber
from collector.notify.render import headline, markdown, plain_text, short_text, trim_bytes
from fieldmon.config_models import load_model
from fieldmon.configfile import ConfigError
from fieldmon.secrets import Secret, SecretError, read_secret

T0 = dt.datetime(2026, 11, 3, 2, 13, tzinfo=dt.UTC)


def notice(i: int = 1, **over: Any) -> Notice:
    fields: dict[str, Any] = {
        "number": f"INC-202611-{i:06d}",
        "site": "east-gate",
        "target": f"cam-{i:03d}",
        "level": 2,
        "tier": 1,
        "kind": "opened",
        "title": "camera offline",
        "summary": "no answer to ping",
        "at": T0,
    }
    return Notice(**(fields | over))


def load(data: dict[str, Any]) -> NotifyConfig:
    return load_model(NotifyConfig, Path("collector.toml"), data)


# -- fieldmon.secrets ------------------------------------------------------------------------


def test_secret_inline_env_or_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    assert read_secret("inline") == Secret("inline")
    assert read_secret(env="PW", environ={"PW": "from-env"}) == Secret("from-env")
    assert read_secret(file=f) == Secret("from-file"), "one trailing newline dropped"
    f.write_text("  spaced \r\n")
    secret = read_secret(file=f)
    assert secret is not None and secret.get_secret_value() == "  spaced ", "nothing else"
    assert read_secret() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": "a", "env": "X"}, "password and password_env are both set"),
        ({"env": "NOPE"}, "password_env: environment variable NOPE is not set"),
        ({"env": "EMPTY"}, "password_env: environment variable EMPTY is empty"),
        ({"file": "/nonexistent/pw"}, "password_file: /nonexistent/pw: file not found"),
        ({"value": ""}, "password is empty"),
    ],
)
def test_secret_errors_say_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SecretError) as err:
        read_secret(name="password", environ={"EMPTY": "", "X": "x"}, **kwargs)
    assert str(err.value).startswith(message)


def test_secret_from_environment_in_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FM_TEST_DING", "tok-123456")
    cfg = load({"channels": {"d": {"type": "dingtalk", "access_token_env": "FM_TEST_DING"}}})
    ding = cfg.channels["d"]
    assert ding.secret_values() == ["tok-123456"]
    assert "tok-123456" not in repr(cfg), "secrets stay masked in reprs"


# -- the configuration -----------------------------------------------------------------------

EXAMPLE = """
[notify]
window = 10

[notify.channels.duty-sms]
type = "sms"
url = "https://sms.example.net/api/send"
template = { mobile = "{phone}", content = "{text}" }
headers = { Authorization = "Bearer {token}" }
token_env = "FM_TEST_SMS"
numbers = ["13800000001"]

[notify.channels.ops-dingtalk]
type = "dingtalk"
access_token_env = "FM_TEST_DING"
secret_file = "SECRET_FILE"

[notify.channels.desk-mail]
type = "email"
host = "smtp.example.net"
username = "noc@example.net"
password_file = "SECRET_FILE"
sender = "fieldmon <noc@example.net>"
groups = [{ to = ["desk@example.net"], lang = "zh-CN" }, { to = ["v@example.com"], lang = "en" }]

[notify.channels.owner-mail]
type = "email"
host = "smtp.example.net"
security = "plain"
sender = "noc@example.net"
groups = [{ to = ["zhang.wei@example.net"] }]

[[notify.routes]]
levels = [1, 2]
channels = ["duty-sms", "ops-dingtalk"]
window = 2

[[notify.routes]]
levels = [3, 4]
channels = ["desk-mail"]

[[notify.routes]]
sites = ["east-gate"]
tiers = [2, 3]
channels = ["owner-mail"]
"""


def test_example_configuration_routes_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("SECfile\n")
    monkeypatch.setenv("FM_TEST_SMS", "sms-token")
    monkeypatch.setenv("FM_TEST_DING", "ding-token")
    data = tomllib.loads(EXAMPLE.replace("SECRET_FILE", str(secret)))
    cfg = load(data["notify"])
    assert cfg.channels["desk-mail"].effective_port == 587  # type: ignore[union-attr]
    assert cfg.channels["owner-mail"].effective_port == 25  # type: ignore[union-attr]
    assert cfg.route(notice(level=1)) == {"duty-sms": 2.0, "ops-dingtalk": 2.0}
    assert cfg.route(notice(level=3)) == {"desk-mail": 10.0}
    assert cfg.route(notice(level=3, tier=2)) == {"desk-mail": 10.0, "owner-mail": 10.0}
    assert cfg.route(notice(level=3, tier=2, site="west-gate")) == {"desk-mail": 10.0}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"routes": [{"channels": ["nope"]}]},
            "routes[0] names undefined channel(s) ['nope']",
        ),
        (
            {"channels": {"d": {"type": "dingtalk"}}},
            "channels.d.dingtalk: Value error, access_token is required",
        ),
        (
            {
                "channels": {
                    "d": {
                        "type": "dingtalk",
                        "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
                        "access_token": "abc",
                    }
                }
            },
            "put the access token in access_token",
        ),
        (
            {"channels": {"w": {"type": "wecom", "url": "https://x/send?key=abc", "key": "abc"}}},
            "put the webhook key in key",
        ),
        (
            {
                "channels": {
                    "s": {
                        "type": "sms",
                        "url": "https://sms/",
                        "template": {"to": "{phone}"},
                        "numbers": ["13800000001"],
                    }
                }
            },
            "template must contain {text}",
        ),
        (
            {
                "channels": {
                    "s": {
                        "type": "sms",
                        "url": "https://sms/",
                        "template": {"to": "{phone}", "t": "{text}", "k": "{token}"},
                        "numbers": ["13800000001"],
                    }
                }
            },
            "template uses {token} but no token",
        ),
        (
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "h",
                        "sender": "a@b.c",
                        "username": "u",
                        "groups": [{"to": ["a@b.c"]}],
                    }
                }
            },
            "username is set but no password",
        ),
        (
            {"channels": {"x": {"type": "pager", "url": "https://x/"}}},
            "does not match any of the expected tags",
        ),
        ({"channels": {"h": {"type": "webhook", "url": "ftp://x"}}}, "channels.h.webhook.url"),
        ({"routes": [{"channels": [], "sites": ["*"]}]}, "routes[0].channels"),
        ({"routes": [{"channels": ["a"], "levels": [5]}]}, "routes[0].levels[0]"),
        ({"routes": [{"channels": ["a"], "sites": ["a/b"]}]}, "neither a site name nor '*'"),
        ({"windw": 3}, "windw: unknown key"),
    ],
)
def test_configuration_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(data)
    assert message in str(err.value)


def test_backoff_doubles_up_to_the_cap() -> None:
    retry = RetryConfig(attempts=6, initial=2, max_delay=10)
    assert [retry.delay(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_notice_rejects_what_would_page_nobody() -> None:
    with pytest.raises(ValueError, match="level must be 1-4"):
        notice(level=5)
    with pytest.raises(ValueError, match="tier must be 1-3"):
        notice(tier=0)
    with pytest.raises(ValueError, match="time zone"):
        notice(at=dt.datetime(2026, 11, 3))


# -- wording ---------------------------------------------------------------------------------


def test_headlines_in_both_languages() -> None:
    one = [notice(kind="escalated", tier=2)]
    zh = "[二级故障] east-gate 故障升级：INC-202611-000001 camera offline"
    assert headline(one, "zh-CN") == zh
    assert headline(one, "en") == "[L2] east-gate escalated: INC-202611-000001 camera offline"
    mixed = [notice(1, level=3), notice(2, level=1, site="west-gate", kind="breached")]
    assert headline(mixed, "zh-CN") == "[一级故障] 2 个站点 2 个故障：新故障 1，超时告警 1"


def test_long_batches_list_the_first_and_count_the_rest() -> None:
    many = [notice(i) for i in range(25)]
    text = plain_text(many, "en", 10)
    assert text.count("\n- INC-") == 10 and "… and 15 more not listed" in text
    md = markdown(many, "zh-CN", 5)
    assert md.startswith("### [二级故障] east-gate 25 个故障") and "另有 20 条未列出" in md


def test_sms_text_is_cut_to_length() -> None:
    text = short_text([notice(i) for i in range(500)], "zh-CN", 70)
    assert len(text) == 70 and text.endswith("…") and "500 个故障" in text


def test_trim_bytes_never_splits_a_character() -> None:
    text = "故障" * 2000
    cut = trim_bytes(text, 2048)
    assert len(cut.encode()) <= 2048 and cut.endswith("…")
    assert trim_bytes("short", 2048) == "short"


def test_scrubber_masks_secrets_encoded_or_not() -> None:
    s = Scrubber(["a+b/c=secret"])
    assert s.scrub("x a+b/c=secret y") == "x *** y"
    assert s.scrub("url a%2Bb%2Fc%3Dsecret") == "url ***"
    assert s.scrub("GET https://h/p?key=abc&x=1 done") == "GET https://h/p?*** done"
    assert s.scrub("POST /send?token=abc&sign=xyz") == "POST /send?token=***&sign=***"
