"""WeCom group robot (企业微信群机器人).

POST ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`` with a JSON message. There is
no signature: whoever has the key can post, which is why the key is a secret here. Limits the
robot enforces: 20 messages a minute, text up to 2048 bytes, markdown up to 4096 bytes;
@-mentions by mobile number work in text messages only. Errors come back as HTTP 200 with a
non-zero ``errcode``.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import orjson

from collector.notify.config import WeComConfig
from collector.notify.model import Batch
from collector.notify.render import DEFAULT_TZ, markdown, plain_text, trim_bytes
from collector.notify.transport import HttpChannel, json_answer

__all__ = ["WeComChannel"]

TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096


class WeComChannel(HttpChannel):
    service = "WeCom"

    def __init__(self, name: str, config: WeComConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        super().__init__(name, config.timeout, config.secret_values())
        self.config = config
        self.tz = tz

    def message(self, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        if cfg.format == "text":
            text = plain_text(batch.notices, cfg.lang, cfg.max_items, self.tz)
            content: dict[str, Any] = {"content": trim_bytes(text, TEXT_MAX_BYTES)}
            if cfg.mentioned_mobiles:
                content["mentioned_mobile_list"] = cfg.mentioned_mobiles
            return {"msgtype": "text", "text": content}
        text = markdown(batch.notices, cfg.lang, cfg.max_items, self.tz)
        return {
            "msgtype": "markdown",
            "markdown": {"content": trim_bytes(text, MARKDOWN_MAX_BYTES)},
        }

    async def send(self, batch: Batch) -> str:
        cfg = self.config
        if cfg.key is None:  # the configuration requires it; keeps mypy honest
            raise self.refused("no key configured")
        resp = await self.request(
            "POST",
            cfg.url,
            params={"key": cfg.key.get_secret_value()},
            content=orjson.dumps(self.message(batch)),
            headers={"Content-Type": "application/json"},
        )
        answer = json_answer(resp)
        if answer is None:
            raise self.refused("answer is not JSON")
        if answer.get("errcode", 0) != 0:
            raise self.refused(f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}")
        return f"HTTP {resp.status_code}, errcode 0"
