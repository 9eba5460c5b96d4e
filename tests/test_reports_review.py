"""The review step and the quarterly report, from a real store driven through the command
line (`fieldmon report review|monthly|quarterly|fault`), PDFs read back with pdftotext."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.config import load_collector_config
from collector.incidents.engine import Policy
from collector.reports.quarterly import build_quarterly, months_of
from collector.reports.review import ReviewError, content_hash, parse_remarks
from collector.store.db import Store
from fieldmon.cli import main

T0 = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
CLASSES = load_catalogue()


def _setup(tmp: Path) -> tuple[Path, Store]:
    db = tmp / "c.db"
    conf = tmp / "collector.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n[[sites]]\nname = "s1"\ntitle = "东门视频监控"\n',
        encoding="utf-8",
    )
    store = Store(f"sqlite:///{db}", ZoneInfo("Asia/Shanghai"))
    return conf, store


def _reach(store: Store, target: str, status: Status, at: datetime) -> None:
    r = Result(
        target=target,
        target_class="snmp-device",
        check="snmp.reachable",
        status=status,
        observed_at=at,
        value="up" if status == Status.OK else None,
    )
    store.ingest("s1", "a1", [r], CLASSES, Policy(), at)


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True)
    return "".join(out.stdout.split())


def test_parse_remarks() -> None:
    assert parse_remarks(["cam:01:snmp.reachable=掉线两次 = 已处理"]) == {
        "cam:01:snmp.reachable": "掉线两次 = 已处理"
    }
    with pytest.raises(ReviewError):
        parse_remarks(["no-check-here"])


def test_review_approve_then_data_change_makes_new_draft(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf, store = _setup(tmp_path)
    _reach(store, "sw-core", Status.OK, T0)
    base = ["--config", str(conf), "--site", "s1", "--month", "2026-11"]
    out = tmp_path / "out"
    remark = 'sw-core:snmp.reachable=端口已加固 #panic("x")'
    assert main(["report", "review", *base, "--remark", remark]) == 0
    assert "version 1 draft" in capsys.readouterr().out
    # A remark naming nothing in the report is refused, not dropped.
    assert main(["report", "review", *base, "--remark", "nope:x.y=z"]) == 2
    assert main(["report", "review", *base, "--approve", "--reviewer", "王工"]) == 0
    assert "version 1 approved by 王工" in capsys.readouterr().out

    fmt = ["--format", "pdf,json", "--out", str(out)]
    assert main(["report", "monthly", *base, *fmt]) == 0
    capsys.readouterr()
    pdf = out / "monthly-s1-2026-11-zh-CN.pdf"
    first = _text(pdf)
    assert '端口已加固#panic("x")' in first  # remark column, printed literally
    assert "王工" in first and "已审核" in first and "RPT-s1-2026-11-v1" in first
    body = orjson.loads((out / "monthly-s1-2026-11-zh-CN.json").read_bytes())
    assert body["review"]["state"] == "approved" and body["review"]["reviewer"] == "王工"
    # The approval stored the content hash; the JSON carries it, and hashing the JSON's own
    # content (less the version suffix the render adds to the number) gives it again.
    stored = store.report_review("monthly", "s1", "2026-11", "zh-CN")
    assert stored is not None and len(str(stored["content_hash"])) == 64
    assert body["review"]["content_hash"] == stored["content_hash"]
    body["cover"]["report_no"] = body["cover"]["report_no"].removesuffix("-v1")
    assert content_hash(body) == stored["content_hash"]
    # Re-rendering an approved, unchanged report gives the same text (no new version).
    assert main(["report", "monthly", *base, *fmt]) == 0
    assert _text(pdf) == first
    assert store.report_review("monthly", "s1", "2026-11", "zh-CN")["version"] == 1  # type: ignore[index]

    # A late result changes the data: the re-render says so and becomes draft version 2,
    # keeping the engineer's remark.
    _reach(store, "sw-core", Status.CRIT, T0 + timedelta(hours=1))
    assert main(["report", "monthly", *base, *fmt]) == 0
    err = capsys.readouterr().err
    assert "changed since version 1 was approved by 王工" in err and "draft version 2" in err
    second = _text(pdf)
    assert "草稿" in second and "数据在审核后发生变化" in second
    assert "端口已加固" in second and "RPT-s1-2026-11-v2" in second
    latest = store.report_review("monthly", "s1", "2026-11", "zh-CN")
    assert latest is not None and (latest["version"], latest["state"]) == (2, "draft")
    assert main(["report", "review", *base, "--approve", "--reviewer", "李工"]) == 0
    assert "version 2 approved by 李工" in capsys.readouterr().out
    store.close()


def test_quarterly_figures_and_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf, store = _setup(tmp_path)
    assert months_of("2026Q4") == ["2026-10", "2026-11", "2026-12"]
    # sw-core fails twice in November (recurring), acknowledged late once.
    _reach(store, "sw-core", Status.OK, T0)
    _reach(store, "sw-core", Status.CRIT, T0 + timedelta(minutes=5))
    first = store.incidents(site="s1", state="open")[0]["number"]
    store.act(first, "ack", "li", T0 + timedelta(minutes=7))
    _reach(store, "sw-core", Status.OK, T0 + timedelta(minutes=30))
    _reach(store, "sw-core", Status.CRIT, T0 + timedelta(days=2))
    second = store.incidents(site="s1", state="open")[0]["number"]
    store.act(second, "ack", "li", T0 + timedelta(days=2, minutes=20))
    _reach(store, "sw-core", Status.OK, T0 + timedelta(days=2, hours=3))
    cfg = load_collector_config(conf)
    data = build_quarterly(store, cfg, "s1", "2026Q4", "en", now=T0 + timedelta(days=30))
    oct_, nov, dec = data["months"]
    assert (oct_["incidents"], nov["incidents"], dec["incidents"]) == (0, 2, 0)
    # Recompute November's figures from the raw incident rows.
    rows = store.incidents(site="s1", limit=100)
    assert nov["incidents_by_level"] == {
        lv: sum(1 for r in rows if str(r["level"]) == lv) for lv in ("1", "2", "3", "4")
    }
    lv = str(rows[0]["level"])
    sla = nov["sla"][lv]
    assert sla["incidents"] == 2
    assert sla["responded_in_time"] + sla["responded_late"] == 2
    assert oct_["availability"]["rate"] is None  # no data, not 0 %
    # Availability as the monthly report computes it: from the first verdict (T0) to the end of
    # November (local), down 25 minutes and 3 hours.
    avail = nov["availability"]
    observed = (datetime(2026, 12, 1, tzinfo=ZoneInfo("Asia/Shanghai")) - T0).total_seconds()
    down = (25 + 180) * 60
    assert avail["observed_h"] == round(observed / 3600, 1)
    assert avail["rate"] == round((observed - down) / observed, 4)
    assert data["recurring"][0]["device"] == "sw-core" and data["recurring"][0]["times"] == 2
    kinds = {r["kind"] for r in data["recommendations"]}
    assert "recurring" in kinds
    # Below the 99 % target a month gets a recommendation citing its hours.
    low = build_quarterly(store, cfg, "s1", "2026Q4", "en", now=T0 + timedelta(days=3))
    [rec] = [r for r in low["recommendations"] if r["kind"] == "availability"]
    assert rec["evidence"].endswith(" h") and "2026-11" in rec["text"]

    out = tmp_path / "q"
    args = ["--config", str(conf), "--site", "s1", "--quarter", "2026Q4", "--out", str(out)]
    assert main(["report", "quarterly", *args, "--format", "pdf,html,json"]) == 0
    flat = _text(out / "quarterly-s1-2026Q4-zh-CN.pdf")
    pct = f"{round(avail['rate'] * 100, 2):g}%"
    for needle in ("季度维护报告", "2026-11", "sw-core", pct, "无数据", first, "第1页/共"):
        assert needle in flat, needle
    assert main(["report", "quarterly", *args, "--quarter", "2026Q5"]) == 2
    # The fault report command writes files too.
    assert (
        main(
            [
                "report",
                "fault",
                "--config",
                str(conf),
                "--number",
                first,
                "--out",
                str(out),
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert (out / f"fault-{first}-zh-CN.json").is_file()
    capsys.readouterr()
    store.close()
