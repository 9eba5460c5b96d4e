"""``[targets.net]``: how the agent checks a device over plain network protocols.

Kept apart from :mod:`agent.config` so that the net probe's settings and their validation live
next to each other without growing the shared configuration module; ``TargetConfig.net``
refers to :class:`NetConfig`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from fieldmon.config_structs import Port, StrictStruct

#: Result items are at most 256 characters (wire schema), and a URL is an item name.
MAX_URL_LEN = 256


def _url(value: str, schemes: tuple[str, ...]) -> str:
    """A URL the probe can use as-is: the scheme it expects, a host, no control characters."""
    text = value.strip()
    if len(text) > MAX_URL_LEN:
        raise ValueError(f"{text[:40]!r}…: URLs are limited to {MAX_URL_LEN} characters")
    if any(c in text for c in "\r\n\x00 "):
        raise ValueError(f"{text!r}: a URL must not contain spaces or control characters")
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{text!r} must be a {' or '.join(schemes)} URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
    return text


class NetConfig(StrictStruct):
    """Checks over the network, for devices that cannot run an agent (cameras, NVRs, switches).

    ``ping`` and ``tcp_ports`` use the target's ``address``; URLs carry their own host, so a
    web UI behind a different name or port is checked where it really is.
    """

    #: ICMP echo to ``address`` (``ping.rtt``).
    ping: bool = True
    #: TCP ports that must accept a connection (``tcp.open``, one item per port).
    tcp_ports: list[Port] = msgspec.field(default_factory=list)
    #: http:// or https:// URLs (``http.status``; https ones also ``tls.days_left``).
    urls: list[str] = msgspec.field(default_factory=list)
    #: rtsp:// URLs whose stream service must answer OPTIONS (``rtsp.answering``).
    rtsp: list[str] = msgspec.field(default_factory=list)
    #: Seconds for each connection, request or echo reply.
    timeout: Annotated[float, Meta(gt=0, le=20)] = 3.0

    def __post_init__(self) -> None:
        self.urls = [_url(v, ("http", "https")) for v in self.urls]
        self.rtsp = [_url(v, ("rtsp",)) for v in self.rtsp]

    @property
    def needs_address(self) -> bool:
        """Ping and TCP ports go to the target's address; URLs name their own host."""
        return self.ping or bool(self.tcp_ports)
