"""The monthly report's "changes since last month" (变更情况) and "hidden dangers and
recommendations" (设备及系统隐患分析), from a real store holding two months of ingested
results, read back from the JSON data, the HTML, the PDF (pdftotext) and the XLSX (openpyxl)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import CollectorConfig, load_collector_config
from collector.incidents.engine import Policy
from collector.reports.changes import previous_month
from collector.reports.monthly import build_monthly, render
from collector.store.db import Store

CLASSES = load_catalogue()
OCT = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
NOV = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MONTH = "2026-11"
OLD_SERIAL = "2102359579DMHC000288"
NEW_SERIAL = "2102359579DMHC000999"
OLD_FW = "V200R010C00SPC600"
NEW_FW = "V200R019C10SPC500"
#: 60 % on 23 Oct, 80 % on 23 Nov (31 days): +20/31 % a day, 20 % left → 31 more days.
FULL_DATE = "2026-12-24"


def _cfg(db: Path) -> CollectorConfig:
    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [{"name": "s1", "customer": "客户", "contract": "C-1", "title": "东门"}],
        },
    )


def _r(target: str, cls: str, check: str, status: Status, at: datetime, **kw: Any) -> Result:
    return Result(target=target, target_class=cls, check=check, status=status, observed_at=at, **kw)


def _fill(store: Store) -> None:
    def ingest(*results: Result) -> None:
        store.ingest("s1", "a1", list(results), CLASSES, Policy(), datetime.now(UTC))

    sw, srv, ups, old, new = "sw-core", "srv-vms", "ups-1", "cam-old", "nvr-new"
    # October: the switch before its replacement, the server's disk at 60 %, a camera.
    ingest(
        _r(sw, "switch", "snmp.reachable", Status.OK, OCT, value="up"),
        _r(
            sw,
            "switch",
            "inventory.entity",
            Status.OK,
            OCT,
            value=OLD_SERIAL,
            summary=f"S5720-32X-EI, serial {OLD_SERIAL}, firmware {OLD_FW}",
            facts={"serial": OLD_SERIAL, "firmware": OLD_FW},
        ),
        _r(sw, "switch", "firmware.version", Status.OK, OCT, value=OLD_FW, summary=OLD_FW),
        _r(srv, "server-snmp", "disk.usage", Status.OK, OCT, value=60.0, unit="%", item="D:"),
        _r(ups, "ups", "ups.battery_replace", Status.OK, OCT, value="no"),
        _r(old, "camera", "snmp.reachable", Status.OK, OCT, value="up"),
    )
    # November: a new serial and firmware on the switch, its configuration changed, the disk
    # at 80 %, the UPS asking for a battery, a new NVR, the old camera gone.
    ingest(
        _r(sw, "switch", "snmp.reachable", Status.OK, NOV, value="up"),
        _r(
            sw,
            "switch",
            "inventory.entity",
            Status.OK,
            NOV,
            value=NEW_SERIAL,
            summary=f"S5720-32X-EI, serial {NEW_SERIAL}, firmware {NEW_FW}",
            facts={"serial": NEW_SERIAL, "firmware": NEW_FW, "location": "机房 A"},
        ),
        _r(sw, "switch", "firmware.version", Status.OK, NOV, value=NEW_FW, summary=NEW_FW),
        _r(sw, "switch", "config.changed", Status.WARN, NOV, value="changed", summary="+vlan 30"),
        _r(srv, "server-snmp", "disk.usage", Status.OK, NOV, value=80.0, unit="%", item="D:"),
        _r(
            ups,
            "ups",
            "ups.battery_replace",
            Status.CRIT,
            NOV,
            value="yes",
            summary="upsAdvBatteryReplaceIndicator: batteryNeedsReplacing",
        ),
        _r(new, "nvr", "snmp.reachable", Status.OK, NOV, value="up"),
        _r(new, "nvr", "clock.drift", Status.WARN, NOV, value=95.0, unit="s"),
    )
    for i in range(1, 5):  # the NVR drops off the network now and then
        at = NOV + timedelta(hours=i)
        ingest(_r(new, "nvr", "snmp.reachable", Status.CRIT, at, value="down"))
        ingest(_r(new, "nvr", "snmp.reachable", Status.OK, at + timedelta(minutes=5), value="up"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CollectorConfig]]:
    tmp = tmp_path_factory.mktemp("changes")
    cfg = _cfg(tmp / "collector.db")
    store = Store(cfg.database.url, ZoneInfo("Asia/Shanghai"))
    _fill(store)
    yield store, cfg
    store.close()


def _data(built: tuple[Store, CollectorConfig], lang: str, month: str = MONTH) -> dict[str, Any]:
    store, cfg = built
    return build_monthly(store, cfg, CLASSES, "s1", month, lang, now=NOV + timedelta(days=8))


def _flat(text: str) -> str:
    return "".join(text.split())


def _changes(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["device"], c["kind"]): c for c in data["changes"]["items"]}


def test_previous_month() -> None:
    assert previous_month("2026-11") == "2026-10"
    assert previous_month("2026-01") == "2025-12"


def test_changes_from_two_months_of_records(built: tuple[Store, CollectorConfig]) -> None:
    data = _data(built, "en")
    ch = data["changes"]
    assert ch["previous_period"] == "2026-10" and ch["compared"] is True
    assert ch["location_compared"] is True  # from the recorded location history
    got = _changes(data)
    assert set(got) == {
        ("nvr-new", "added"),
        ("cam-old", "removed"),
        ("sw-core", "serial"),
        ("sw-core", "firmware"),
        ("sw-core", "config"),
    }
    assert (got["sw-core", "serial"]["before"], got["sw-core", "serial"]["after"]) == (
        OLD_SERIAL,
        NEW_SERIAL,
    )
    assert (got["sw-core", "firmware"]["before"], got["sw-core", "firmware"]["after"]) == (
        OLD_FW,
        NEW_FW,
    )
    assert got["sw-core", "config"]["after"] == "+vlan 30"
    # Nothing changed on the server or the UPS: no rows for them.
    assert not any(c["device"] in ("srv-vms", "ups-1") for c in ch["items"])


def test_first_month_says_it_cannot_compare(built: tuple[Store, CollectorConfig]) -> None:
    data = _data(built, "zh-CN", "2026-10")
    assert data["changes"]["compared"] is False and data["changes"]["items"] == []


def test_dangers_with_evidence_and_actions(built: tuple[Store, CollectorConfig]) -> None:
    data = _data(built, "en")
    by = {(z["device"], z["kind"]): z for z in data["dangers"]}
    assert set(by) == {
        ("srv-vms", "disk"),
        ("ups-1", "ups"),
        ("nvr-new", "clock"),
        ("nvr-new", "repeated"),
    }
    disk = by["srv-vms", "disk"]
    assert disk["item"] == "D:"
    assert disk["full_date"] == FULL_DATE
    assert (disk["previous_value"], disk["value"]) == (60.0, 80.0)
    assert disk["rate_per_day"] == pytest.approx(20 / 31, abs=1e-4)
    assert FULL_DATE in disk["evidence"] and "60%" in disk["evidence"]
    assert "80%" in disk["evidence"]
    assert "batteryNeedsReplacing" in by["ups-1", "ups"]["evidence"]
    assert by["ups-1", "ups"]["action"].startswith("replace the UPS battery")
    assert "4 of 9" in by["nvr-new", "repeated"]["evidence"]
    assert all(z["evidence"] and z["action"] for z in data["dangers"])


def test_json_and_html_carry_both_sections(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    data = _data(built, "zh-CN")
    json_path, html_path = render(data, ["json", "html"], tmp_path)
    body = orjson.loads(json_path.read_bytes())
    assert body["changes"] == data["changes"] and body["dangers"] == data["dangers"]
    html = html_path.read_text(encoding="utf-8")
    for needle in (
        "变更情况",
        "设备及系统隐患分析",
        NEW_SERIAL,
        OLD_SERIAL,
        FULL_DATE,
        "UPS 电池需更换",
    ):
        assert needle in html, needle


def test_pdf_text_has_changes_and_dangers(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    [pdf] = render(_data(built, "zh-CN"), ["pdf"], tmp_path)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    ).stdout
    flat = _flat(text)
    for needle in (
        "变更情况",
        "序列号变更",
        OLD_SERIAL,
        NEW_SERIAL,
        "固件版本变更",
        NEW_FW,
        "新增设备",
        "撤除设备",
        "cam-old",
        "配置变更",
        "设备及系统隐患分析",
        "磁盘空间将满",
        f"预计{FULL_DATE}用满",
        "UPS电池需更换",
        "安排更换UPS电池组",
        "时钟偏差",
    ):
        assert _flat(needle) in flat, needle
    # The sections come in the order: record form, changes, dangers, incidents.
    assert flat.index("巡检记录表") < flat.index("变更情况") < flat.index("设备及系统隐患分析")
    assert flat.rindex("设备及系统隐患分析") < flat.rindex("本月故障")


def test_pdf_en_wording(built: tuple[Store, CollectorConfig], tmp_path: Path) -> None:
    [pdf] = render(_data(built, "en"), ["pdf"], tmp_path)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True
    ).stdout
    flat = _flat(text)
    for needle in (
        "Changes since last month",
        "Serial number changed",
        "Hidden dangers and recommendations",
        "UPS battery to replace",
        f"full on {FULL_DATE}",
    ):
        assert _flat(needle) in flat, needle


def test_xlsx_sheets_for_changes_and_dangers(
    built: tuple[Store, CollectorConfig], tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    [path] = render(_data(built, "zh-CN"), ["xlsx"], tmp_path)
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames[-2:] == ["变更情况", "隐患分析"]
    header, *rows = list(wb["变更情况"].iter_rows(values_only=True))
    assert header == ("设备", "变更", "上月", "本月", "备注")
    assert ("sw-core", "序列号变更", OLD_SERIAL, NEW_SERIAL) in [tuple(r[:4]) for r in rows]
    assert ("cam-old", "撤除设备") in [tuple(r[:2]) for r in rows]
    header, *rows = list(wb["隐患分析"].iter_rows(values_only=True))
    assert header == ("设备", "检查项目", "隐患", "依据", "建议措施")
    disk = next(r for r in rows if r[0] == "srv-vms")
    assert disk[1] == "D:" and disk[2] == "磁盘空间将满" and FULL_DATE in str(disk[3])
    ups = next(r for r in rows if r[0] == "ups-1")
    assert ups[2] == "UPS 电池需更换"
    wb.close()
