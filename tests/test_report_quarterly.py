"""The quarterly report's trends, SLA compliance per month, recurring faults and
recommendations, from a store filled through the collector's ingest: a camera that fails for
12 hours in October and for an hour in November, and stays up in December. The monthly camera
online rates are recomputed here from the transitions table itself and compared with the
JSON; the PDF (pdftotext, pdfimages) and HTML are read back."""

from __future__ import annotations

import html
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import CollectorConfig, load_collector_config
from collector.incidents.engine import Policy
from collector.reports.quarterly import build_quarterly, render_quarterly
from collector.store.db import Store
from collector.store.schema import transitions
from collector.store.times import utc

TZ = ZoneInfo("Asia/Shanghai")
CLASSES = load_catalogue()
NOW = datetime(2027, 1, 5, 2, 0, tzinfo=UTC)
MONTHS = ("2026-10", "2026-11", "2026-12")


def _bounds(month: str) -> tuple[datetime, datetime]:
    first = datetime.strptime(month, "%Y-%m").replace(tzinfo=TZ)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first.astimezone(UTC), nxt.astimezone(UTC)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CollectorConfig]]:
    tmp = tmp_path_factory.mktemp("quarter")
    cfg = load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{tmp / 'c.db'}"},
            "sites": [{"name": "s1", "title": "东门视频监控", "customer": "东城区公安分局"}],
        },
    )
    store = Store(cfg.database.url, TZ)

    def reach(status: Status, at: datetime) -> None:
        r = Result(
            target="cam-01",
            target_class="camera",
            check="snmp.reachable",
            status=status,
            observed_at=at,
            value="up" if status == Status.OK else None,
        )
        store.ingest("s1", "a1", [r], CLASSES, Policy(), at)

    reach(Status.OK, datetime(2026, 10, 10, tzinfo=UTC))
    reach(Status.CRIT, datetime(2026, 10, 20, tzinfo=UTC))
    reach(Status.OK, datetime(2026, 10, 20, 12, tzinfo=UTC))
    reach(Status.CRIT, datetime(2026, 11, 5, tzinfo=UTC))
    number = str(store.incidents(site="s1", state="open")[0]["number"])
    store.act(number, "ack", "王工", datetime(2026, 11, 5, 0, 3, tzinfo=UTC))
    reach(Status.OK, datetime(2026, 11, 5, 1, tzinfo=UTC))
    yield store, cfg
    store.close()


def _online_from_transitions(store: Store, month: str) -> float:
    """cam-01's online share of the month, from its transitions read straight from the table."""
    a, b = _bounds(month)
    with store.engine.connect() as conn:
        rows = sorted(
            (utc(r["at"]), int(r["to_status"]))
            for r in conn.execute(
                select(transitions).where(transitions.c.target == "cam-01")
            ).mappings()
        )
    up = seen = 0.0
    for i, (at, status) in enumerate(rows):
        assert at is not None
        nxt = rows[i + 1][0] if i + 1 < len(rows) else b
        assert nxt is not None
        lo, hi = max(at, a), min(nxt, b)
        if hi > lo:
            seen += (hi - lo).total_seconds()
            up += (hi - lo).total_seconds() if status == int(Status.OK) else 0.0
    return round(up / seen, 4)


def test_trends_and_monthly_sla(built: tuple[Store, CollectorConfig]) -> None:
    store, cfg = built
    data = build_quarterly(store, cfg, "s1", "2026Q4", "zh-CN", now=NOW)
    trends = data["trends"]
    assert [t["month"] for t in trends] == list(MONTHS)
    for t in trends:
        assert t["camera_online"] == _online_from_transitions(store, t["month"])
    assert [t["incidents"] for t in trends] == [1, 1, 0]
    assert [t["direction"]["incidents"] for t in trends] == [None, "flat", "down"]
    assert [t["direction"]["camera_online"] for t in trends] == [None, "up", "up"]
    assert trends[2]["camera_online"] == 1.0
    # SLA per month: November's incident was answered in 3 minutes (level 3: 10 min).
    nov = data["months"][1]["sla"]
    lv = next(lv for lv, f in nov.items() if f["incidents"])
    assert (nov[lv]["responded_in_time"], nov[lv]["responded_late"]) == (1, 0)
    # October's was never acknowledged: late.
    assert data["months"][0]["sla"][lv]["responded_late"] == 1
    assert trends[2]["resolved_rate"] is None  # no incidents in December: no rate, not 0 %
    # The camera failed in two months: a recurring fault, with a recommendation citing both.
    [rec] = data["recurring"]
    assert (rec["device"], rec["check"], rec["times"]) == ("cam-01", "snmp.reachable", 2)
    recurring = [r for r in data["recommendations"] if r["kind"] == "recurring"]
    assert recurring and recurring[0]["evidence"] == ", ".join(rec["numbers"])


def test_pdf_and_html_carry_the_trends(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    store, cfg = built
    data = build_quarterly(store, cfg, "s1", "2026Q4", "zh-CN", now=NOW)
    pdf, page, _ = render_quarterly(data, ["pdf", "html", "json"], tmp_path)
    text = "".join(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True
        ).stdout.split()
    )
    nov_online = f"{data['trends'][1]['camera_online'] * 100:g}%"
    for needle in ("季度趋势", "按时解决率", "视频在线率", "↑", "↓", nov_online, "重复发生的故障"):
        assert needle in text, needle
    for number in data["recurring"][0]["numbers"]:
        assert number in text
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, check=True, text=True
    ).stdout.splitlines()[2:]
    assert len([ln for ln in listing if ln.split()[2] == "image"]) == 1, "the trend chart"
    body = html.unescape(page.read_text(encoding="utf-8"))
    assert "季度趋势" in body and nov_online in body.replace(".00%", "%")
