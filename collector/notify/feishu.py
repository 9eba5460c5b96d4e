"""Feishu / Lark custom bot (飞书自定义机器人).

POST ``https://open.feishu.cn/open-apis/bot/v2/hook/<token>`` with a JSON message. A bot with
signature verification (签名校验) wants ``timestamp`` (Unix seconds, as a string) and ``sign``
in the JSON body, where ``sign`` is base64(HMAC-SHA256(key = timestamp + "\\n" + secret,
message = empty)): the secret is part of the key and nothing is hashed, which differs from
DingTalk. Feishu refuses timestamps more than an hour off. Errors come back with a non-zero
``code`` (older deployments: ``StatusCode``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import Counter
from datetime import tzinfo
from typing import Any

import orjson

from collector.notify.config import FeishuConfig
from collector.notify.model import Batch
from collector.notify.render import (
    DEFAULT_TZ,
    body_lines,
    headline,
    plain_text,
    trim_bytes,
)
from collector.notify.transport import HttpChannel, json_answer

__all__ = ["FeishuChannel", "feishu_sign"]

#: Feishu documents 20 KB for a request body.
MAX_BYTES = 18000
#: Card header colour by the worst level in the batch; green when everything recovered.
_COLOUR = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """The ``sign`` body field for ``timestamp_s``."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuChannel(HttpChannel):
    service = "Feishu"

    def __init__(self, name: str, config: FeishuConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        super().__init__(name, config.timeout, config.secret_values())
        self.config = config
        self.tz = tz

    def message(self, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        if cfg.format == "text":
            text = plain_text(batch.notices, cfg.lang, cfg.max_items, self.tz)
            return {"msg_type": "text", "content": {"text": trim_bytes(text, MAX_BYTES)}}
        lines = body_lines(batch.notices, cfg.lang, cfg.max_items, self.tz)
        listed = batch.notices[: cfg.max_items]
        for i, n in enumerate(listed):
            lines[i] = f"- {lines[i].replace(n.number, f'**{n.number}**', 1)}"
            if n.url:
                lines[i] += f" [{'详情' if cfg.lang == 'zh-CN' else 'details'}]({n.url})"
        kinds = Counter(n.kind for n in batch.notices)
        colour = (
            "green" if set(kinds) == {"resolved"} else _COLOUR[min(n.level for n in batch.notices)]
        )
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": headline(batch.notices, cfg.lang)},
                    "template": colour,
                },
                "elements": [
                    {
                        "tag": "div",
                        "text": {
                            "tag": "lark_md",
                            "content": trim_bytes("\n".join(lines), MAX_BYTES),
                        },
                    }
                ],
            },
        }

    async def send(self, batch: Batch) -> str:
        cfg = self.config
        if cfg.token is None:  # the configuration requires it; keeps mypy honest
            raise self.refused("no token configured")
        body = self.message(batch)
        if cfg.secret is not None:
            timestamp = int(time.time())
            body = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(cfg.secret.get_secret_value(), timestamp),
                **body,
            }
        resp = await self.request(
            "POST",
            cfg.url.rstrip("/") + "/" + cfg.token.get_secret_value(),
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        answer = json_answer(resp)
        if answer is None:
            raise self.refused("answer is not JSON")
        code = answer.get("code", answer.get("StatusCode", 0))
        if code != 0:
            raise self.refused(f"code {code}: {answer.get('msg', answer.get('StatusMessage', ''))}")
        return f"HTTP {resp.status_code}, code 0"
