"""The notifier against real servers on loopback: an SMTP server (aiosmtpd, STARTTLS with a
certificate made here, AUTH) and an HTTP server standing in for the webhook receiver, DingTalk,
WeCom, Feishu and an SMS gateway. Signatures are recomputed here from the vendors' published
schemes, independently of the code under test."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.notify import Batch, Notice, Notifier, NotifyConfig, NotifyError, Outcome
from fieldmon.allinone import free_port

SMTP_USER = "noc@example.net"
SMTP_PASSWORD = "smtp-Pa55-w0rd-7781"
WEBHOOK_SECRET = "whsec-4f1e2d3c-webhook"
DINGTALK_TOKEN = "dt-access-token-93b1c7"
DINGTALK_SECRET = "SECdingtalk0f9e8d7c6b5a4"
WECOM_KEY = "693a91f6-7aoc-4bc4-97a0-0ec2sifa5aaa"
FEISHU_TOKEN = "5e3d587e-d78e-4a07-bd07-265f269f86fd"
FEISHU_SECRET = "feishu-sign-secret-Xy12"
SMS_TOKEN = "sms-api-token-2b7d"
ALL_SECRETS = [
    SMTP_PASSWORD,
    WEBHOOK_SECRET,
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    WECOM_KEY,
    FEISHU_TOKEN,
    FEISHU_SECRET,
    SMS_TOKEN,
]

T0 = dt.datetime(2026, 11, 3, 2, 13, tzinfo=dt.UTC)


def notice(i: int, *, level: int = 1, tier: int = 1, kind: str = "opened") -> Notice:
    return Notice(
        number=f"INC-202611-{i:06d}",
        site="east-gate",
        target=f"cam-{i:03d}",
        level=level,
        tier=tier,
        kind=kind,  # type: ignore[arg-type]
        title="camera offline" if i else "switch down",
        summary="no answer to ping for 3 checks",
        at=T0,
        deadline=T0 + dt.timedelta(hours=2),
        url=f"http://127.0.0.1:8470/incidents/INC-202611-{i:06d}",
    )


class Outcomes:
    """The on_outcome callback: remembers every report."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[str, ...], Outcome]] = []

    def __call__(self, numbers: tuple[str, ...], outcome: Outcome) -> None:
        self.items.append((numbers, outcome))

    def of(self, channel: str) -> list[tuple[tuple[str, ...], Outcome]]:
        return [(n, o) for n, o in self.items if o.channel == channel]

    def finals(self) -> list[Outcome]:
        return [o for _, o in self.items if o.final]


async def until(pred: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- an HTTP server that records requests and answers from a script --------------------------


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.raw_query).items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """Answers 200 with ``{"errcode": 0, "code": 0}`` unless ``script[path]`` says otherwise.
    With ``echo``, failures repeat the request line back, as careless gateways do."""

    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    replies: dict[str, bytes] = field(default_factory=dict)
    echo: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, req: Request) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append(req)
            steps = self.script.get(req.path)
            status = steps.pop(0) if steps else 200
        if status != 200:
            body = f"failed: {req.method} {req.path}?{req.raw_query}" if self.echo else "failed"
            return status, body.encode()
        ok = b'{"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}'
        return 200, self.replies.get(req.path, ok)


@pytest.fixture
def http() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = Request(
                self.command,
                split.path,
                split.query,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            status, body = rec.answer(req)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


# -- a real SMTP server with STARTTLS and AUTH -----------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; the client trusts it as its CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fieldmon test SMTP")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_file, key_file = d / "cert.pem", d / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())


class Inbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.content is not None and envelope.mail_from is not None
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        msg = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        transport = server.transport
        implicit = transport is not None and transport.get_extra_info("ssl_object") is not None
        tls = session.ssl is not None or implicit
        self.mails.append(
            Mail(envelope.mail_from, list(envelope.rcpt_tos), msg, tls, bool(session.authenticated))
        )
        return "250 Message accepted for delivery"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers 535 itself (handled=True means "I already replied").
    return AuthResult(success=ok, handled=False)


def _server_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


@pytest.fixture
def smtp_starttls(cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_ctx(cert),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def smtp_implicit_tls(cert: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=_server_ctx(cert),
        authenticator=_authenticator,
        auth_required=True,
        # aiosmtpd only counts STARTTLS as TLS; this connection is TLS from the first byte.
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, port
    controller.stop()


# -- configuration helpers -----------------------------------------------------------------


def email_channel(port: int, cert: Path, **over: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "sender": "fieldmon <noc@example.net>",
        "ca_file": str(cert),
        "groups": [
            {"to": ["desk@example.net", "duty@example.net"], "lang": "zh-CN"},
            {"to": ["support@vendor.example.com"], "lang": "en"},
        ],
        "timeout": 10,
        **over,
    }


def http_channels(rec: Recorder) -> dict[str, Any]:
    return {
        "hook": {"type": "webhook", "url": rec.url("/hook"), "secret": WEBHOOK_SECRET},
        "ding": {
            "type": "dingtalk",
            "url": rec.url("/robot/send"),
            "access_token": DINGTALK_TOKEN,
            "secret": DINGTALK_SECRET,
            "at_mobiles": ["13800000001"],
        },
        "wecom": {
            "type": "wecom",
            "url": rec.url("/cgi-bin/webhook/send"),
            "key": WECOM_KEY,
        },
        "feishu": {
            "type": "feishu",
            "url": rec.url("/open-apis/bot/v2/hook/"),
            "token": FEISHU_TOKEN,
            "secret": FEISHU_SECRET,
        },
        "sms": {
            "type": "sms",
            "url": rec.url("/sms/send"),
            "template": {"mobile": "{phone}", "content": "{text}", "sign": "运维中心"},
            "headers": {"Authorization": "Bearer {token}"},
            "token": SMS_TOKEN,
            "numbers": ["13800000001"],
            "max_length": 70,
            "ok_json": {"code": 0},
        },
    }


def make_config(channels: dict[str, Any], **over: Any) -> NotifyConfig:
    data: dict[str, Any] = {
        "window": 0.2,
        "flush_timeout": 5,
        "retry": {"attempts": 3, "initial": 0.05, "max_delay": 0.2},
        "channels": channels,
        "routes": [{"channels": list(channels)}],
        **over,
    }
    return NotifyConfig.model_validate(data)


def near_now(seconds: float, slack: float = 120) -> bool:
    return abs(seconds - time.time()) < slack


# -- the tests -------------------------------------------------------------------------------


async def test_email_starttls_auth_one_message_per_language_group(
    smtp_starttls: tuple[Inbox, int], cert: tuple[Path, Path]
) -> None:
    inbox, port = smtp_starttls
    outcomes = Outcomes()
    cfg = make_config({"mail": email_channel(port, cert[0])})
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(0, level=1))
        notifier.submit(notice(1, level=2))
        notifier.submit(notice(2, level=2, kind="breached"))
        await until(lambda: bool(outcomes.finals()))

    assert len(inbox.mails) == 2, "one message per recipient group"
    zh, en = sorted(inbox.mails, key=lambda m: len(m.rcpt_tos), reverse=True)
    assert zh.mail_from == en.mail_from == "noc@example.net"
    assert zh.rcpt_tos == ["desk@example.net", "duty@example.net"]
    assert en.rcpt_tos == ["support@vendor.example.com"]
    assert zh.tls and zh.authenticated and en.tls and en.authenticated
    assert zh.message["To"] == "desk@example.net, duty@example.net"
    assert zh.message["Subject"] == "[一级故障] east-gate 3 个故障：新故障 2，超时告警 1"
    assert en.message["Subject"] == "[L1] east-gate 3 incidents: opened 2, deadline passed 1"
    assert zh.message["Auto-Submitted"] == "auto-generated"
    assert "INC-202611-000002" in zh.body and "超时告警" in zh.body and "一级维护" in zh.body
    assert "时限 2026-11-03 12:13" in zh.body, "times in the contract's zone (UTC+8)"
    assert "deadline passed" in en.body and "switch down" in en.body
    assert "http://127.0.0.1:8470/incidents/INC-202611-000000" in en.body
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in en.body), "no Chinese in the en mail"

    [(numbers, outcome)] = outcomes.items
    assert numbers == ("INC-202611-000000", "INC-202611-000001", "INC-202611-000002")
    assert outcome.ok and outcome.attempts == 1 and outcome.final
    assert outcome.channel == "mail" and f"127.0.0.1:{port}" in outcome.detail
    assert outcome.sent_at.tzinfo is not None


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_implicit_tls(
    smtp_implicit_tls: tuple[Inbox, int], cert: tuple[Path, Path]
) -> None:
    inbox, port = smtp_implicit_tls
    outcomes = Outcomes()
    channel = email_channel(port, cert[0], security="tls", groups=[{"to": ["a@example.net"]}])
    async with Notifier(make_config({"mail": channel}), outcomes) as notifier:
        notifier.submit(notice(7, level=3, kind="resolved"))
        await until(lambda: bool(outcomes.finals()))
    [mail] = inbox.mails
    assert mail.tls and mail.authenticated
    subject = "[三级故障] east-gate 已恢复：INC-202611-000007 camera offline"
    assert mail.message["Subject"] == subject
    assert outcomes.items[0][1].ok


async def test_email_refuses_untrusted_certificate(
    smtp_starttls: tuple[Inbox, int], tmp_path: Path
) -> None:
    """Without the CA the server's certificate is not trusted and no password is sent."""
    inbox, port = smtp_starttls
    outcomes = Outcomes()
    channel = email_channel(port, tmp_path / "none")
    del channel["ca_file"]
    cfg = make_config({"mail": channel}, retry={"attempts": 1})
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: bool(outcomes.finals()))
    [(_, outcome)] = outcomes.items
    assert not outcome.ok and "CERTIFICATE_VERIFY_FAILED" in outcome.detail
    assert inbox.mails == []


def _dingtalk_sign(ts: str, secret: str) -> str:
    # 钉钉: HmacSHA256(key=secret, data=timestamp + "\n" + secret), base64, then URL-encoded.
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _feishu_sign(ts: str, secret: str) -> str:
    # 飞书: HmacSHA256 keyed with timestamp + "\n" + secret over an empty message, base64.
    mac = hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


async def test_http_channels_signed_as_the_vendors_specify(http: Recorder) -> None:
    outcomes = Outcomes()
    cfg = make_config(http_channels(http))
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1, level=1, tier=2))
        await until(lambda: len(outcomes.finals()) == 5)
    assert all(o.ok and o.attempts == 1 for o in outcomes.finals()), outcomes.items

    # Generic webhook: sha256=<hex HMAC of the raw body>, timestamp header = body timestamp.
    [hook] = http.on("/hook")
    expected = hmac.new(WEBHOOK_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-fieldmon-signature"] == f"sha256={expected}"
    payload = hook.json()
    assert str(payload["timestamp"]) == hook.headers["x-fieldmon-timestamp"]
    assert near_now(payload["timestamp"])
    assert hook.headers["x-fieldmon-delivery"] == payload["delivery"]
    assert payload["count"] == 1 and payload["notices"][0]["number"] == "INC-202611-000001"
    assert payload["notices"][0]["tier"] == 2 and payload["notices"][0]["level"] == 1

    # DingTalk: access_token, timestamp (ms) and sign in the query.
    [ding] = http.on("/robot/send")
    q = ding.query
    assert q["access_token"] == DINGTALK_TOKEN
    assert near_now(int(q["timestamp"]) / 1000)
    assert q["sign"] == _dingtalk_sign(q["timestamp"], DINGTALK_SECRET)
    raw_sign = next(p.partition("=")[2] for p in ding.raw_query.split("&") if p.startswith("sign="))
    assert "+" not in raw_sign and "/" not in raw_sign, "base64 must be URL-encoded"
    assert unquote(raw_sign) == q["sign"]
    body = ding.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[一级故障] east-gate")
    assert "**INC-202611-000001**" in body["markdown"]["text"]
    assert "@13800000001" in body["markdown"]["text"]
    assert body["at"] == {"atMobiles": ["13800000001"], "isAtAll": False}

    # WeCom: the key in the query, no signature, markdown within 4096 bytes.
    [wecom] = http.on("/cgi-bin/webhook/send")
    assert wecom.query == {"key": WECOM_KEY}
    body = wecom.json()
    assert body["msgtype"] == "markdown"
    assert "二级维护" in body["markdown"]["content"]
    assert len(body["markdown"]["content"].encode()) <= 4096

    # Feishu: token as the last path segment, timestamp (s) and sign in the body.
    [feishu] = http.on(f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}")
    body = feishu.json()
    assert near_now(int(body["timestamp"]))
    assert body["sign"] == _feishu_sign(body["timestamp"], FEISHU_SECRET)
    assert body["msg_type"] == "interactive"
    assert body["card"]["header"]["template"] == "red"
    assert "INC-202611-000001" in body["card"]["elements"][0]["text"]["content"]

    # SMS: the template filled, the token in the header, the text within 70 characters.
    [sms] = http.on("/sms/send")
    assert sms.headers["authorization"] == f"Bearer {SMS_TOKEN}"
    body = sms.json()
    assert body["mobile"] == "13800000001" and body["sign"] == "运维中心"
    assert 0 < len(body["content"]) <= 70 and "一级故障" in body["content"]


async def test_sms_form_and_get_encodings(http: Recorder) -> None:
    outcomes = Outcomes()
    base = {"type": "sms", "numbers": ["13800000002"], "max_length": 20}
    channels = {
        "form": {
            **base,
            "url": http.url("/form"),
            "encoding": "form",
            "template": {"to": "{phone}", "msg": "{text}"},
        },
        "get": {
            **base,
            "url": http.url("/get?apikey={token}"),
            "method": "GET",
            "token": SMS_TOKEN,
            "template": {"to": "{phone}", "msg": "{text}"},
            "lang": "en",
        },
    }
    async with Notifier(make_config(channels), outcomes) as notifier:
        notifier.submit(notice(3, level=2))
        await until(lambda: len(outcomes.finals()) == 2)
    [form] = http.on("/form")
    fields = {k: v[0] for k, v in parse_qs(form.body.decode()).items()}
    assert fields["to"] == "13800000002" and len(fields["msg"]) == 20 and fields["msg"][-1] == "…"
    [get] = http.on("/get")
    assert get.method == "GET" and get.query["apikey"] == SMS_TOKEN
    assert get.query["msg"].startswith("[L2] east-g")


async def test_storm_of_500_is_one_message_per_channel(
    http: Recorder, smtp_starttls: tuple[Inbox, int], cert: tuple[Path, Path]
) -> None:
    inbox, port = smtp_starttls
    outcomes = Outcomes()
    channels = http_channels(http) | {
        "mail": email_channel(port, cert[0], groups=[{"to": ["desk@example.net"]}])
    }
    cfg = make_config(channels, window=1.0)
    async with Notifier(cfg, outcomes) as notifier:
        for i in range(500):
            notifier.submit(notice(i, level=2))
        await until(lambda: len(outcomes.finals()) == 6)

    assert all(o.ok for o in outcomes.finals())
    for numbers, _ in outcomes.items:
        assert len(numbers) == 500
    assert len(http.requests) == 5, [r.path for r in http.requests]
    assert len(inbox.mails) == 1
    [mail] = inbox.mails
    assert "500 个故障" in mail.message["Subject"]
    assert "另有 450 条未列出" in mail.body, "max_items 50 listed, the rest counted"
    assert http.on("/hook")[0].json()["count"] == 500
    assert "500 个故障" in http.on("/robot/send")[0].json()["markdown"]["text"]
    assert "另有 490 条" in http.on("/robot/send")[0].json()["markdown"]["text"]
    assert "500 个故障" in http.on("/cgi-bin/webhook/send")[0].json()["markdown"]["content"]
    feishu = http.on(f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}")[0].json()
    assert "500 个故障" in feishu["card"]["header"]["title"]["content"]
    assert "500" in http.on("/sms/send")[0].json()["content"]


async def test_failed_delivery_is_retried_and_every_attempt_reported(http: Recorder) -> None:
    http.script["/hook"] = [500]
    outcomes = Outcomes()
    cfg = make_config({"hook": http_channels(http)["hook"]})
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        notifier.submit(notice(2))
        await until(lambda: bool(outcomes.finals()))

    first, second = outcomes.items
    assert first[0] == second[0] == ("INC-202611-000001", "INC-202611-000002")
    assert not first[1].ok and first[1].attempts == 1 and not first[1].final
    assert "HTTP 500" in first[1].detail
    assert second[1].ok and second[1].attempts == 2 and second[1].final
    a, b = http.on("/hook")
    assert a.headers["x-fieldmon-delivery"] == b.headers["x-fieldmon-delivery"], "same id"


async def test_robot_refusal_in_the_body_is_a_failure(http: Recorder) -> None:
    """The robots answer HTTP 200 and put the refusal in the body: that is not delivered."""
    chans = http_channels(http)
    http.replies["/robot/send"] = b'{"errcode": 310000, "errmsg": "sign not match"}'
    http.replies[f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}"] = (
        b'{"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}'
    )
    http.replies["/cgi-bin/webhook/send"] = b'{"errcode": 93000, "errmsg": "invalid webhook url"}'
    http.replies["/sms/send"] = b'{"code": 1001, "message": "balance exhausted"}'
    outcomes = Outcomes()
    channels = {k: chans[k] for k in ("ding", "feishu", "wecom", "sms")}
    async with Notifier(make_config(channels, retry={"attempts": 1}), outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: len(outcomes.finals()) == 4)
    detail = {o.channel: o.detail for o in outcomes.finals() if not o.ok}
    assert "DingTalk refused the message: errcode 310000: sign not match" in detail["ding"]
    assert "Feishu refused the message: code 19021" in detail["feishu"]
    assert "WeCom refused the message: errcode 93000" in detail["wecom"]
    assert "'code': 1001" in detail["sms"]


async def test_unreachable_smtp_gives_up_after_bounded_attempts(cert: tuple[Path, Path]) -> None:
    port = free_port()  # nothing listens here
    outcomes = Outcomes()
    cfg = make_config({"mail": email_channel(port, cert[0])})
    started = time.monotonic()
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: bool(outcomes.finals()))
    assert time.monotonic() - started < 5
    attempts = [o for _, o in outcomes.items]
    assert [o.attempts for o in attempts] == [1, 2, 3]
    assert [o.final for o in attempts] == [False, False, True]
    assert not any(o.ok for o in attempts)
    assert f"SMTP 127.0.0.1:{port}" in attempts[-1].detail


async def test_rate_limit_groups_the_rest_into_the_next_message(http: Recorder) -> None:
    outcomes = Outcomes()
    hook = {**http_channels(http)["hook"], "rate_limit": 2, "rate_period": 1.0}
    cfg = make_config({"hook": hook}, window=0)
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: len(http.on("/hook")) == 1)
        notifier.submit(notice(2))
        await until(lambda: len(http.on("/hook")) == 2)
        second_at = time.monotonic()
        for i in range(3, 8):
            notifier.submit(notice(i))
        await until(lambda: len(http.on("/hook")) == 3)
        third_after = time.monotonic() - second_at
        await asyncio.sleep(0.3)
    assert len(http.on("/hook")) == 3
    assert 0.5 < third_after < 3, "the third message waited for the rate period"
    third = http.on("/hook")[2].json()
    assert third["count"] == 5
    assert [n["number"] for n in third["notices"]] == [f"INC-202611-{i:06d}" for i in range(3, 8)]


async def test_stop_flushes_pending_groups_at_once(http: Recorder) -> None:
    outcomes = Outcomes()
    cfg = make_config({"hook": http_channels(http)["hook"]}, window=60)
    started = time.monotonic()
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        await asyncio.sleep(0.1)
        assert http.requests == [], "still inside its window"
    assert time.monotonic() - started < 3
    assert len(http.on("/hook")) == 1
    assert outcomes.items[0][1].ok


async def test_stop_gives_up_at_the_flush_deadline(http: Recorder) -> None:
    http.script["/hook"] = [500] * 100
    outcomes = Outcomes()
    cfg = make_config(
        {"hook": http_channels(http)["hook"]},
        flush_timeout=0.5,
        retry={"attempts": 10, "initial": 0.2, "max_delay": 10},
    )
    stop = asyncio.Event()
    notifier = Notifier(cfg, outcomes)
    task = asyncio.create_task(notifier.run(stop))
    notifier.submit(notice(1))
    await until(lambda: len(outcomes.items) >= 1)
    stop.set()
    started = time.monotonic()
    await task
    assert time.monotonic() - started < 2
    last = outcomes.items[-1][1]
    assert not last.ok and last.final
    assert len(outcomes.finals()) == 1
    notifier.submit(notice(2))  # after stop: logged, not raised


class Hanging:
    """A channel whose server accepts and never answers."""

    name = "hanging"

    async def send(self, batch: Batch) -> str:
        await asyncio.sleep(60)
        return "never"

    async def aclose(self) -> None:
        pass

    def secrets(self) -> list[str]:
        return []


async def test_stop_reports_a_message_still_in_flight_at_the_deadline() -> None:
    outcomes = Outcomes()
    cfg = make_config(
        {"hanging": {"type": "webhook", "url": "http://127.0.0.1:9/", "timeout": 30}},
        flush_timeout=0.3,
        window=0,
    )
    started = time.monotonic()
    async with Notifier(cfg, outcomes, channels={"hanging": Hanging()}) as notifier:
        notifier.submit(notice(1))
        await asyncio.sleep(0.1)
    assert time.monotonic() - started < 2
    [(numbers, outcome)] = outcomes.items
    assert numbers == ("INC-202611-000001",)
    assert not outcome.ok and outcome.final and outcome.attempts == 1
    assert "collector stopping" in outcome.detail


async def test_a_broken_channel_does_not_stop_the_others(http: Recorder) -> None:
    class Broken:
        name = "broken"

        async def send(self, batch: Batch) -> str:
            raise RuntimeError("bug in a channel")

        async def aclose(self) -> None:
            pass

        def secrets(self) -> list[str]:
            return []

    channels = {
        "hook": http_channels(http)["hook"],
        "broken": {"type": "webhook", "url": "http://127.0.0.1:9/"},
        "slow": {"type": "webhook", "url": "http://127.0.0.1:9/", "timeout": 0.2},
    }
    outcomes = Outcomes()
    cfg = make_config(channels, retry={"attempts": 1})
    async with Notifier(cfg, outcomes, channels={"broken": Broken(), "slow": Hanging()}) as n:
        n.submit(notice(1))
        await until(lambda: len(outcomes.finals()) == 3)
    assert outcomes.of("hook")[0][1].ok
    broken = outcomes.of("broken")[0][1]
    assert not broken.ok and "RuntimeError: bug in a channel" in broken.detail
    slow = outcomes.of("slow")[0][1]
    assert not slow.ok and "no answer within 0.2 s" in slow.detail


async def test_submit_never_raises(http: Recorder) -> None:
    def failing_callback(numbers: tuple[str, ...], outcome: Outcome) -> None:
        raise ValueError("timeline is down")

    cfg = make_config(
        {"hook": http_channels(http)["hook"]},
        routes=[{"levels": [1], "channels": ["hook"]}],
    )
    async with Notifier(cfg, failing_callback) as notifier:
        notifier.submit(notice(1, level=4))  # no route: ignored
        notifier.submit("not a notice")  # type: ignore[arg-type]
        notifier.submit(notice(2, level=1))
        await until(lambda: len(http.requests) == 1)
    assert http.requests[0].json()["notices"][0]["number"] == "INC-202611-000002"


async def test_sms_retry_does_not_text_the_same_number_twice(http: Recorder) -> None:
    http.script["/sms/send"] = [200, 500]  # first number accepted, second refused once
    sms = {**http_channels(http)["sms"], "numbers": ["13800000001", "13900000002"]}
    outcomes = Outcomes()
    async with Notifier(make_config({"sms": sms}), outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: bool(outcomes.finals()))
    phones = [r.json()["mobile"] for r in http.on("/sms/send")]
    assert phones == ["13800000001", "13900000002", "13900000002"]
    first, second = (o for _, o in outcomes.items)
    assert "1 of 2 number(s) failed" in first.detail and "139****0002" in first.detail
    assert second.ok and second.attempts == 2


async def test_routes_pick_channels_by_level_tier_and_site(http: Recorder) -> None:
    chans = http_channels(http)
    channels = {"sms": chans["sms"], "ding": chans["ding"], "hook": chans["hook"]}
    routes = [
        {"levels": [1, 2], "channels": ["sms", "ding"], "window": 0},
        {"levels": [3, 4], "channels": ["hook"]},
        {"sites": ["east-gate"], "tiers": [2, 3], "channels": ["hook"]},
        {"sites": ["west-gate"], "channels": ["sms"]},
    ]
    outcomes = Outcomes()
    async with Notifier(make_config(channels, routes=routes), outcomes) as notifier:
        notifier.submit(notice(1, level=1, tier=1))
        notifier.submit(notice(2, level=3, tier=1))
        notifier.submit(notice(3, level=1, tier=2))
        await until(lambda: len(outcomes.finals()) == 3)
    assert set(outcomes.of("sms")[0][0]) == {"INC-202611-000001", "INC-202611-000003"}
    assert set(outcomes.of("ding")[0][0]) == {"INC-202611-000001", "INC-202611-000003"}
    assert set(outcomes.of("hook")[0][0]) == {"INC-202611-000002", "INC-202611-000003"}


async def test_async_outcome_callback_is_awaited(http: Recorder) -> None:
    seen: list[Outcome] = []

    async def record(numbers: tuple[str, ...], outcome: Outcome) -> None:
        await asyncio.sleep(0)
        seen.append(outcome)

    async with Notifier(make_config({"hook": http_channels(http)["hook"]}), record) as n:
        n.submit(notice(1))
        await until(lambda: bool(seen))
    assert seen[0].ok


async def test_secrets_never_reach_logs_or_outcomes(
    http: Recorder,
    smtp_starttls: tuple[Inbox, int],
    cert: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox, port = smtp_starttls
    http.echo = True  # failures repeat the request URL back, token and all
    for path in ("/hook", "/robot/send", "/cgi-bin/webhook/send", "/sms/send"):
        http.script[path] = [500]
    http.script[f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}"] = [503]
    channels = http_channels(http) | {
        "mail": email_channel(port, cert[0]),
        "mail-badpw": email_channel(port, cert[0], password=SMTP_PASSWORD + "-wrong"),
    }
    outcomes = Outcomes()
    cfg = make_config(channels, retry={"attempts": 2, "initial": 0.05})
    async with Notifier(cfg, outcomes) as notifier:
        notifier.submit(notice(1))
        await until(lambda: len(outcomes.finals()) == 7)

    assert len(inbox.mails) == 2
    by_channel = {o.channel: o for o in outcomes.finals()}
    assert not by_channel["mail-badpw"].ok and "refused" in by_channel["mail-badpw"].detail
    assert all(by_channel[c].ok for c in ("hook", "ding", "wecom", "feishu", "sms", "mail"))
    # The failed first attempts echoed the URLs; they must have been scrubbed.
    failed = [o.detail for _, o in outcomes.items if not o.ok]
    assert any("HTTP 500" in d for d in failed)
    assert any("access_token=***" in d for d in failed), "the echoed token was masked"
    assert "/robot/send?***" in caplog.text, "httpx's request line was masked"
    assert "login as 'noc@example.net' refused: 535" in by_channel["mail-badpw"].detail
    assert any(r.name == "httpx" for r in caplog.records), "httpx request lines were captured"
    text = caplog.text + "\n".join(o.detail for _, o in outcomes.items)
    for secret in ALL_SECRETS:
        assert secret not in text, f"secret leaked: {secret[:4]}…"
    assert "sign=" not in caplog.text.replace("sign=***", "")


async def test_notify_error_is_the_channel_exception() -> None:
    from collector.notify.channel import build_channel
    from collector.notify.config import WebhookConfig

    channel = build_channel(
        "hook", WebhookConfig(type="webhook", url=f"http://127.0.0.1:{free_port()}/", timeout=2)
    )
    with pytest.raises(NotifyError, match=r"webhook http://127\.0\.0\.1:\d+: "):
        await channel.send(Batch("hook", (notice(1),)))
    await channel.aclose()
