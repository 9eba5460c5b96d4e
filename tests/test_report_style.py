"""Restyling without code changes: a folder holding only style.json and a logo, passed as
``--template-dir``, puts the company's name, logo and colours on every report kind — PDF
(pdftotext, pdfimages) and HTML — while the packaged templates do the rest."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import orjson
import pytest

from collector.reports.device import build_device, render_device
from collector.reports.fault import build_fault, render_fault
from collector.reports.monthly import build_monthly, render
from collector.reports.quarterly import build_quarterly, render_quarterly
from collector.store.db import Store
from fieldmon.cli import main
from tests.test_report_figures import CLASSES, NOW, TZ, fill, make_cfg

COMPANY = "示例智能科技维保有限公司"
ACCENT = "#8a1538"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain one-colour PNG, written by hand so the test needs no imaging library."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture()
def style_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "brand"
    folder.mkdir()
    (folder / "logo.png").write_bytes(_png(120, 40, (138, 21, 56)))
    (folder / "style.json").write_bytes(
        orjson.dumps({"company": COMPANY, "logo": "logo.png", "accent": ACCENT})
    )
    return folder


def _page1(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        check=True,
        text=True,
    )
    return "".join(done.stdout.split())


def _logo_on_page1(pdf: Path) -> bool:
    rows = subprocess.run(
        ["pdfimages", "-f", "1", "-l", "1", "-list", str(pdf)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.splitlines()[2:]
    return any(r.split()[3:5] == ["120", "40"] for r in rows)


def test_every_kind_takes_the_company_style(tmp_path: Path, style_dir: Path) -> None:
    cfg = make_cfg(tmp_path / "collector.db")
    store = Store(cfg.database.url, TZ)
    numbers = fill(store)
    out = tmp_path / "out"
    written = [
        *render(
            build_monthly(store, cfg, CLASSES, "s2", "2026-11", "zh-CN", now=NOW),
            ["pdf", "html"],
            out,
            template_dir=style_dir,
        ),
        *render_quarterly(
            build_quarterly(store, cfg, "s2", "2026Q4", "zh-CN", now=NOW),
            ["pdf", "html"],
            out,
            style_dir,
        ),
        *render_fault(
            build_fault(store, cfg, numbers["manual"], "zh-CN", now=NOW),
            ["pdf", "html"],
            out,
            style_dir,
        ),
        *render_device(
            build_device(store, cfg, CLASSES, "s2", "sw-01", "zh-CN", "2026-11", "2026-11", NOW),
            ["pdf", "html"],
            out,
            style_dir,
        ),
    ]
    store.close()
    pdfs = [p for p in written if p.suffix == ".pdf"]
    pages = [p for p in written if p.suffix == ".html"]
    assert len(pdfs) == len(pages) == 4
    for pdf in pdfs:
        assert COMPANY in _page1(pdf), pdf.name
        assert _logo_on_page1(pdf), pdf.name
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert COMPANY in text and "data:image/png;base64," in text, page.name
        assert ACCENT in text, page.name


def test_cli_template_dir_and_default_look(
    tmp_path: Path, style_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line; and without a folder the packaged style prints no company
    line and no logo."""
    db = tmp_path / "collector.db"
    conf = tmp_path / "collector.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n[[sites]]\nname = "s2"\ntitle = "西门视频监控"\n',
        encoding="utf-8",
    )
    store = Store(f"sqlite:///{db}", TZ)
    fill(store)
    store.close()
    base = ["report", "monthly", "--config", str(conf), "--site", "s2", "--month", "2026-11"]
    styled, plain = tmp_path / "styled", tmp_path / "plain"
    assert (
        main([*base, "--format", "pdf", "--out", str(styled), "--template-dir", str(style_dir)])
        == 0
    )
    assert main([*base, "--format", "pdf", "--out", str(plain)]) == 0
    capsys.readouterr()
    name = "monthly-s2-2026-11-zh-CN.pdf"
    assert COMPANY in _page1(styled / name) and _logo_on_page1(styled / name)
    assert COMPANY not in _page1(plain / name) and not _logo_on_page1(plain / name)
