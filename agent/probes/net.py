"""Net probe: what a camera, NVR or switch answers on the network (``[targets.net]``).

Cameras and NVRs cannot run an agent, and many ship with SNMP switched off; what the contract
really cares about is whether the video can be pulled. So the agent on a nearby server checks:

* ``ping.rtt`` — ICMP echo to ``address`` (icmplib): the round trip in ms, or ``down`` (CRIT).
  Unprivileged ICMP sockets are used where ``net.ipv4.ping_group_range`` allows them, raw
  sockets when the agent runs as root; when neither is allowed the item is UNKNOWN with that
  reason instead of a false "down".
* ``tcp.open`` — one item per configured port: ``open`` or ``closed`` (refused, or no answer
  within ``timeout``), with the connect latency in the summary.
* ``http.status`` — one item per URL: the status code of a GET (redirects are not followed, a
  login redirect already proves the web server answers). The catalogue counts 2xx, 3xx and 401
  as answering; ``no answer`` or any other code is CRIT. Certificates are not verified here:
  cameras ship self-signed ones, and this item asks "does it answer", not "is it genuine".
* ``tls.days_left`` — for each https URL: days until the served certificate's not-after
  (WARN at 30, CRIT at 7), read from a handshake of its own so that an expired certificate is
  still measured. A failed handshake is UNKNOWN here; ``http.status`` raises that fault.
* ``rtsp.answering`` — one item per rtsp URL: a minimal ``OPTIONS`` request (RFC 2326); a
  ``200`` or a ``401`` (the camera wants credentials) means the stream service answers.
  Credentials in a configured URL are never sent in the request line nor shown in the item.

Camera online state (视频在线率). The collector computes the rate; these items are its inputs.
A camera counts as online when its stream service answers (``rtsp.answering`` OK) — that is
what the video platform needs. Without ``rtsp`` configured, ``snmp.reachable`` (or, with SNMP
off, ``ping.rtt``) stands in. Read together they say where the fault is: ping down (and SNMP
down) means the camera or the path to it is gone — when its ``parent`` switch is down too, the
collector folds it into the switch's one root incident; ping up but RTSP not answering means
the device lives but its video service hangs (a restart of the camera, level 3); ping and RTSP
up but SNMP down means only the management agent is off or misconfigured.

Every check of one collection runs concurrently and each has its own timeout, so a dead device
costs one ``timeout``, not one per item; nothing a device sends raises out of :meth:`collect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Set
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from agent.config import TargetConfig
from agent.net_config import NetConfig
from agent.probes.base import Observation, unknown
from checks.status import Status

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

PING = "ping.rtt"
TCP_OPEN = "tcp.open"
HTTP_STATUS = "http.status"
TLS_DAYS = "tls.days_left"
RTSP = "rtsp.answering"
#: The catalogue ids this probe measures (snmp-device.toml and the classes built on it).
SUPPORTED = frozenset({PING, TCP_OPEN, HTTP_STATUS, TLS_DAYS, RTSP})

#: RTSP status codes that prove the stream service is there (401: it wants credentials).
RTSP_ANSWERING = (200, 401)
#: Echo requests per ping check: one lost packet must not read as "down".
PING_COUNT = 3
#: Longest RTSP reply header read; a real OPTIONS reply is a few hundred bytes.
MAX_RTSP_REPLY = 8192


def public_url(url: str) -> str:
    """``url`` without user and password: it names an item and goes on the wire."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _error(exc: BaseException) -> str:
    """A short reason for a summary, without a traceback."""
    text = str(exc) or type(exc).__name__
    return text[:300]


class NetProbe:
    """Measures the ``net`` items of a target; stateless apart from the ICMP mode it found."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        #: None until the first ping; then whether raw (privileged) sockets are used.
        self._privileged: bool | None = None

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        net = target.net
        if net is None:
            return [unknown(c, "no [net] section for this target") for c in sorted(checks)]
        jobs: list[Awaitable[list[Observation]]] = []
        if PING in checks:
            jobs.append(self._ping(target, net))
        if TCP_OPEN in checks:
            jobs += [self._tcp(target, net, port) for port in net.tcp_ports]
        if HTTP_STATUS in checks:
            jobs += [self._http(net, url) for url in net.urls]
        if TLS_DAYS in checks:
            jobs += [self._tls(net, url) for url in net.urls if url.lower().startswith("https:")]
        if RTSP in checks:
            jobs += [self._rtsp(net, url) for url in net.rtsp]
        parts = await asyncio.gather(*jobs)
        return [obs for part in parts for obs in part]

    async def _ping(self, target: TargetConfig, net: NetConfig) -> list[Observation]:
        if not net.ping:
            return []
        import icmplib  # loaded only for targets that ping

        address = target.address or ""
        modes = [self._privileged] if self._privileged is not None else [False, True]
        reasons: list[str] = []
        for privileged in modes:
            if privileged and os.geteuid() != 0:
                reasons.append("raw ICMP sockets need root")
                continue
            try:
                host = await icmplib.async_ping(
                    address,
                    count=PING_COUNT,
                    interval=0.2,
                    timeout=net.timeout,
                    privileged=privileged,
                )
            except icmplib.SocketPermissionError as exc:
                reasons.append(f"{'raw' if privileged else 'unprivileged'} ICMP: {_error(exc)}")
                continue
            except icmplib.ICMPLibError as exc:
                return [unknown(PING, f"cannot ping {address}: {_error(exc)}")]
            self._privileged = privileged
            if not host.is_alive:
                return [
                    Observation(
                        check=PING,
                        value="down",
                        summary=f"no reply to {host.packets_sent} echo requests",
                        unit="",
                        status=Status.CRIT,
                    )
                ]
            return [
                Observation(
                    check=PING,
                    value=round(host.avg_rtt, 2),
                    summary=f"{host.packets_received}/{host.packets_sent} replies,"
                    f" max {host.max_rtt:.2f} ms",
                )
            ]
        return [unknown(PING, "ICMP not permitted on this host: " + "; ".join(reasons))]

    async def _tcp(self, target: TargetConfig, net: NetConfig, port: int) -> list[Observation]:
        address = target.address or ""
        item = str(port)
        started = time.monotonic()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), net.timeout)
        except TimeoutError:
            summary = f"no answer within {net.timeout:g}s (filtered or host down)"
            return [Observation(check=TCP_OPEN, item=item, value="closed", summary=summary)]
        except OSError as exc:
            summary = f"connection failed: {_error(exc)}"
            return [Observation(check=TCP_OPEN, item=item, value="closed", summary=summary)]
        latency = (time.monotonic() - started) * 1000
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), net.timeout)
        return [
            Observation(
                check=TCP_OPEN, item=item, value="open", summary=f"connected in {latency:.1f} ms"
            )
        ]

    def _http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx  # loaded only for targets with URLs

            # verify=False: cameras' certificates are self-signed; tls.days_left reads them.
            self._client = httpx.AsyncClient(verify=False, follow_redirects=False)
        return self._client

    async def _http(self, net: NetConfig, url: str) -> list[Observation]:
        import httpx

        item = public_url(url)
        started = time.monotonic()
        try:
            response = await self._http_client().get(url, timeout=net.timeout)
        except httpx.TimeoutException:
            summary = f"no answer within {net.timeout:g}s"
            return [Observation(check=HTTP_STATUS, item=item, value="no answer", summary=summary)]
        except httpx.HTTPError as exc:
            summary = f"request failed: {_error(exc)}"
            return [Observation(check=HTTP_STATUS, item=item, value="no answer", summary=summary)]
        latency = (time.monotonic() - started) * 1000
        summary = f"{response.status_code} {response.reason_phrase} in {latency:.0f} ms"
        location = response.headers.get("location")
        if location:
            summary += f" → {location[:200]}"
        return [
            Observation(check=HTTP_STATUS, item=item, value=response.status_code, summary=summary)
        ]

    async def _tls(self, net: NetConfig, url: str) -> list[Observation]:
        item = public_url(url)
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        context = ssl.create_default_context()
        # The certificate is read, not trusted: an expired or self-signed one must still be
        # measured (that is the point of the item).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host),
                net.timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = _error(exc) if not isinstance(exc, TimeoutError) else "timed out"
            return [unknown(TLS_DAYS, f"TLS handshake failed: {reason}", item)]
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), net.timeout)
        if not der:
            return [unknown(TLS_DAYS, "the server sent no certificate", item)]
        return [_days_left(der, item)]

    async def _rtsp(self, net: NetConfig, url: str) -> list[Observation]:
        item = public_url(url)
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 554
        request = f"OPTIONS {item} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: fieldmon\r\n\r\n".encode(
            "ascii"
        )

        def answer(value: str, summary: str) -> list[Observation]:
            return [Observation(check=RTSP, item=item, value=value, summary=summary)]

        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), net.timeout
            )
        except TimeoutError:
            return answer("no answer", f"no connection within {net.timeout:g}s")
        except OSError as exc:
            return answer("no answer", f"connection failed: {_error(exc)}")
        try:
            writer.write(request)
            await asyncio.wait_for(writer.drain(), net.timeout)
            line = await asyncio.wait_for(reader.readline(), net.timeout)
        except TimeoutError:
            return answer("no answer", f"connected, but no reply within {net.timeout:g}s")
        except (OSError, ValueError) as exc:
            return answer("no answer", f"reply failed: {_error(exc)}")
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        status = line[:MAX_RTSP_REPLY].decode("latin-1").strip()
        fields = status.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("RTSP/") or not fields[1].isdigit():
            shown = status[:80] or "connection closed without a reply"
            return answer("not rtsp", f"not an RTSP reply: {shown!r}")
        code = int(fields[1])
        if code in RTSP_ANSWERING:
            return answer("answering", status[:200])
        return answer(f"status {code}", status[:200])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _days_left(der: bytes, item: str, now: datetime | None = None) -> Observation:
    """``tls.days_left`` from a DER certificate: days (one decimal) until its not-after."""
    from cryptography import x509  # paramiko's dependency already; loaded only for https URLs

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return unknown(TLS_DAYS, f"unreadable certificate: {_error(exc)}", item)
    not_after = cert.not_valid_after_utc
    days = (not_after - (now or datetime.now(UTC))).total_seconds() / 86400
    subject = cert.subject.rfc4514_string()[:200]
    return Observation(
        check=TLS_DAYS,
        item=item,
        value=round(days, 1),
        summary=f"expires {not_after:%Y-%m-%d %H:%M} UTC ({subject})",
        facts={"not_after": not_after.isoformat(), "subject": subject},
    )
