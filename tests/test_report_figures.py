"""The monthly summary's computed figures — SLA compliance per level, availability per class,
the camera online rate and its daily curve, recording completeness — and the location
changes, from a store filled through the collector's own ingest path. The figures are
recomputed here from the raw rows (incidents, transitions) with independent arithmetic and
compared with the JSON, the PDF text (pdftotext) and the XLSX cells."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import CollectorConfig, load_collector_config
from collector.incidents.engine import Policy
from collector.incidents.sla import DEFAULT_TARGETS
from collector.reports.monthly import build_monthly, render
from collector.store.db import Store
from collector.store.history import record_locations
from collector.store.schema import transitions
from collector.store.times import utc

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-11"
CLASSES = load_catalogue()
#: Local midnight starting the month, in UTC.
NOV = datetime(2026, 11, 1, tzinfo=TZ).astimezone(UTC)
DEC = datetime(2026, 12, 1, tzinfo=TZ).astimezone(UTC)
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SERIAL_CAM = "DS-2CD2T47G2-L20231105AACHK98765432"
SERIAL_SW = "2102359579DMHC000777"


def make_cfg(db: Path) -> CollectorConfig:
    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [
                {
                    "name": "s2",
                    "customer": "西城区交通支队",
                    "contract": "FM-2026-017",
                    "title": "西门视频监控",
                    "maintainer": "Example Integrator",
                }
            ],
        },
    )


def _r(target: str, cls: str, check: str, status: Status, at: datetime, **kw: Any) -> Result:
    return Result(target=target, target_class=cls, check=check, status=status, observed_at=at, **kw)


def fill(store: Store) -> dict[str, str]:
    """A month at site s2; returns the numbers of the incidents opened by hand."""

    def ingest(*results: Result, at: datetime | None = None) -> None:
        store.ingest("s2", "a2", list(results), CLASSES, Policy(), at or NOW)

    oct1 = datetime(2026, 10, 5, tzinfo=TZ).astimezone(UTC)
    # October: the switch stands in machine room A.
    ingest(
        _r("sw-01", "switch", "snmp.reachable", Status.OK, oct1, value="up"),
        _r(
            "sw-01",
            "switch",
            "inventory.entity",
            Status.OK,
            oct1,
            value=SERIAL_SW,
            facts={"serial": SERIAL_SW, "model": "S5735", "location": "机房 A 3 号柜"},
        ),
    )
    record_locations(store, oct1 + timedelta(hours=1), "s2")
    # November: every device reports from local midnight of the 1st.
    ingest(
        _r("sw-01", "switch", "snmp.reachable", Status.OK, NOV, value="up"),
        _r(
            "cam-01",
            "camera",
            "inventory.entity",
            Status.OK,
            NOV,
            value=SERIAL_CAM,
            facts={"serial": SERIAL_CAM, "model": "DS-2CD2T47G2-L", "location": "西门 1 号杆"},
        ),
        _r("cam-01", "camera", "snmp.reachable", Status.OK, NOV, value="up"),
        _r("cam-02", "camera", "snmp.reachable", Status.OK, NOV, value="up"),
        _r("cam-dead", "camera", "snmp.reachable", Status.CRIT, NOV, value="down"),
        _r("nvr-01", "nvr", "snmp.reachable", Status.OK, NOV, value="up"),
        _r("nvr-01", "nvr", "nvr.recording", Status.OK, NOV, value=98.5, unit="%"),
    )
    # The switch was moved on the 15th, noticed by housekeeping.
    moved = datetime(2026, 11, 15, 10, tzinfo=TZ).astimezone(UTC)
    ingest(
        _r(
            "sw-01",
            "switch",
            "inventory.entity",
            Status.OK,
            moved,
            value=SERIAL_SW,
            facts={"location": "机房 B 1 号柜"},
        )
    )
    record_locations(store, moved + timedelta(minutes=5), "s2")
    # cam-01 down 6 hours on the 10th (local 08:00–14:00).
    down = datetime(2026, 11, 10, 8, tzinfo=TZ).astimezone(UTC)
    ingest(_r("cam-01", "camera", "snmp.reachable", Status.CRIT, down, value="down"))
    ingest(_r("cam-dead", "camera", "snmp.reachable", Status.CRIT, down, value="down"))
    # cam-03 is new: first seen on the 20th.
    new = datetime(2026, 11, 20, tzinfo=TZ).astimezone(UTC)
    ingest(_r("cam-03", "camera", "snmp.reachable", Status.OK, new, value="up"))
    auto = store.incidents(site="s2", target="cam-01")
    assert len(auto) == 1
    # Acknowledged 20 minutes after opening: a level-3 response (10 min) missed.
    store.act(str(auto[0]["number"]), "ack", "王工", down + timedelta(minutes=20))
    up = down + timedelta(hours=6)
    ingest(_r("cam-01", "camera", "snmp.reachable", Status.OK, up, value="up"))
    ingest(_r("cam-01", "camera", "snmp.reachable", Status.OK, up + timedelta(minutes=1)))
    ingest(_r("cam-01", "camera", "snmp.reachable", Status.OK, up + timedelta(minutes=2)))
    # A level-2 call about the switch: answered in 2 minutes, resolved after 5 hours (4 h).
    opened = datetime(2026, 11, 21, 9, tzinfo=TZ).astimezone(UTC)
    number, _ = store.open_manual(
        site="s2",
        target="sw-01",
        level=2,
        title="上联端口闪断",
        description="客户来电",
        caller={"name": "李"},
        author="desk",
        now=opened,
    )
    store.act(number, "ack", "王工", opened + timedelta(minutes=2))
    store.act(number, "resolve", "王工", opened + timedelta(hours=5), text="更换光模块")
    return {"manual": number, "auto": str(auto[0]["number"])}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CollectorConfig]]:
    tmp = tmp_path_factory.mktemp("figures")
    cfg = make_cfg(tmp / "collector.db")
    store = Store(cfg.database.url, TZ)
    fill(store)
    yield store, cfg
    store.close()


def _data(built: tuple[Store, CollectorConfig], lang: str = "zh-CN", month: str = MONTH) -> Any:
    store, cfg = built
    return build_monthly(store, cfg, CLASSES, "s2", month, lang, now=NOW)


def _pdftotext(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def _flat(text: str) -> str:
    return "".join(text.split())


# ------------------------------------------------------------------ recomputed from raw rows


def _recompute_sla(store: Store) -> dict[str, dict[str, int]]:
    """From the incident rows alone, on the default 7x24 calendar with no pauses: per level,
    responded/resolved in time or not, for incidents opened in November."""
    out: dict[str, dict[str, int]] = {}
    for r in store.incidents(site="s2", limit=1000):
        opened = utc(r["opened_at"])
        assert opened is not None
        if not NOV <= opened < DEC or r["state"] == "merged":
            continue
        t = DEFAULT_TARGETS[int(r["level"])]
        e = out.setdefault(
            str(r["level"]), {"n": 0, "resp_met": 0, "resp_miss": 0, "res_met": 0, "res_miss": 0}
        )
        e["n"] += 1
        assert t.respond is not None
        for kind, done, limit in (
            ("resp", utc(r["responded_at"]), t.respond),
            ("res", utc(r["resolved_at"]), t.resolve),
        ):
            if done is not None and done - opened <= limit:
                e[f"{kind}_met"] += 1
            elif done is not None or NOW - opened > limit:
                e[f"{kind}_miss"] += 1
    return out


def _recompute_online(store: Store, cameras: list[str]) -> float:
    """Camera-seconds up over camera-seconds observed in November, from the transitions
    table read directly."""
    with store.engine.connect() as conn:
        rows = list(
            conn.execute(
                select(transitions).where(transitions.c.check_key == "snmp.reachable")
            ).mappings()
        )
    up = seen = 0.0
    for cam in cameras:
        mine = sorted((utc(r["at"]), int(r["to_status"])) for r in rows if r["target"] == cam)
        for i, (at, status) in enumerate(mine):
            assert at is not None
            end = mine[i + 1][0] if i + 1 < len(mine) else DEC
            assert end is not None
            a, b = max(at, NOV), min(end, DEC)
            if b > a:
                seen += (b - a).total_seconds()
                if status in (int(Status.OK), int(Status.WARN)):
                    up += (b - a).total_seconds()
    return round(100 * up / seen, 2)


def test_sla_compliance_recomputed_from_incident_rows(built: tuple[Store, CollectorConfig]) -> None:
    store, _ = built
    data = _data(built)
    sc = data["summary"]["sla_compliance"]
    raw = _recompute_sla(store)
    assert set(raw) == {"2", "3"}
    for lv, e in raw.items():
        assert sc[lv]["incidents"] == e["n"]
        assert sc[lv]["respond"]["met"] == e["resp_met"]
        assert sc[lv]["respond"]["missed"] == e["resp_miss"]
        assert sc[lv]["resolve"]["met"] == e["res_met"]
        assert sc[lv]["resolve"]["missed"] == e["res_miss"]
    # Level 3: cam-01 answered late (20 min > 10) but resolved in time; cam-dead's incident
    # (opened at local midnight of the 1st) never answered nor resolved. Level 2: answered in
    # time, resolved late (5 h > 4 h).
    assert sc["3"]["incidents"] == 2
    assert sc["3"]["respond"] == {"met": 0, "missed": 2, "pending": 0, "rate": 0.0}
    assert sc["3"]["resolve"] == {"met": 1, "missed": 1, "pending": 0, "rate": 50.0}
    assert sc["2"]["respond"]["rate"] == 100.0 and sc["2"]["resolve"]["rate"] == 0.0
    # Levels without incidents have no rate at all, not 0 % or 100 %.
    assert sc["1"] == {
        "incidents": 0,
        "respond": {"met": 0, "missed": 0, "pending": 0, "rate": None},
        "resolve": {"met": 0, "missed": 0, "pending": 0, "rate": None},
    }
    by_no = {i["number"]: i for i in data["incidents"]}
    assert all(i["sla"] == "missed" for i in by_no.values())


def test_camera_online_rate_recomputed_from_transitions(
    built: tuple[Store, CollectorConfig],
) -> None:
    store, _ = built
    data = _data(built)
    co = data["summary"]["camera_online"]
    cameras = ["cam-01", "cam-02", "cam-03", "cam-dead"]
    assert co["cameras"] == 4 and co["measured"] == 4
    assert co["rate"] == _recompute_online(store, cameras)
    daily = {d["date"]: d["rate"] for d in co["daily"]}
    assert len(daily) == 30
    # The 10th: cam-01 down 6 of 24 h, cam-dead down all day, cam-02 up, cam-03 not yet.
    assert daily["2026-11-10"] == round(100 * (18 + 24) / 72, 2)
    # The 25th: cam-03 counts too.
    assert daily["2026-11-25"] == 75.0
    assert data["summary"]["never_reached"] == ["cam-dead"]
    assert data["summary"]["inspected"] == data["summary"]["devices"] - 1
    avail = data["summary"]["availability"]
    assert avail["交换机"]["rate"] == 100.0
    assert avail["网络摄像机"]["rate"] == co["rate"]
    assert data["summary"]["recording"] == {
        "nvrs": [{"device": "nvr-01", "rate": 98.5}],
        "rate": 98.5,
        "nvr_count": 1,
        "reporting": 1,
        "note": "",
    }


def test_location_change_from_history(built: tuple[Store, CollectorConfig]) -> None:
    data = _data(built, "en")
    moves = [c for c in data["changes"]["items"] if c["kind"] == "location"]
    assert moves == [
        {
            "device": "sw-01",
            "kind": "location",
            "change": "Location changed",
            "before": "机房 A 3 号柜",
            "after": "机房 B 1 号柜",
            "remark": "1 move(s) recorded this month",
        }
    ]
    # October itself: the first location recorded is not a move.
    october = _data(built, "en", "2026-10")["changes"]["items"]
    assert not [c for c in october if c["kind"] == "location"]


def test_pdf_json_xlsx_carry_the_same_figures(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    data = _data(built)
    paths = render(data, ["json", "pdf", "xlsx", "html"], tmp_path)
    body = orjson.loads(paths[0].read_bytes())
    assert body["summary"]["camera_online"]["rate"] == data["summary"]["camera_online"]["rate"]
    text = _flat(_pdftotext(paths[1]))
    rate = data["summary"]["camera_online"]["rate"]
    assert f"视频在线率:{rate:g}%" in text
    assert "服务时限（SLA）达成情况" in text
    assert "0/2" in text and "1/2" in text and "50%" in text  # level 3: 0/2 and 1/2 in time
    assert "位置变更" in text and "机房A3号柜" in text and "机房B1号柜" in text
    assert "本月没有录像机上报录像完整率" not in text and "98.5%" in text
    assert "cam-dead" in text and "本月该设备始终无法连接" in text
    assert "新纳入监控的设备" in text  # cam-03
    for number in (i["number"] for i in data["incidents"]):
        assert number in text
    assert "超时" in text  # SLA missed, in the incidents table
    assert SERIAL_CAM in text
    wb = load_workbook(paths[2])
    rows = {r[0].value: r[1].value for r in wb.worksheets[0].iter_rows(min_row=2)}
    assert rows["视频在线率 (%)"] == rate
    assert rows["服务时限（SLA）达成情况 · 级别 3 · 按时响应"] == "0/2"
    assert rows["服务时限（SLA）达成情况 · 级别 3 · 按时解决 · 达成率 (%)"] == 50.0
    assert rows["录像完整率 (%)"] == 98.5
    daily = wb["视频在线率"]
    assert daily.max_row == 31
    html = paths[3].read_text(encoding="utf-8")
    assert f"{rate:g}%" in html and "sla-missed" in html


def test_online_curve_chart_is_drawn(built: tuple[Store, CollectorConfig]) -> None:
    from collector.reports.charts import charts

    images = charts(_data(built))
    png = images["chart-online.png"]
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_empty_month_says_so(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    data = _data(built, "zh-CN", "2026-08")
    s = data["summary"]
    assert s["empty"] is True and s["devices"] == 0
    assert s["camera_online"]["rate"] is None
    assert all(a["rate"] is None for a in s["availability"].values())
    paths = render(data, ["pdf", "xlsx"], tmp_path)
    text = _flat(_pdftotext(paths[0]))
    assert "本月没有收到任何巡检数据" in text
    assert "本站点本月没有摄像机数据" in text
    assert "0%" not in text and "0.0%" not in text
    from collector.reports.charts import charts

    assert "chart-online.png" not in charts(data)
