"""Mailing an approved monthly report to the customer's contacts (``[[sites]] contacts``),
through the SMTP server of an e-mail channel already configured for notifications
(``[reports] mail_channel`` names it), so there is one set of SMTP settings and secrets.

Only an approved report is mailed, and it is the approved version that goes out: the report
is rebuilt and checked against the approval's content hash first (collector/reports/review.py),
so a report whose data changed after approval is refused instead of sent unreviewed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib

from checks.catalogue import DeviceClass
from collector.config import CollectorConfig
from collector.notify.config import EmailConfig
from collector.notify.email import EmailChannel
from collector.reports.monthly import ReportError
from collector.store.db import Store

_TYPES = {
    ".pdf": ("application", "pdf"),
    ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ".html": ("text", "html"),
    ".json": ("application", "json"),
}


class MailError(ReportError):
    """The report cannot be mailed: not approved, no contacts, no e-mail channel, SMTP refused."""


def email_channel(cfg: CollectorConfig) -> tuple[str, EmailConfig]:
    """The e-mail channel ``[reports] mail_channel`` names, with a clear error otherwise."""
    name = cfg.reports.mail_channel if cfg.reports is not None else None
    if not name:
        raise MailError(
            "no mail channel: set [reports] mail_channel to an e-mail channel of [notify.channels]"
        )
    channels: Mapping[str, Any] = cfg.notify.channels if cfg.notify is not None else {}
    channel = channels.get(name)
    if not isinstance(channel, EmailConfig):
        kinds = sorted(k for k, c in channels.items() if isinstance(c, EmailConfig))
        raise MailError(
            f"[reports] mail_channel {name!r} is not an e-mail channel of [notify.channels] "
            f"(e-mail channels: {', '.join(kinds) or 'none'})"
        )
    return name, channel


def compose(
    config: EmailConfig, to: Sequence[str], data: Mapping[str, Any], files: Sequence[Path]
) -> EmailMessage:
    """The message: a short text naming the report and its approval, the files attached."""
    L, cover, review = data["labels"], data["cover"], data["review"]
    msg = EmailMessage()
    msg["Subject"] = f"{L['monthly_title']} · {cover['title']} · {cover['period']}"
    msg["From"] = config.sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=parseaddr(config.sender)[1].rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        f"{L['customer']}: {cover['customer']}",
        f"{L['site']}: {cover['title']} ({cover['site']})",
        f"{L['period']}: {cover['period']}",
        f"{L['report_no']}: {cover['report_no']}",
        f"{L['reviewer']}: {review['reviewer']} · {L['approved_at']}: {review['approved_at']}",
        f"SHA-256: {review['content_hash']}",
    ]
    msg.set_content("\n".join(lines) + "\n", cte="base64")
    for path in files:
        maintype, subtype = _TYPES.get(path.suffix, ("application", "octet-stream"))
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return msg


async def send(name: str, config: EmailConfig, msg: EmailMessage, to: Sequence[str]) -> str:
    """Send over the channel's SMTP session (TLS, login and timeouts as for notifications)."""
    channel = EmailChannel(name, config)
    where = f"SMTP {config.host}:{config.effective_port}"
    try:
        async with channel._client() as smtp:
            errors, _ = await smtp.send_message(
                msg, sender=parseaddr(config.sender)[1], recipients=list(to)
            )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            f"{where}: every recipient refused: "
            + "; ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailError(channel.scrubber.scrub(f"{where}: {exc}")) from None
    refused = [f"{addr} ({r.code} {r.message})" for addr, r in errors.items()]
    return f"{where} accepted the report for {len(to) - len(refused)} contact(s)" + (
        f"; refused: {', '.join(refused)}" if refused else ""
    )


def mail_monthly(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    site: str,
    month: str,
    lang: str,
    out_dir: Path,
    now: datetime | None = None,
) -> tuple[list[Path], str]:
    """Render the approved monthly report (PDF and XLSX) and mail it to the site's contacts;
    returns the files and the SMTP outcome. Raises MailError for a draft."""
    from collector.reports.monthly import build_monthly, render
    from collector.reports.review import settle

    contacts = cfg.site(site).contacts
    if not contacts:
        raise MailError(f"site {site!r} has no contacts to mail the report to ([[sites]] contacts)")
    name, config = email_channel(cfg)
    now = now or datetime.now(UTC)
    data = build_monthly(store, cfg, classes, site, month, lang, now)
    warnings: list[str] = []
    settle(store, data, "monthly", month, now, cfg.tz, warn=warnings.append)
    review = data["review"]
    if review["state"] != "approved":
        why = f" ({warnings[0]})" if warnings else ""
        raise MailError(
            f"monthly report {site} {month} ({lang}) is draft version {review['version']}, "
            f"not approved{why}; approve it first (fieldmon report review --approve)"
        )
    files = render(data, ["pdf", "xlsx"], out_dir)
    outcome = asyncio.run(send(name, config, compose(config, contacts, data, files), contacts))
    return files, outcome
