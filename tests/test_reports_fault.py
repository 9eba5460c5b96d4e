"""The fault analysis report (故障分析说明) from a real store: an incident opened by a phone
call, acknowledged, resolved and analysed through the same Store methods the CLI and API use;
the PDF read back with pdftotext."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import CollectorConfig, load_collector_config
from collector.incidents.engine import Policy
from collector.reports.fault import FaultReportError, build_fault, render_fault
from collector.store.db import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CLASSES = load_catalogue()
INJECT = '#panic("x") $x$ <script>alert(1)</script>'


def _cfg(db: Path) -> CollectorConfig:
    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [{"name": "s1", "customer": "东城区公安分局", "title": "东门视频监控"}],
        },
    )


@pytest.fixture(scope="module")
def store_cfg(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, CollectorConfig, str, str]]:
    tmp = tmp_path_factory.mktemp("fault")
    cfg = _cfg(tmp / "c.db")
    store = Store(cfg.database.url, ZoneInfo("Asia/Shanghai"))
    called, _ = store.open_manual(
        site="s1",
        target="nvr-01",
        level=2,
        title="录像回放失败",
        description=INJECT,
        caller={"name": "张三", "phone": "13800000000", "company": "东城区公安分局"},
        author="desk",
        now=T0,
    )
    store.act(called, "ack", "li", T0 + timedelta(minutes=3))
    store.act(called, "resolve", "li", T0 + timedelta(hours=5), text="replaced disk 3")
    store.act(
        called,
        "analysis",
        "li",
        T0 + timedelta(hours=6),
        symptoms="回放卡住 " + INJECT,
        handling="更换 3 号硬盘",
        result="恢复正常",
        prevention="每月检查 SMART",
    )
    store.ingest(
        "s1",
        "a1",
        [
            Result(
                target="sw-core",
                target_class="snmp-device",
                check="snmp.reachable",
                status=Status.CRIT,
                observed_at=T0,
            )
        ],
        CLASSES,
        Policy(),
        T0,
    )
    auto = store.incidents(site="s1", target="sw-core")[0]["number"]
    yield store, cfg, str(called), str(auto)
    store.close()


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True)
    return "".join(out.stdout.split())


def test_filed_analysis_pdf_zh(
    store_cfg: tuple[Store, CollectorConfig, str, str], tmp_path: Path
) -> None:
    store, cfg, called, _ = store_cfg
    data = build_fault(store, cfg, called, "zh-CN", now=T0 + timedelta(days=1))
    assert data["analysis_complete"] and not data["analysis_overdue"]
    # Level 2: respond 5 min (met at 3 min), on site 2 h (never recorded: missed),
    # resolve 4 h (done at 5 h: missed).
    verdicts = {s["deadline"]: s["verdict"] for s in data["sla"]}
    assert verdicts == {"respond": "met", "onsite": "missed", "resolve": "missed"}
    assert (data["sla_met"], data["sla_missed"]) == (1, 2)
    assert data["timeline_intact"]
    [pdf, js] = render_fault(data, ["pdf", "json"], tmp_path)
    flat = _text(pdf)
    for needle in ("故障分析说明", called, "张三", "13800000000", "更换3号硬盘", "每月检查SMART"):
        assert needle in flat, needle
    assert "".join(INJECT.split()) in flat  # printed, not obeyed
    for ev in data["timeline"]:
        assert ev["hash"][:16] in flat  # hashes print (possibly wrapped, prefix intact)
    assert "第1页/共" in flat
    body = orjson.loads(js.read_bytes())
    assert body["sla"] == data["sla"] and "labels" not in body


def test_missing_analysis_is_marked(
    store_cfg: tuple[Store, CollectorConfig, str, str], tmp_path: Path
) -> None:
    store, cfg, _, auto = store_cfg
    data = build_fault(store, cfg, auto, "en", now=T0 + timedelta(hours=1))
    assert all(a["missing"] for a in data["analysis"].values())
    assert data["caller"] == {}
    pending = {s["deadline"]: s["verdict"] for s in data["sla"]}
    assert pending["resolve"] == "pending"
    [pdf, html] = render_fault(data, ["pdf", "html"], tmp_path)
    flat = _text(pdf)
    assert flat.count("[MISSING:notyetfiledbytheengineer]") == 4
    assert "Faultanalysisreport" in flat and "Foundbythesystem;nocaller." in flat
    page = html.read_text(encoding="utf-8")
    assert page.count('class="missing"') == 4


def test_html_escapes_and_unknown_incident(
    store_cfg: tuple[Store, CollectorConfig, str, str], tmp_path: Path
) -> None:
    store, cfg, called, _ = store_cfg
    [html] = render_fault(build_fault(store, cfg, called, "zh-CN"), ["html"], tmp_path)
    page = html.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    with pytest.raises(FaultReportError):
        build_fault(store, cfg, "FM-NOPE", "zh-CN")
