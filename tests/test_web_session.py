"""The console's session key and login counting: a configured ``http.session_secret`` (from a
file here, as a container secret would be) keeps people signed in across a collector
restart, while without one the collector warns that a restart signs everyone out; a short
or doubly-given secret is refused with the key named; and the failure counter forgets
failures once they leave the window."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from collector.config import load_collector_config
from collector.web.ratelimit import LoginLimiter
from fieldmon.allinone import free_port
from fieldmon.configfile import ConfigError
from fieldmon.secrets import SecretError
from tests.support.procs import http_json, wait_for
from tests.test_web import PASSWORDS, running_console

SECRET = "a3f1c0de9b8e4f7a6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _sign_in(base: str, user: str = "li.wei", password: str = PASSWORDS["li.wei"]) -> str:
    """Sign in over plain HTTP, as a browser would; returns the session cookie."""
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(f"{base}/login", timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode())
    assert csrf
    body = urllib.parse.urlencode(
        {"csrf": csrf.group(1), "username": user, "password": password}
    ).encode()
    req = urllib.request.Request(f"{base}/login", data=body, headers={"Cookie": cookie})
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(req, timeout=10)
    assert answer.value.code == 303 and answer.value.headers["Location"] == "/"
    return str(answer.value.headers["Set-Cookie"]).split(";", 1)[0]


def _board_status(base: str, cookie: str) -> int:
    """200 when the cookie is a valid session; 303 (to the login page) when it is not."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(f"{base}/", headers={"Cookie": cookie})
    try:
        with opener.open(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_a_configured_secret_keeps_sessions_across_a_restart(tmp_path: Path) -> None:
    key = tmp_path / "session.key"
    key.write_text(SECRET + "\n", encoding="utf-8")
    extra = f'session_secret_file = "{key}"'
    with running_console(tmp_path, http_extra=extra) as console:
        cookie = _sign_in(console.base)
        assert _board_status(console.base, cookie) == 200
        port = int(console.base.rsplit(":", 1)[1])
    with running_console(tmp_path, http_extra=extra, port=port) as console:
        assert _board_status(console.base, cookie) == 200, "still signed in after the restart"
        log = console.log.read_text(errors="replace")
    assert "session_secret is not set" not in log
    assert SECRET not in log


def test_without_a_secret_a_restart_signs_everyone_out_and_says_so(tmp_path: Path) -> None:
    with running_console(tmp_path) as console:
        cookie = _sign_in(console.base)
        assert _board_status(console.base, cookie) == 200
        port = int(console.base.rsplit(":", 1)[1])
    with running_console(tmp_path, port=port) as console:
        assert _board_status(console.base, cookie) == 303
        log = console.log.read_text(errors="replace")
    assert "http.session_secret is not set" in log and "signs everyone out" in log


def test_bad_session_secrets_are_refused_with_the_key_named(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("too-short\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_collector_config(None, {"http": {"session_secret_file": str(short)}})
    assert "session_secret" in str(err.value) and "32 characters" in str(err.value)
    assert "too-short" not in str(err.value)
    with pytest.raises((ConfigError, SecretError)) as err2:
        load_collector_config(
            None, {"http": {"session_secret": SECRET, "session_secret_env": "FIELDMON_X"}}
        )
    assert "session_secret" in str(err2.value) and SECRET not in str(err2.value)
    with pytest.raises(ConfigError) as err3:
        load_collector_config(None, {"http": {"session_secret_file": str(tmp_path / "nope")}})
    assert "session_secret_file" in str(err3.value) and "not found" in str(err3.value)
    cfg = load_collector_config(None, {"http": {"session_secret": SECRET}})
    assert cfg.http.session_secret is not None
    assert cfg.http.session_secret.get_secret_value() == SECRET
    assert SECRET not in repr(cfg.http)


def test_failures_leave_the_window_and_success_clears_the_name() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.check("Li.Wei", "127.0.0.2").allowed
        limiter.failed("Li.Wei", "127.0.0.2")
        now[0] += 10
    verdict = limiter.check("li.wei", "127.0.0.9")  # names are counted case-blind
    assert not verdict.allowed and verdict.reason == "user" and verdict.retry_after == 30
    assert not limiter.check("someone", "127.0.0.2").allowed  # the address is full too
    assert limiter.check("someone", "127.0.0.3").allowed
    now[0] += 31  # the first failure left the window
    assert limiter.check("li.wei", "127.0.0.9").allowed
    limiter.failed("x", "127.0.0.4")
    limiter.failed("x", "127.0.0.5")
    limiter.succeeded("x")
    limiter.failed("x", "127.0.0.6")
    assert limiter.check("x", "127.0.0.7").allowed, "a success cleared the name's count"
    with pytest.raises(ValueError, match="max_failures"):
        LoginLimiter(max_failures=0)


def test_every_console_word_exists_in_both_languages() -> None:
    """A key missing in one language shows English (or the bare key) to a Chinese reader."""
    from collector.web.i18n import MESSAGES

    templates = Path(__file__).resolve().parent.parent / "collector" / "web" / "templates"
    used: set[str] = set()
    for path in templates.glob("*.j2"):
        used |= set(re.findall(r"""\bt\(["']([A-Za-z_]+)["']\)""", path.read_text("utf-8")))
    assert len(used) > 50
    for lang, table in MESSAGES.items():
        assert not used - set(table), (lang, sorted(used - set(table)))
    assert set(MESSAGES["en"]) == set(MESSAGES["zh-CN"])


def _all_in_one(state: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = ["run", "--state-dir", str(state), "--http-port", str(port), "--site", "demo"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fieldmon", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _banners(log: Path) -> int:
    return log.read_text(errors="replace").count("fieldmon is running")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_all_in_one_keeps_its_own_session_secret(tmp_path: Path) -> None:
    """``fieldmon run`` (``make run``) draws the console's session key once into its state
    folder (0600) and reuses it: no warning at start, and a restart keeps people signed in."""
    state, port, log = tmp_path / "var", free_port(), tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    proc = _all_in_one(state, port, log)
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 40, what="healthy")
        # The collector answers before the launcher has started the agent and printed its
        # banner; stopping in between is a clean stop without a banner, so wait for it.
        wait_for(lambda: _banners(log) == 1, 30, what="the first banner")
        key = state / "session-secret"
        assert key.stat().st_mode & 0o777 == 0o600
        secret = key.read_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
        password = (state / "web-password").read_text().strip()
        cookie = _sign_in(base, "admin", password)
        assert _board_status(base, cookie) == 200
    finally:
        _stop(proc)
    proc = _all_in_one(state, port, log)
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 40, what="healthy")
        wait_for(lambda: _banners(log) == 2, 30, what="the second banner")
        assert key.read_text().strip() == secret, "the key is reused, not drawn again"
        assert _board_status(base, cookie) == 200, "still signed in after the restart"
    finally:
        _stop(proc)
    printed = log.read_text(errors="replace")
    assert printed.count("fieldmon is running") == 2
    # The collector's own log lands here too, so a warning would have been seen.
    assert "console login: user 'admin'" in printed
    assert "session_secret is not set" not in printed
    assert secret not in printed
