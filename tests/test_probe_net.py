"""Net probe against real servers the tests start on loopback: a TCP listener and a closed
port, HTTP and HTTPS servers (with a certificate made here that expires in 5 days), an RTSP
responder and a port that accepts but never answers, and ICMP echo to 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import POLLED_METHODS, TargetConfig, load_agent_config
from agent.probes.net import (
    HTTP_STATUS,
    PING,
    RTSP,
    SUPPORTED,
    TCP_OPEN,
    TLS_DAYS,
    NetProbe,
    public_url,
)
from agent.runner import Probes, check_all
from agent.scheduler import collect_once
from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from fieldmon.configfile import ConfigError

CAMERA = load_catalogue()["camera"]
HOST = "127.0.0.1"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


@dataclass
class Servers:
    tcp: int
    closed: int
    http: int
    https: int
    rtsp_401: int
    rtsp_200: int
    rtsp_404: int
    silent: int


def _certificate(tmp: Path, days: int) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 that expires in ``days`` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camera.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny web UI: / 200, /login 302, /secure 401, anything else 500."""
    line = (await reader.readline()).decode()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
    status = {"/": "200 OK", "/login": "302 Found", "/secure": "401 Unauthorized"}.get(
        path, "500 Internal Server Error"
    )
    extra = "Location: /doc/page/login.asp\r\n" if path == "/login" else ""
    writer.write(
        f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    writer.close()


def _rtsp(status: str) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        assert request.startswith(b"OPTIONS rtsp://") and b"CSeq: 1\r\n" in request
        assert b"secret" not in request  # credentials never go into the request line
        writer.write(f"RTSP/1.0 {status}\r\nCSeq: 1\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return handle


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never answers (a hung stream service)."""
    with contextlib.suppress(Exception):
        await reader.read()
    writer.close()


async def _accept_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    cert, key = _certificate(tmp_path, days=5)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    started: list[asyncio.Server] = []

    async def serve(handler: Handler, **kw: Any) -> int:
        server = await asyncio.start_server(handler, HOST, 0, **kw)
        started.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield Servers(
        tcp=await serve(_accept_close),
        closed=_closed_port(),
        http=await serve(_http),
        https=await serve(_http, ssl=tls),
        rtsp_401=await serve(_rtsp("401 Unauthorized")),
        rtsp_200=await serve(_rtsp("200 OK")),
        rtsp_404=await serve(_rtsp("404 Not Found")),
        silent=await serve(_silent),
    )
    for server in started:
        server.close()
    for server in started:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def _target(s: Servers, **extra: Any) -> TargetConfig:
    net = {
        "timeout": 0.5,
        "tcp_ports": [s.tcp, s.closed],
        "urls": [
            f"http://{HOST}:{s.http}/",
            f"http://{HOST}:{s.http}/login",
            f"http://{HOST}:{s.http}/secure",
            f"http://{HOST}:{s.http}/broken",
            f"http://{HOST}:{s.closed}/",
            f"https://{HOST}:{s.https}/",
        ],
        "rtsp": [
            f"rtsp://admin:secret@{HOST}:{s.rtsp_401}/Streaming/Channels/101",
            f"rtsp://{HOST}:{s.rtsp_200}/cam/realmonitor?channel=1",
            f"rtsp://{HOST}:{s.rtsp_404}/nope",
            f"rtsp://{HOST}:{s.silent}/hung",
            f"rtsp://{HOST}:{s.closed}/off",
        ],
    }
    return TargetConfig.from_dict(
        {"name": "cam-01", "class": "camera", "address": HOST, "net": net, **extra}
    )


async def _results(target: TargetConfig, checks: set[str]) -> dict[str, Result]:
    probe = NetProbe()
    try:
        results = await collect_once(probe, target, CAMERA, checks)
    finally:
        await probe.close()
    return {r.key: r for r in results}


async def test_tcp_open_and_closed(servers: Servers) -> None:
    got = await _results(_target(servers), {TCP_OPEN})
    by_item = {r.item: r for r in got.values()}
    open_ = by_item[str(servers.tcp)]
    assert (open_.status, open_.value) == (Status.OK, "open")
    assert "connected in" in open_.summary and "ms" in open_.summary
    closed = by_item[str(servers.closed)]
    assert (closed.status, closed.value) == (Status.CRIT, "closed")
    assert "refused" in closed.summary.lower() or "connection failed" in closed.summary


async def test_http_status_answering_codes(servers: Servers) -> None:
    got = {r.item: r for r in (await _results(_target(servers), {HTTP_STATUS})).values()}
    base = f"http://{HOST}:{servers.http}"
    assert (got[f"{base}/"].value, got[f"{base}/"].status) == (200, Status.OK)
    login = got[f"{base}/login"]
    assert (login.value, login.status) == (302, Status.OK)  # not followed: it answers
    assert "/doc/page/login.asp" in login.summary
    assert (got[f"{base}/secure"].value, got[f"{base}/secure"].status) == (401, Status.OK)
    assert (got[f"{base}/broken"].value, got[f"{base}/broken"].status) == (500, Status.CRIT)
    dead = got[f"http://{HOST}:{servers.closed}/"]
    assert (dead.value, dead.status) == ("no answer", Status.CRIT)
    # A self-signed camera certificate does not stop the status check.
    https = got[f"https://{HOST}:{servers.https}/"]
    assert (https.value, https.status) == (200, Status.OK)


async def test_tls_days_left_crit_then_warn_by_override(servers: Servers) -> None:
    url = f"https://{HOST}:{servers.https}/"
    got = list((await _results(_target(servers), {TLS_DAYS})).values())
    assert [r.item for r in got] == [url]  # only https URLs have a certificate
    (crit,) = got
    assert crit.status == Status.CRIT and isinstance(crit.value, float)
    assert 4.9 < crit.value <= 5.0
    assert "CN=camera.test" in crit.summary and crit.unit == "d"
    lowered = _target(servers, thresholds={TLS_DAYS: {"lower": [10, 3]}})
    (warn,) = (await _results(lowered, {TLS_DAYS})).values()
    assert warn.status == Status.WARN


async def test_tls_handshake_failure_is_unknown(servers: Servers) -> None:
    target = TargetConfig.from_dict(
        {
            "name": "cam-02",
            "class": "camera",
            "address": HOST,
            "net": {"timeout": 0.5, "ping": False, "urls": [f"https://{HOST}:{servers.http}/"]},
        }
    )
    (res,) = (await _results(target, {TLS_DAYS})).values()
    assert res.status == Status.UNKNOWN and "TLS handshake failed" in res.summary


async def test_rtsp_answering(servers: Servers) -> None:
    got = {r.item: r for r in (await _results(_target(servers), {RTSP})).values()}
    hik = got[f"rtsp://{HOST}:{servers.rtsp_401}/Streaming/Channels/101"]  # no credentials
    assert (hik.value, hik.status) == ("answering", Status.OK)
    assert "401" in hik.summary
    dahua = got[f"rtsp://{HOST}:{servers.rtsp_200}/cam/realmonitor?channel=1"]
    assert (dahua.value, dahua.status) == ("answering", Status.OK)
    missing = got[f"rtsp://{HOST}:{servers.rtsp_404}/nope"]
    assert (missing.value, missing.status) == ("status 404", Status.CRIT)
    hung = got[f"rtsp://{HOST}:{servers.silent}/hung"]
    assert (hung.value, hung.status) == ("no answer", Status.CRIT)
    assert "no reply within 0.5s" in hung.summary
    off = got[f"rtsp://{HOST}:{servers.closed}/off"]
    assert (off.value, off.status) == ("no answer", Status.CRIT)
    assert not any("secret" in r.item or "secret" in r.summary for r in got.values())


async def test_ping_loopback() -> None:
    """ICMP to 127.0.0.1: unprivileged sockets where ping_group_range allows, raw as root.
    On a host that allows neither, the item must be UNKNOWN with that reason, never "down"."""
    target = TargetConfig.from_dict(
        {"name": "cam-03", "class": "camera", "address": HOST, "net": {"timeout": 1}}
    )
    (res,) = (await _results(target, {PING})).values()
    if res.status == Status.UNKNOWN:
        assert "ICMP not permitted" in res.summary
    else:
        assert res.status == Status.OK and isinstance(res.value, float) and res.unit == "ms"
        assert "3/3 replies" in res.summary


async def test_dead_device_costs_one_timeout(servers: Servers) -> None:
    """Every check of a collection runs concurrently: a hung device costs one timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    target = _target(servers)
    await _results(target, set(SUPPORTED) - {PING})
    assert loop.time() - started < 2.0


def test_config_and_wiring(tmp_path: Path) -> None:
    base = {"site": "s1", "agent": "a1", "state_dir": str(tmp_path)}
    # A camera with SNMP switched off is still watched over [net].
    cfg = load_agent_config(
        None,
        {
            **base,
            "targets": [
                {
                    "name": "cam",
                    "class": "camera",
                    "address": HOST,
                    "net": {"rtsp": [f"rtsp://{HOST}/"]},
                }
            ],
        },
    )
    assert cfg.targets[0].methods() == {"net"} and "net" in POLLED_METHODS
    assert isinstance(Probes(cfg, None).for_method("net"), NetProbe)
    # …but without [net] nor [snmp] it is still refused.
    with pytest.raises(ConfigError, match="checked over SNMP"):
        load_agent_config(
            None, {**base, "targets": [{"name": "c", "class": "camera", "address": HOST}]}
        )
    for net, message in (
        ({"ping": True}, "needs 'address'"),
        ({"ping": False, "urls": ["ftp://x/"]}, "http or https URL"),
        ({"ping": False, "rtsp": ["http://x/"]}, "rtsp URL"),
        ({"ping": False, "tcp_ports": [70000]}, r"tcp_ports\[0\]: Expected `int` <= 65535"),
    ):
        target = {"name": "c", "class": "camera", "net": net}
        with pytest.raises(ConfigError, match=message):
            load_agent_config(None, {**base, "targets": [target]})


def test_public_url_hides_credentials() -> None:
    assert public_url("rtsp://admin:pw@10.0.0.5:554/a?b=1") == "rtsp://10.0.0.5:554/a?b=1"
    assert public_url("http://10.0.0.5/") == "http://10.0.0.5/"


async def test_check_all_runs_net_items(servers: Servers, tmp_path: Path) -> None:
    """``agent check`` through the runner: only the [net] items of an SNMP-less camera."""
    cfg = load_agent_config(
        None,
        {
            "site": "s1",
            "agent": "a1",
            "state_dir": str(tmp_path),
            "targets": [msgspec.to_builtins(_target(servers))],
        },
    )
    results = await check_all(cfg)
    assert {r.check for r in results} == set(SUPPORTED)
    assert all(r.target == "cam-01" and r.target_class == "camera" for r in results)
