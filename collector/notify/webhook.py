"""Generic webhook: the batch as JSON, signed so the receiver can trust it came from us.

Headers on every request::

    Content-Type: application/json
    X-Fieldmon-Timestamp: 1795000000            (Unix seconds, also in the body)
    X-Fieldmon-Delivery: 4f0c…                  (same on every retry: drop duplicates on it)
    X-Fieldmon-Signature: sha256=<hex>          (HMAC-SHA256 of the raw body, if a secret is set)

The signature covers the exact body bytes, and the body carries the timestamp, so a receiver
that checks both the signature and that the timestamp is recent rejects forged and replayed
requests alike.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import tzinfo
from typing import Any

import orjson

from collector.notify.config import WebhookConfig
from collector.notify.model import Batch, Notice
from collector.notify.render import DEFAULT_TZ, headline, plain_text
from collector.notify.transport import HttpChannel

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookChannel", "signature"]

SIGNATURE_HEADER = "X-Fieldmon-Signature"
TIMESTAMP_HEADER = "X-Fieldmon-Timestamp"
DELIVERY_HEADER = "X-Fieldmon-Delivery"


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Fieldmon-Signature`` for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _notice(n: Notice) -> dict[str, Any]:
    return {
        "number": n.number,
        "site": n.site,
        "target": n.target,
        "level": n.level,
        "tier": n.tier,
        "kind": n.kind,
        "title": n.title,
        "summary": n.summary,
        "at": n.at.isoformat(),
        "deadline": n.deadline.isoformat() if n.deadline else None,
        "url": n.url,
    }


class WebhookChannel(HttpChannel):
    service = "webhook"

    def __init__(self, name: str, config: WebhookConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        super().__init__(name, config.timeout, config.secret_values())
        self.config = config
        self.tz = tz

    def body(self, batch: Batch, timestamp: int) -> bytes:
        cfg = self.config
        listed = batch.notices[: cfg.max_items]
        return orjson.dumps(
            {
                "source": "fieldmon",
                "channel": self.name,
                "delivery": batch.id,
                "timestamp": timestamp,
                "count": batch.count,
                "truncated": batch.count > len(listed),
                "title": headline(batch.notices, cfg.lang),
                "text": plain_text(batch.notices, cfg.lang, min(cfg.max_items, 20), self.tz),
                "notices": [_notice(n) for n in listed],
            }
        )

    async def send(self, batch: Batch) -> str:
        timestamp = int(time.time())
        body = self.body(batch, timestamp)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: batch.id,
        }
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.config.secret.get_secret_value(), body)
        resp = await self.request("POST", self.config.url, content=body, headers=headers)
        return f"HTTP {resp.status_code}"
