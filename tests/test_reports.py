"""The monthly report's PDF and XLSX, built from a real store with ingested results and read
back the way a reader would: text extracted with pdftotext, page 1 rendered with pdftoppm,
cells read with openpyxl."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
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
from collector.reports.monthly import build_monthly, render
from collector.store.db import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MONTH = "2026-11"
CLASSES = load_catalogue()
SERIAL_SW = "2102359579DMHC000288"
SERIAL_CAM = "DS-2CD2T47G2-L20231105AACHK12345678"
INJECT_TYPST = '#set page(fill: red) #panic("x") $x$'
INJECT_HTML = "<script>alert(1)</script>"


def _cfg(db: Path) -> CollectorConfig:
    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [
                {
                    "name": "s1",
                    "customer": "东城区公安分局 " + INJECT_HTML,
                    "contract": "FM-2026-001",
                    "title": "东门视频监控",
                    "maintainer": "Example Integrator",
                }
            ],
        },
    )


def _r(target: str, cls: str, check: str, status: Status, at: datetime, **kw: Any) -> Result:
    return Result(target=target, target_class=cls, check=check, status=status, observed_at=at, **kw)


def _fill(store: Store) -> None:
    """A month of a switch and a camera, through the same ingest path the collector uses."""

    def ingest(*results: Result) -> None:
        store.ingest("s1", "a1", list(results), CLASSES, Policy(), datetime.now(UTC))

    sw, cam = "sw-core", "cam-东门-01"
    ingest(
        _r(sw, "snmp-device", "snmp.reachable", Status.OK, T0, value="up"),
        _r(
            sw,
            "snmp-device",
            "inventory.entity",
            Status.OK,
            T0,
            summary="S5720-32X-EI",
            facts={
                "serial": SERIAL_SW,
                "model": "S5720-32X-EI",
                "firmware": "V200R010C00SPC600",
                "location": "Machine room A, rack 3",
            },
        ),
        _r(sw, "snmp-device", "snmp.uptime", Status.OK, T0, value=864000.0, unit="s"),
        _r(
            cam,
            "snmp-device",
            "inventory.entity",
            Status.OK,
            T0,
            summary=INJECT_HTML,
            facts={"serial": SERIAL_CAM, "model": "DS-2CD2T47G2-L", "location": INJECT_TYPST},
        ),
        _r(cam, "snmp-device", "snmp.reachable", Status.OK, T0, value="up"),
    )
    ingest(_r(sw, "snmp-device", "snmp.reachable", Status.CRIT, T0 + timedelta(minutes=5)))
    ingest(_r(sw, "snmp-device", "snmp.reachable", Status.OK, T0 + timedelta(minutes=50)))
    ingest(_r(cam, "snmp-device", "snmp.reachable", Status.CRIT, T0 + timedelta(hours=2)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CollectorConfig]]:
    tmp = tmp_path_factory.mktemp("reports")
    cfg = _cfg(tmp / "collector.db")
    store = Store(cfg.database.url, ZoneInfo("Asia/Shanghai"))
    _fill(store)
    yield store, cfg
    store.close()


def _data(built: tuple[Store, CollectorConfig], lang: str) -> dict[str, Any]:
    store, cfg = built
    return build_monthly(store, cfg, CLASSES, "s1", MONTH, lang, now=T0 + timedelta(days=8))


def _pdftotext(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def _dark_pixels(pdf: Path, tmp: Path) -> int:
    """Dark pixels of page 1 at 60 dpi, from pdftoppm's grey PGM (a header and raw bytes, so
    no imaging library is needed). A blank page has none; a page of tofu boxes very few."""
    stem = tmp / "grey"
    subprocess.run(
        ["pdftoppm", "-gray", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)],
        check=True,
    )
    raw = stem.with_suffix(".pgm").read_bytes()
    head = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", raw)
    assert head, raw[:20]
    body = raw[head.end() : head.end() + int(head[1]) * int(head[2])]
    return sum(1 for px in body if px < 128)


def _flat(text: str) -> str:
    """Extracted text without the spaces and line breaks layout adds between CJK glyphs."""
    return "".join(text.split())


def test_pdf_zh_has_serials_incidents_and_chinese(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    data = _data(built, "zh-CN")
    numbers = [i["number"] for i in data["incidents"]]
    assert len(numbers) == 2
    started = time.perf_counter()
    [pdf] = render(data, ["pdf"], tmp_path)
    took = time.perf_counter() - started
    assert pdf.read_bytes().startswith(b"%PDF")
    assert took < 30
    text = _pdftotext(pdf)
    flat = _flat(text)
    for needle in (
        "月度巡检报告",
        "巡检记录表",
        "巡检概要",
        "本月故障",
        "签字确认",
        "东门视频监控",
        "cam-东门-01",
        SERIAL_SW,
        SERIAL_CAM,
        "V200R010C00SPC600",
        *numbers,
    ):
        assert _flat(needle) in flat, needle
    # Page numbers in the contracts' form.
    assert "第1页/共" in flat
    # Injected text is printed literally, not obeyed as Typst markup or HTML.
    assert _flat(INJECT_TYPST) in flat
    assert _flat(INJECT_HTML) in flat


def test_pdf_en_and_page_one_is_not_blank(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    data = _data(built, "en")
    [pdf] = render(data, ["pdf"], tmp_path)
    flat = _flat(_pdftotext(pdf))
    for needle in ("Monthly inspection report", "Inspection record", SERIAL_SW, "Page 1 of"):
        assert _flat(needle) in flat, needle
    # Chinese names still print in the English report (the CJK font is the fallback).
    assert "cam-东门-01" in flat
    dark = _dark_pixels(pdf, tmp_path)
    assert dark > 2000, f"page 1 looks blank ({dark} dark pixels)"


def test_pdf_page_one_zh_renders(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    """Page 1 of the Chinese report as an image: a missing CJK font shows as few dark pixels
    (tofu boxes are thin outlines); set FIELDMON_KEEP_PNG to keep the PNGs for a person."""
    [pdf] = render(_data(built, "zh-CN"), ["pdf"], tmp_path)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(tmp_path / "p")],
        check=True,
    )
    pngs = sorted(tmp_path.glob("p*.png"))
    assert len(pngs) == 2
    assert all(p.stat().st_size > 5000 for p in pngs)
    assert _dark_pixels(pdf, tmp_path) > 2000
    keep = os.environ.get("FIELDMON_KEEP_PNG")  # a folder, to look at the pages yourself
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in pngs:
            shutil.copyfile(p, Path(keep) / p.name)


def test_html_escapes_injected_text(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    [html_path] = render(_data(built, "zh-CN"), ["html"], tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert INJECT_HTML not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "#set page(fill: red)" in html


def test_empty_month_still_renders(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    store, cfg = built
    data = build_monthly(store, cfg, CLASSES, "s1", "2026-01", "zh-CN")
    [pdf] = render(data, ["pdf"], tmp_path)
    flat = _flat(_pdftotext(pdf))
    assert "本月没有巡检数据" in flat


def test_xlsx_sheets_read_back(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    from openpyxl import load_workbook

    data = _data(built, "zh-CN")
    [path] = render(data, ["xlsx"], tmp_path)
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == ["概要", "巡检记录表", "故障", "变更情况", "隐患分析"]
    summary = {r[0]: r[1] for r in wb["概要"].iter_rows(min_row=2, values_only=True)}
    assert summary["设备总数"] == 2
    assert summary["级别 2"] == 2
    assert summary["客户"] == "东城区公安分局 " + INJECT_HTML

    forms = list(wb["巡检记录表"].iter_rows(values_only=True))
    header, rows = forms[0], forms[1:]
    col = {name: i for i, name in enumerate(header)}
    n_items = sum(len(d["items"]) for d in data["devices"])
    assert len(rows) == n_items, "one row per device and checklist item"
    sw = [r for r in rows if r[col["设备"]] == "sw-core"]
    assert {r[col["序列号"]] for r in sw} == {SERIAL_SW}
    reach = next(r for r in sw if r[col["检查项目"]] == "设备在线（SNMP 可达）")
    assert (reach[col["结论"]], reach[col["本月最差"]]) == ("正常", "故障")
    uptime = next(r for r in sw if str(r[col["检查项目"]]).startswith("运行时长"))
    assert uptime[col["测量值"]] == 864000 and uptime[col["单位"]] == "s"
    cam = [r for r in rows if r[col["设备"]] == "cam-东门-01"]
    assert {r[col["位置"]] for r in cam} == {INJECT_TYPST}

    incidents = list(wb["故障"].iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in incidents] == [i["number"] for i in data["incidents"]]
    assert [r[7] for r in incidents] == ["已解决", "未关闭"]
    wb.close()


def test_xlsx_keeps_formula_like_text_as_text(tmp_path: Path) -> None:
    """A device name starting with "=" must not become a formula in the customer's Excel."""
    from openpyxl import load_workbook

    from collector.reports.labels import LABELS
    from collector.reports.xlsx import render_xlsx

    evil = '=HYPERLINK("http://example.invalid","x")'
    data: dict[str, Any] = {
        "labels": LABELS["en"],
        "cover": {
            "site": "s1",
            "customer": evil,
            "contract": "",
            "title": "s1",
            "maintainer": "",
            "period": MONTH,
            "report_no": "RPT",
            "generated": "",
            "timezone": "UTC",
        },
        "summary": {
            "devices": 0,
            "inspected": 0,
            "unreachable": 0,
            "by_class": {},
            "items": {"OK": 0, "WARN": 0, "CRIT": 0, "UNKNOWN": 0},
            "incidents_by_level": {"1": 0, "2": 0, "3": 0, "4": 0},
            "incidents_open": 0,
            "incidents_resolved": 0,
        },
        "devices": [],
        "incidents": [],
        "gaps": [],
    }
    render_xlsx(data, tmp_path / "x.xlsx")
    wb = load_workbook(tmp_path / "x.xlsx")
    cell = wb["Summary"]["B3"]
    assert cell.value == evil and cell.data_type == "s"


def test_pdf_embeds_the_charts(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    """Availability and incidents-by-level are PNG images drawn by matplotlib, in the PDF."""
    from collector.reports.charts import charts

    data = _data(built, "zh-CN")
    pngs = charts(data)
    assert set(pngs) == {"chart-pass-rate.png", "chart-incidents.png"}
    assert all(b.startswith(b"\x89PNG") for b in pngs.values())
    [pdf] = render(data, ["pdf"], tmp_path)
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, check=True, text=True
    ).stdout.splitlines()[2:]
    images = [row.split() for row in listing if row.split()[2] == "image"]
    assert len(images) == 2
    assert all(row[0] == "2" for row in images), "both charts on the summary page"
