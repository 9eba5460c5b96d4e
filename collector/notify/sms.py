"""SMS through an HTTP gateway described in the configuration.

Every provider (Aliyun, Tencent Cloud, a carrier's own gateway, a GSM modem box on the LAN) has
its own request format, so the request is a template filled once per number. The text is cut
to ``max_length`` characters: a page that arrives as three out-of-order segments, or not at all
because it was too long for the template, is worse than a short one.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import orjson

from collector.notify.config import SmsConfig
from collector.notify.errors import NotifyError
from collector.notify.model import Batch
from collector.notify.render import DEFAULT_TZ, short_text
from collector.notify.transport import HttpChannel, json_answer

__all__ = ["SmsChannel", "fill", "mask_phone"]


def mask_phone(number: str) -> str:
    """``138****5678``: enough to tell numbers apart in the timeline, not enough to dial."""
    digits = number.replace(" ", "").replace("-", "")
    return digits[:3] + "****" + digits[-4:] if len(digits) > 7 else "****"


def fill(template: Any, values: dict[str, str]) -> Any:
    """Replace ``{phone}``, ``{text}``, ``{token}`` in every string of ``template``.

    Plain substitution, not ``str.format``: gateway templates contain JSON-like braces of their
    own, and message text may contain anything.
    """
    if isinstance(template, str):
        for key, value in values.items():
            template = template.replace("{" + key + "}", value)
        return template
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


class SmsChannel(HttpChannel):
    service = "SMS gateway"

    def __init__(self, name: str, config: SmsConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        super().__init__(name, config.timeout, config.secret_values())
        self.config = config
        self.tz = tz

    def text(self, batch: Batch) -> str:
        return short_text(batch.notices, self.config.lang, self.config.max_length)

    async def _send_one(self, number: str, text: str) -> None:
        cfg = self.config
        values = {"phone": number, "text": text}
        if cfg.token is not None:
            values["token"] = cfg.token.get_secret_value()
        filled: dict[str, Any] = fill(cfg.template, values)
        headers: dict[str, str] = fill(cfg.headers, values)
        url: str = fill(cfg.url, values)
        if cfg.method == "GET":
            resp = await self.request(
                "GET", url, params={k: str(v) for k, v in filled.items()}, headers=headers
            )
        elif cfg.encoding == "form":
            resp = await self.request(
                "POST", url, data={k: str(v) for k, v in filled.items()}, headers=headers
            )
        else:
            resp = await self.request(
                "POST",
                url,
                content=orjson.dumps(filled),
                headers={**headers, "Content-Type": "application/json"},
            )
        if cfg.ok_json:
            answer = json_answer(resp) or {}
            wrong = {k: answer.get(k) for k, v in cfg.ok_json.items() if answer.get(k) != v}
            if wrong:
                raise self.refused(f"answer has {wrong}, expected {cfg.ok_json}")

    async def send(self, batch: Batch) -> str:
        """One request per number; numbers already served in an earlier attempt are skipped,
        so a retry after one number failed does not text the others twice."""
        text = self.text(batch)
        failed: list[str] = []
        for number in self.config.numbers:
            if number in batch.delivered:
                continue
            try:
                await self._send_one(number, text)
            except NotifyError as exc:
                failed.append(f"{mask_phone(number)}: {exc}")
            else:
                batch.delivered.add(number)
        total = len(self.config.numbers)
        if failed:
            raise NotifyError(
                f"SMS to {len(failed)} of {total} number(s) failed: " + "; ".join(failed)
            )
        return f"sent to {total} number(s), {len(text)} characters"
