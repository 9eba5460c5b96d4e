"""E-mail over SMTP (aiosmtplib): STARTTLS, implicit TLS or plain, with optional AUTH.

One message per recipient group and batch, in the group's language: the service desk reads
Chinese, the vendor's maintainer may not. All groups of a batch share one SMTP session. A group
that was accepted is remembered in the batch, so a retry after a later group failed does not
mail the first one again.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from collector.notify.config import EmailConfig, RecipientGroup
from collector.notify.errors import NotifyError
from collector.notify.model import Batch
from collector.notify.redact import Scrubber
from collector.notify.render import DEFAULT_TZ, headline, plain_text

__all__ = ["EmailChannel"]


class EmailChannel:
    def __init__(self, name: str, config: EmailConfig, tz: tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self.config = config
        self.tz = tz
        self.scrubber = Scrubber(config.secret_values())

    def secrets(self) -> list[str]:
        return self.config.secret_values()

    async def aclose(self) -> None:
        """Nothing to close: every batch uses its own SMTP session (mail is rare enough)."""

    def message(self, batch: Batch, group: RecipientGroup) -> EmailMessage:
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"] = headline(batch.notices, group.lang)
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(group.to)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=parseaddr(cfg.sender)[1].rpartition("@")[2] or None)
        # RFC 3834: tells vacation responders not to answer a machine.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Fieldmon-Delivery"] = batch.id
        msg.set_content(plain_text(batch.notices, group.lang, cfg.max_items, self.tz), cte="base64")
        return msg

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=str(self.config.ca_file) if self.config.ca_file else None
        )
        if self.config.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _client(self) -> aiosmtplib.SMTP:
        cfg = self.config
        secure = cfg.security != "plain"
        return aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.effective_port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            use_tls=cfg.security == "tls",
            # True, not None ("if offered"): a server that stops offering STARTTLS must not
            # receive the password in clear.
            start_tls=cfg.security == "starttls",
            tls_context=self._tls_context() if secure else None,
            timeout=cfg.timeout,
        )

    async def send(self, batch: Batch) -> str:
        cfg = self.config
        where = f"SMTP {cfg.host}:{cfg.effective_port}"
        sender = parseaddr(cfg.sender)[1]
        refused: list[str] = []
        sent = 0
        try:
            async with self._client() as smtp:
                for i, group in enumerate(cfg.groups):
                    key = f"group{i}"
                    if key in batch.delivered:
                        continue
                    errors, _ = await smtp.send_message(
                        self.message(batch, group), sender=sender, recipients=group.to
                    )
                    refused += [f"{addr} ({r.code} {r.message})" for addr, r in errors.items()]
                    batch.delivered.add(key)
                    sent += 1
        except aiosmtplib.SMTPTimeoutError:
            raise NotifyError(f"{where}: no answer within {cfg.timeout:g} s") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise NotifyError(
                f"{where}: login as {cfg.username!r} refused: {exc.code} {exc.message}"
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(
                f"{where}: every recipient refused: "
                + "; ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
            ) from None
        except aiosmtplib.SMTPException as exc:
            raise NotifyError(self.scrubber.scrub(f"{where}: {exc}")) from None
        except OSError as exc:  # refused connection, TLS failure, unreachable host
            raise NotifyError(self.scrubber.scrub(f"{where}: {exc}")) from None
        detail = f"{where} accepted {sent} message(s)"
        if refused:
            # Not retried: a mailbox the server refuses will be refused again.
            detail += "; refused: " + ", ".join(refused)
        return detail
