"""Untrusted text reaches every report as data, never as markup: a device whose name is
Typst code (``#panic("x")``, ``$x$``) and HTML (``<script>``), with a location that would
repaint the page and an engineer's analysis in the same vein, is printed as those characters
in the monthly, quarterly, fault analysis and device reports — read back from the PDF with
pdftotext and from the HTML as a browser would decode it.

On the wire (checks/wire.py) target names are restricted to ``[A-Za-z0-9_.-]``, so such a
name can only come from the store itself or an import; locations, summaries, remarks and
analyses are free text on every path. The store is filled through its own ingest and incident
operations, as the collector does."""

from __future__ import annotations

import html
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import CollectorConfig, load_collector_config
from collector.incidents.engine import Policy
from collector.reports.device import build_device, render_device
from collector.reports.fault import build_fault, render_fault
from collector.reports.monthly import build_monthly, render
from collector.reports.quarterly import build_quarterly, render_quarterly
from collector.store.db import Store

TZ = ZoneInfo("Asia/Shanghai")
CLASSES = load_catalogue()
T0 = datetime(2026, 11, 9, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
#: The device's name: Typst code, Typst math and HTML at once.
EVIL = '#panic("x") $x$ <script>alert(1)</script>'
#: Its location: a Typst rule that would paint every page, and a raw block.
EVIL_LOCATION = "#set page(fill: red) ```x``` *bold* _it_ @ref <lbl>"
#: An engineer's analysis text.
EVIL_TEXT = '#eval("1+1") #{panic()} $ a^2 $ <img src=x onerror=alert(2)>'


def _cfg(db: Path) -> CollectorConfig:
    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [{"name": "s1", "customer": "东城区公安分局", "title": "东门视频监控"}],
        },
    )


def _ingest(store: Store, status: Status, at: datetime, **kw: Any) -> None:
    r = Result(
        target=EVIL,
        target_class="camera",
        check="snmp.reachable",
        status=status,
        observed_at=at,
        **kw,
    )
    store.ingest("s1", "a1", [r], CLASSES, Policy(), at)


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, CollectorConfig, list[str]]]:
    """The camera answers, fails twice in November (a recurring fault), and carries the
    hostile location; the first incident gets an analysis with hostile text."""
    tmp = tmp_path_factory.mktemp("inject")
    cfg = _cfg(tmp / "c.db")
    store = Store(cfg.database.url, TZ)
    store.ingest(
        "s1",
        "a1",
        [
            Result(
                target=EVIL,
                target_class="camera",
                check="inventory.entity",
                status=Status.OK,
                observed_at=T0,
                value="SN-INJECT-0001",
                summary=EVIL_TEXT,
                facts={"serial": "SN-INJECT-0001", "location": EVIL_LOCATION},
            )
        ],
        CLASSES,
        Policy(),
        T0,
    )
    numbers: list[str] = []
    for day in (0, 3):
        start = T0 + timedelta(days=day)
        _ingest(store, Status.OK, start, value="up")
        _ingest(store, Status.CRIT, start + timedelta(hours=1))
        number = str(store.incidents(site="s1", target=EVIL, state="open")[0]["number"])
        store.act(number, "ack", "王工", start + timedelta(hours=1, minutes=5))
        _ingest(store, Status.OK, start + timedelta(hours=2), value="up")
        numbers.append(number)
    store.act(
        numbers[0],
        "analysis",
        "王工",
        T0 + timedelta(days=1),
        symptoms=EVIL_TEXT,
        handling="重启 " + EVIL,
        result="恢复",
        prevention="巡检",
    )
    yield store, cfg, numbers
    store.close()


def _pdf_text(pdf: Path) -> str:
    done = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True)
    return "".join(done.stdout.split())


def _flat(text: str) -> str:
    return "".join(text.split())


def _check(pdf: Path, page: Path, *needles: str) -> None:
    """The PDF prints each needle literally; the HTML escapes the markup and decodes back to
    the same characters."""
    text = _pdf_text(pdf)
    for needle in needles:
        assert _flat(needle) in text, needle
    raw = page.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in raw
    assert "<img src=x" not in raw
    decoded = html.unescape(raw)
    for needle in needles:
        assert needle in decoded, needle


def _pages_not_red(pdf: Path, tmp: Path) -> None:
    """``#set page(fill: red)`` in a location must not paint the page: page 1's corner pixel
    is white (pdftoppm PPM, read without an imaging library)."""
    subprocess.run(
        ["pdftoppm", "-r", "20", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(tmp / "c")],
        check=True,
    )
    raw = (tmp / "c.ppm").read_bytes()
    # P6 header: magic, width, height, maxval, each followed by one whitespace byte.
    parts = raw.split(maxsplit=4)
    assert parts[0] == b"P6"
    assert parts[4][:3] == b"\xff\xff\xff", parts[4][:3]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_monthly(
    filled: tuple[Store, CollectorConfig, list[str]], tmp_path: Path, lang: str
) -> None:
    store, cfg, numbers = filled
    data = build_monthly(store, cfg, CLASSES, "s1", "2026-11", lang, now=NOW)
    assert [d["name"] for d in data["devices"]] == [EVIL]
    pdf, page = render(data, ["pdf", "html"], tmp_path)
    _check(pdf, page, EVIL, EVIL_LOCATION, EVIL_TEXT, *numbers)
    _pages_not_red(pdf, tmp_path)


def test_quarterly(filled: tuple[Store, CollectorConfig, list[str]], tmp_path: Path) -> None:
    store, cfg, numbers = filled
    data = build_quarterly(store, cfg, "s1", "2026Q4", "zh-CN", now=NOW)
    assert data["recurring"][0]["device"] == EVIL and data["recurring"][0]["times"] == 2
    pdf, page = render_quarterly(data, ["pdf", "html"], tmp_path)
    _check(pdf, page, EVIL, *numbers)


def test_fault(filled: tuple[Store, CollectorConfig, list[str]], tmp_path: Path) -> None:
    store, cfg, numbers = filled
    data = build_fault(store, cfg, numbers[0], "zh-CN", now=NOW)
    pdf, page = render_fault(data, ["pdf", "html"], tmp_path)
    _check(pdf, page, EVIL, EVIL_TEXT, "重启 " + EVIL, numbers[0])


def test_device_file(filled: tuple[Store, CollectorConfig, list[str]], tmp_path: Path) -> None:
    store, cfg, numbers = filled
    data = build_device(store, cfg, CLASSES, "s1", EVIL, "en", "2026-11", "2026-11", NOW)
    out = tmp_path / "out"
    pdf, page = render_device(data, ["pdf", "html"], out)
    # The name picks no directory: "/" and the markup characters become "_" in the file name.
    assert pdf.parent == out and page.parent == out
    assert "/" not in pdf.name[len("device-") :] and "<" not in pdf.name
    _check(pdf, page, EVIL, EVIL_LOCATION, *numbers)
    _pages_not_red(pdf, tmp_path)
