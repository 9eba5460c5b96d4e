"""The monthly PDF's page furniture, read back page by page as a reader sees it: a table too
long for one page continues on the next with its header row repeated, every page carries
"第 N 页 / 共 M 页" with the right N and M, the fonts are embedded (Noto Sans CJK), and a long
serial number wraps inside its column instead of running into the next one.

The store is filled through the collector's own ingest and incident operations: one switch
with a long serial and 60 phone-call incidents in November, so the incident table spans
pages."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import load_collector_config
from collector.incidents.engine import Policy
from collector.reports.monthly import build_monthly, render
from collector.store.db import Store

TZ = ZoneInfo("Asia/Shanghai")
CLASSES = load_catalogue()
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
#: Longer than half a page at 9 pt: without wrapping it would run past the right margin.
LONG_SERIAL = "SN2026ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEFXYZ"
INCIDENTS = 60


def _pdftotext(pdf: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    done = subprocess.run(
        ["pdftotext", "-layout", *pages, str(pdf), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, check=True, text=True)
    return int(next(ln for ln in info.stdout.splitlines() if ln.startswith("Pages:")).split()[1])


def test_long_tables_repeat_headers_and_pages_are_numbered(tmp_path: Path) -> None:
    cfg = load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
            "sites": [{"name": "s1", "title": "东门视频监控", "customer": "东城区公安分局"}],
        },
    )
    store = Store(cfg.database.url, TZ)
    store.ingest(
        "s1",
        "a1",
        [
            Result(
                target="sw-core",
                target_class="switch",
                check="snmp.reachable",
                status=Status.OK,
                observed_at=T0,
                value="up",
            ),
            Result(
                target="sw-core",
                target_class="switch",
                check="inventory.entity",
                status=Status.OK,
                observed_at=T0,
                value=LONG_SERIAL,
                facts={"serial": LONG_SERIAL, "model": "S5735-L48T4X-A1"},
            ),
        ],
        CLASSES,
        Policy(),
        T0,
    )
    numbers = []
    for k in range(INCIDENTS):
        opened = T0 + timedelta(hours=11 * k)
        number, _ = store.open_manual(
            site="s1",
            target="sw-core",
            level=1 + k % 4,
            title=f"端口闪断 {k}",
            description="客户来电报告上联端口间歇中断",
            caller={"name": "李"},
            author="desk",
            now=opened,
        )
        store.act(number, "ack", "王工", opened + timedelta(minutes=4))
        store.act(number, "resolve", "王工", opened + timedelta(hours=2), text="更换光模块")
        numbers.append(number)
    data = build_monthly(store, cfg, CLASSES, "s1", "2026-11", "zh-CN", now=T0 + timedelta(35))
    store.close()
    [pdf] = render(data, ["pdf"], tmp_path)

    total = _pages(pdf)
    texts = {n: _pdftotext(pdf, n) for n in range(1, total + 1)}
    for n, text in texts.items():
        assert "".join(f"第 {n} 页 / 共 {total} 页".split()) in "".join(text.split()), n

    # The incident table: every page holding some of its rows starts them with its header.
    with_rows = [n for n, text in texts.items() if any(no in text for no in numbers)]
    assert len(with_rows) >= 2, "the incident table should span pages in this test"
    for n in with_rows:
        text = texts[n]
        first_row = min(text.index(no) for no in numbers if no in text)
        head = text[:first_row]
        assert "编号" in head and "发生时间" in head, f"page {n}: no repeated header row"
    assert all(any(no in texts[n] for n in with_rows) for no in numbers)

    # Fonts are embedded, the CJK one among them: no reader-side substitution or tofu.
    fonts = subprocess.run(
        ["pdffonts", str(pdf)], capture_output=True, check=True, text=True
    ).stdout.splitlines()[2:]
    assert fonts and all(" yes " in f"{ln} " for ln in fonts)
    assert any("NotoSansCJK" in ln for ln in fonts)

    # The long serial wraps inside the identity block: no word on its page reaches past the
    # right margin (14 mm on A4, from pdftotext's word boxes), and the characters survive.
    n = next(n for n, text in texts.items() if "序列号" in text and "sw-core" in text)
    assert LONG_SERIAL in "".join(texts[n].split())
    boxes = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(n), "-l", str(n), str(pdf), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    right = [float(m) for m in re.findall(r'xMax="([0-9.]+)"', boxes)]
    page_width = float(re.findall(r'<page width="([0-9.]+)"', boxes)[0])
    margin = 14 / 25.4 * 72
    assert right and max(right) <= page_width - margin + 1, (max(right), page_width - margin)
