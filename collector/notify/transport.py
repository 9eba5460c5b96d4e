"""What the HTTP channels share: one client each, timeouts, and errors without secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from collector.notify.errors import NotifyError
from collector.notify.redact import Scrubber

__all__ = ["HttpChannel", "json_answer"]


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: enough to say who refused, never a token in the path
    or the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def json_answer(resp: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or None if it is not one."""
    try:
        data = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


class HttpChannel:
    """Base of the channels that talk HTTP.

    The client is created on first use, inside the running loop, and kept for the channel's
    life so that connections to the same robot are reused across a burst of messages.
    """

    #: Shown in errors: "DingTalk", "SMS gateway" …
    service = "HTTP endpoint"

    def __init__(self, name: str, timeout: float, secrets: list[str]) -> None:
        self.name = name
        self.timeout = timeout
        self.scrubber = Scrubber(secrets)
        self._secrets = secrets
        self._client: httpx.AsyncClient | None = None

    def secrets(self) -> list[str]:
        return list(self._secrets)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"User-Agent": "fieldmon-notify"},
            )
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; NotifyError unless the answer is 2xx."""
        where = f"{self.service} {_origin(url)}"
        try:
            # Merged, not replaced: a configured URL may carry query parameters of its own.
            full = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
            resp = await self._http().request(
                method, full, content=content, data=data, headers=headers
            )
        except httpx.TimeoutException:
            raise NotifyError(f"{where}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise NotifyError(self.scrubber.scrub(f"{where}: {reason}")) from None
        if not 200 <= resp.status_code < 300:
            snippet = resp.text[:200].strip()
            raise NotifyError(
                self.scrubber.scrub(
                    f"{where}: HTTP {resp.status_code} {resp.reason_phrase}"
                    + (f": {snippet}" if snippet else "")
                )
            )
        return resp

    def refused(self, what: str) -> NotifyError:
        """The service answered 200 but said no (the robots report errors in the body)."""
        return NotifyError(self.scrubber.scrub(f"{self.service} refused the message: {what}"))
