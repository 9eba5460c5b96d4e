"""The per-device maintenance file (设备维护档案) through ``fieldmon report device``: identity
with location history, the 巡检记录表 month by month, incidents with SLA verdicts, read back
from the PDF with pdftotext and page 1 rendered with pdftoppm; and the plain statements for a
device never reached and a range without records."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from collector.reports.device import DeviceReportError, build_device, months_between
from collector.store.db import Store
from fieldmon.cli import main
from tests.test_report_figures import CLASSES, NOW, SERIAL_CAM, SERIAL_SW, TZ, fill, make_cfg


def _setup(tmp: Path) -> tuple[Path, Store, dict[str, str]]:
    db = tmp / "collector.db"
    conf = tmp / "collector.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n[[sites]]\nname = "s2"\n'
        'customer = "西城区交通支队"\ntitle = "西门视频监控"\ncontract = "FM-2026-017"\n',
        encoding="utf-8",
    )
    store = Store(f"sqlite:///{db}", TZ)
    numbers = fill(store)
    return conf, store, numbers


def _text(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def test_months_between() -> None:
    assert months_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    for bad in (("2026-13", "2027-01"), ("2026-1", "2026-02"), ("nov", "dec")):
        with pytest.raises(DeviceReportError, match="YYYY-MM"):
            months_between(*bad)
    with pytest.raises(DeviceReportError, match="after"):
        months_between("2026-12", "2026-11")


def test_device_file_cli_pdf_html_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf, store, numbers = _setup(tmp_path)
    out = tmp_path / "out"
    base = ["--config", str(conf), "--site", "s2", "--out", str(out)]
    rc = main(
        [
            "report", "device", *base, "--target", "sw-01", "--from", "2026-10", "--to",
            "2026-11", "--format", "pdf,html,json",
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    paths = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.suffix for p in paths] == [".pdf", ".html", ".json"]
    assert paths[0].name == "device-s2-sw-01-2026-10-2026-11-zh-CN.pdf"
    text = _text(paths[0])
    flat = "".join(text.split())
    assert "设备维护档案" in flat and SERIAL_SW in flat
    # Both months' forms, the location history with the move, the manual incident.
    assert "巡检记录表·2026-10" in flat and "巡检记录表·2026-11" in flat
    assert "机房A3号柜" in flat and "机房B1号柜" in flat
    assert numbers["manual"] in flat and "超时" in flat
    body = orjson.loads(paths[2].read_bytes())
    assert [m["month"] for m in body["months"]] == ["2026-10", "2026-11"]
    assert [loc["location"] for loc in body["locations"]] == ["机房 A 3 号柜", "机房 B 1 号柜"]
    assert body["incidents"][0]["number"] == numbers["manual"]
    assert body["incidents"][0]["sla"] == "missed"
    html = paths[1].read_text(encoding="utf-8")
    assert numbers["manual"] in html and "机房 B 1 号柜" in html

    # A camera: page 1 rendered to look at the layout and the Chinese text.
    rc = main(
        ["report", "device", *base, "--target", "cam-01", "--to", "2026-11", "--format", "pdf"]
    )
    assert rc == 0
    pdf = Path(capsys.readouterr().out.strip())
    text = "".join(_text(pdf).split())
    assert SERIAL_CAM in text and numbers["auto"] in text and "西门1号杆" in text
    assert shutil.which("pdftoppm")
    subprocess.run(
        ["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p1")],
        check=True,
    )
    png = tmp_path / "p1-1.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    store.close()


def test_device_never_reached_and_empty_range(tmp_path: Path) -> None:
    _, store, _ = _setup(tmp_path)
    cfg = make_cfg(tmp_path / "collector.db")
    data = build_device(store, cfg, CLASSES, "s2", "cam-dead", "en", "2026-11", "2026-11", NOW)
    assert data["never_reached"] is True and data["has_data"] is True
    empty = build_device(store, cfg, CLASSES, "s2", "cam-02", "en", "2026-08", "2026-09", NOW)
    assert empty["has_data"] is False
    assert all(m["empty"] for m in empty["months"])
    from collector.reports.device import render_device

    paths = render_device(empty, ["pdf"], tmp_path / "o")
    text = " ".join(_text(paths[0]).split())
    assert "This device has no records in this period." in text
    assert "No inspection data this month." in text
    paths = render_device(data, ["pdf"], tmp_path / "o")
    assert "could not be reached at any time" in " ".join(_text(paths[0]).split())
    store.close()


def test_unknown_device_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf, store, _ = _setup(tmp_path)
    store.close()
    rc = main(
        ["report", "device", "--config", str(conf), "--site", "s2", "--target", "cam-99",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "no device 'cam-99' at site 's2'" in err and "cam-01" in err
    rc = main(
        ["report", "device", "--config", str(conf), "--site", "s2", "--target", "cam-01",
         "--from", "2026-12", "--to", "2026-11", "--out", str(tmp_path)]
    )  # fmt: skip
    assert rc == 2 and "after" in capsys.readouterr().err
