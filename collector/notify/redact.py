"""Keeping secrets out of logs, error messages and the incident timeline.

Two robots put their credential in the URL (DingTalk's ``access_token``, WeCom's ``key``),
Feishu in the path, and httpx logs every request URL at INFO. Errors from gateways sometimes
echo the request. So every text that leaves a channel, and every httpx log record while the
notifier runs, goes through a Scrubber that knows the configured secrets and blanks query
strings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "ScrubFilter", "Scrubber"]

MASK = "***"
_QUERY = re.compile(r"(\bhttps?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")
#: Credential-looking parameters outside a full URL (a gateway echoing "POST /send?key=…").
_PARAM = re.compile(
    r"(?i)\b(access_token|token|key|apikey|api_key|secret|sign|signature|password|passwd)"
    r"=[^&\s\"'<>]+"
)


class Scrubber:
    """Replaces known secrets (raw and URL-encoded) and URL query strings with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            # Very short "secrets" would blank ordinary words; nobody's token is that short.
            if len(s) >= 4:
                self._secrets.update({s, quote(s, safe=""), quote_plus(s)})

    def scrub(self, text: str) -> str:
        text = _QUERY.sub(rf"\1?{MASK}", text)
        text = _PARAM.sub(rf"\1={MASK}", text)
        # Longest first, so a secret that contains another is replaced whole.
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, MASK)
        return text


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs a record's final message in place.

    Attached to the loggers of the libraries the channels use (httpx) for as long as the
    notifier runs; it rewrites the record rather than dropping it, so the request is still
    visible, minus its credentials.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.scrubber.scrub(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info:
            # Exception messages can carry a URL: format the traceback now, scrubbed.
            record.exc_text = self.scrubber.scrub(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True
