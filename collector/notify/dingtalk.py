"""DingTalk custom robot (钉钉自定义机器人).

POST ``https://oapi.dingtalk.com/robot/send?access_token=…`` with a JSON message. A robot with
加签 (signing) also wants ``timestamp`` (Unix milliseconds) and ``sign`` in the query, where
``sign`` is base64(HMAC-SHA256(key = secret, message = timestamp + "\\n" + secret)),
URL-encoded; DingTalk rejects timestamps more than an hour off. Errors come back as HTTP 200
with a non-zero ``errcode`` in the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import tzinfo
from typing import Any

import orjson

from collector.notify.config import DingTalkConfig
from collector.notify.model import Batch
from collector.notify.render import DEFAULT_TZ, headline, markdown, plain_text, trim_bytes
from collector.notify.transport import HttpChannel, json_answer

__all__ = ["DingTalkChannel", "dingtalk_sign"]

#: DingTalk documents 20,000 bytes for a message; stay well under it.
MAX_BYTES = 18000


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value before URL encoding (the HTTP client encodes it)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkChannel(HttpChannel):
    service = "DingTalk"

    def __init__(self, name: str, config: DingTalkConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        super().__init__(name, config.timeout, config.secret_values())
        self.config = config
        self.tz = tz

    def message(self, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        title = headline(batch.notices, cfg.lang)
        if cfg.keyword and cfg.keyword not in title:
            title = f"{cfg.keyword} {title}"
        # A markdown message only rings the @-mentioned people if their numbers are in the text.
        mentions = " ".join(f"@{m}" for m in cfg.at_mobiles)
        at = {"atMobiles": cfg.at_mobiles, "isAtAll": cfg.at_all}
        if cfg.format == "text":
            text = plain_text(batch.notices, cfg.lang, cfg.max_items, self.tz)
            if cfg.keyword and cfg.keyword not in text:
                text = f"{cfg.keyword} {text}"
            text = trim_bytes(text + (f"\n{mentions}" if mentions else ""), MAX_BYTES)
            return {"msgtype": "text", "text": {"content": text}, "at": at}
        body = markdown(batch.notices, cfg.lang, cfg.max_items, self.tz)
        if cfg.keyword and cfg.keyword not in body:
            body = f"{cfg.keyword}\n\n{body}"
        body = trim_bytes(body + (f"\n\n{mentions}" if mentions else ""), MAX_BYTES)
        return {"msgtype": "markdown", "markdown": {"title": title, "text": body}, "at": at}

    async def send(self, batch: Batch) -> str:
        cfg = self.config
        if cfg.access_token is None:  # the configuration requires it; keeps mypy honest
            raise self.refused("no access_token configured")
        params = {"access_token": cfg.access_token.get_secret_value()}
        if cfg.secret is not None:
            timestamp = int(time.time() * 1000)
            params["timestamp"] = str(timestamp)
            params["sign"] = dingtalk_sign(cfg.secret.get_secret_value(), timestamp)
        resp = await self.request(
            "POST",
            cfg.url,
            params=params,
            content=orjson.dumps(self.message(batch)),
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        answer = json_answer(resp)
        if answer is None:
            raise self.refused("answer is not JSON")
        if answer.get("errcode", 0) != 0:
            raise self.refused(f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}")
        return f"HTTP {resp.status_code}, errcode 0"
