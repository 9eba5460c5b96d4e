"""Scheduled drafts, frozen approvals and mailing an approved report.

The collector's housekeeping pass (collector/reports/schedule.py) writes the previous month's
report from ``monthly_day`` on and the previous quarter's from ``quarterly_day``; writing a
draft again keeps the engineer's remarks; an approved report re-renders to the same PDF text;
and ``fieldmon report mail`` sends only an approved report, to a real SMTP server (aiosmtpd on
loopback), with the PDF attached."""

from __future__ import annotations

import email
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from collector.config import load_collector_config
from collector.reports.schedule import due_reports, run_schedule
from collector.store.db import Store
from fieldmon.allinone import free_port
from fieldmon.cli import main
from tests.test_report_figures import CLASSES, SERIAL_CAM, TZ, fill

REMARK = "cam-01:snmp.reachable=熔接后恢复"


class Inbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        msg = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _conf(tmp: Path, smtp_port: int = 1, monthly_day: int = 3) -> Path:
    conf = tmp / "collector.toml"
    conf.write_text(
        f"""
[database]
url = "sqlite:///{tmp}/collector.db"

[[sites]]
name = "s2"
customer = "西城区交通支队"
title = "西门视频监控"
contacts = ["zhang@customer.example", "li@customer.example"]

[reports]
out_dir = "{tmp}/drafts"
monthly_day = {monthly_day}
quarterly_day = 5
formats = ["pdf", "json"]
mail_channel = "mail"

[notify.channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
sender = "fieldmon <noc@integrator.example>"
groups = [{{ to = ["desk@integrator.example"] }}]
""",
        encoding="utf-8",
    )
    return conf


def _text(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def test_due_reports_by_day(tmp_path: Path) -> None:
    cfg = load_collector_config(_conf(tmp_path))
    assert cfg.reports is not None
    at = lambda d: datetime(*d, 12, tzinfo=TZ)  # noqa: E731
    assert due_reports(cfg, cfg.reports, at((2026, 12, 2))) == []
    due = due_reports(cfg, cfg.reports, at((2026, 12, 3)))
    assert [(d.kind, d.site, d.period, d.lang) for d in due] == [
        ("monthly", "s2", "2026-11", "zh-CN")
    ]
    jan = due_reports(cfg, cfg.reports, at((2027, 1, 6)))
    assert sorted((d.kind, d.period) for d in jan) == [
        ("monthly", "2026-12"),
        ("quarterly", "2026Q4"),
    ]
    # Local time decides: 23:30 UTC on 2 December is already the 3rd in Shanghai.
    assert due_reports(cfg, cfg.reports, datetime(2026, 12, 2, 17, 30, tzinfo=UTC))


def test_bad_reports_section_is_named(tmp_path: Path) -> None:
    conf = _conf(tmp_path, monthly_day=31)
    with pytest.raises(Exception, match="monthly_day"):
        load_collector_config(conf)


def test_scheduled_draft_keeps_remarks_then_approved_is_frozen_and_mailed(
    tmp_path: Path, smtp: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp
    conf = _conf(tmp_path, port)
    cfg = load_collector_config(conf)
    store = Store(cfg.database.url, TZ)
    fill(store)
    drafts = tmp_path / "drafts"
    pdf = drafts / "monthly-s2-2026-11-zh-CN.pdf"

    assert run_schedule(store, cfg, CLASSES, datetime(2026, 12, 2, 3, tzinfo=UTC)) == []
    written = run_schedule(store, cfg, CLASSES, datetime(2026, 12, 3, 3, tzinfo=UTC))
    assert pdf in written and (drafts / "monthly-s2-2026-11-zh-CN.json") in written
    text = "".join(_text(pdf).split())
    assert "草稿" in text and SERIAL_CAM in text
    # The next pass finds the draft written and leaves it alone.
    assert run_schedule(store, cfg, CLASSES, datetime(2026, 12, 3, 4, tzinfo=UTC)) == []

    # Mailing a draft is refused.
    base = ["--config", str(conf), "--site", "s2", "--month", "2026-11"]
    assert main(["report", "mail", *base, "--out", str(tmp_path / "m")]) == 2
    assert "not approved" in capsys.readouterr().err and inbox.mails == []

    # An engineer's remark, then the draft is written again: the remark is kept.
    assert main(["report", "review", *base, "--remark", REMARK]) == 0
    pdf.unlink()
    assert pdf in run_schedule(store, cfg, CLASSES, datetime(2026, 12, 3, 5, tzinfo=UTC))
    assert "熔接后恢复" in "".join(_text(pdf).split())

    # Approved: frozen. Rendering again gives the same text, and the draft mark is gone.
    assert main(["report", "review", *base, "--approve", "--reviewer", "王工"]) == 0
    capsys.readouterr()
    out1, out2 = tmp_path / "a1", tmp_path / "a2"
    for out in (out1, out2):
        assert main(["report", "monthly", *base, "--format", "pdf", "--out", str(out)]) == 0
    t1, t2 = (_text(o / "monthly-s2-2026-11-zh-CN.pdf") for o in (out1, out2))
    assert t1 == t2
    assert "草稿" not in t1 and "王工" in t1 and "熔接后恢复" in "".join(t1.split())

    # Mailed to both contacts with the PDF and the workbook attached.
    assert main(["report", "mail", *base, "--out", str(tmp_path / "m")]) == 0
    assert "accepted the report for 2 contact(s)" in capsys.readouterr().out
    assert len(inbox.mails) == 1
    rcpt, msg = inbox.mails[0]
    assert sorted(rcpt) == ["li@customer.example", "zhang@customer.example"]
    assert "月度巡检报告" in str(msg["Subject"])
    names = {p.get_filename(): p for p in msg.iter_attachments()}
    assert set(names) == {"monthly-s2-2026-11-zh-CN.pdf", "monthly-s2-2026-11-zh-CN.xlsx"}
    attached = tmp_path / "attached.pdf"
    payload = names["monthly-s2-2026-11-zh-CN.pdf"].get_payload(decode=True)
    assert isinstance(payload, bytes)
    attached.write_bytes(payload)
    assert _text(attached) == t1
    body = msg.get_body(("plain",))
    assert body is not None and "王工" in str(body.get_content())
    store.close()


def test_mail_without_channel_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "collector.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/c.db"\n\n[[sites]]\nname = "s2"\n'
        'contacts = ["a@b.example"]\n',
        encoding="utf-8",
    )
    rc = main(["report", "mail", "--config", str(conf), "--site", "s2", "--month", "2026-11"])
    assert rc == 2 and "mail_channel" in capsys.readouterr().err
