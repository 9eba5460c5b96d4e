"""Recording completeness where NVRs report it, from the real NVR recordings: snmpsim serves
the Hikvision and Dahua NVR recordings of shared/fixtures/snmprec, the agent's discovery and
SNMP probe poll them as it does in the field, and their results go through the collector's
ingest into the monthly report. Neither recording exposes recording status, so the report
must say plainly that none of the site's NVRs reports it — in the JSON, the PDF text
(pdftotext), the HTML and the XLSX — instead of a rate."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from agent.config import SnmpConfig
from agent.discover import discover
from agent.evaluate import to_results
from agent.probes.snmp import SnmpProbe
from checks.catalogue import load_catalogue
from checks.result import Result
from collector.config import load_collector_config
from collector.incidents.engine import Policy
from collector.reports.monthly import build_monthly, render
from collector.store.db import Store
from tests.support.snmpsim import HOST, SnmpSim, recordings_dir

CATALOGUE = load_catalogue()
NVRS = ("hikvision-nvr", "dahua-nvr")
#: The serials the two recordings carry (shared/fixtures/snmprec/SOURCES.md).
SERIALS = {"hikvision-nvr": "0820160719AARR624053979WCVU", "dahua-nvr": "2M00D2APAZTL62J"}


async def _poll(sim: SnmpSim, community: str) -> tuple[str, list[Result]]:
    """Discover the recording's class, then one full SNMP poll of that class's items."""
    config = SnmpConfig.from_dict({"port": sim.port, "community": community, "timeout": 1.0})
    found = await discover(HOST, config, trial=False)
    dc = CATALOGUE[found.device_class]
    target = sim.target(community, device_class=found.device_class)
    probe = SnmpProbe({})
    try:
        obs = await probe.collect(target, {it.id for it in dc.items if it.method == "snmp"})
    finally:
        await probe.close()
    return found.device_class, to_results(target, dc, obs)


def test_nvr_recordings_do_not_report_recording_completeness(tmp_path: Path) -> None:
    sim = SnmpSim([recordings_dir() / f"{n}.snmprec" for n in NVRS])
    with sim:

        async def run() -> dict[str, tuple[str, list[Result]]]:
            return {n: await _poll(sim, n) for n in NVRS}

        polled = asyncio.run(run())
    assert {cls for cls, _ in polled.values()} == {"nvr"}, polled

    cfg = load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
            "sites": [{"name": "s1", "title": "录像机机房"}],
        },
    )
    store = Store(cfg.database.url, ZoneInfo("Asia/Shanghai"))
    at = datetime(2026, 11, 12, 3, 0, tzinfo=UTC)
    for _, results in polled.values():
        # The poll's results, stamped inside November: what the agent would have sent then.
        moved = [replace(r, observed_at=at) for r in results]
        store.ingest("s1", "a1", moved, CATALOGUE, Policy(), at)
    data = build_monthly(store, cfg, CATALOGUE, "s1", "2026-11", "zh-CN", now=at + timedelta(1))
    store.close()

    rec = data["summary"]["recording"]
    assert rec["rate"] is None and rec["nvrs"] == []
    assert (rec["nvr_count"], rec["reporting"]) == (2, 0)
    assert "2 台录像机均未上报录像完整率" in rec["note"]
    serials = {d["name"]: d["identity"]["serial"] for d in data["devices"]}
    assert serials == SERIALS

    pdf, page, xlsx = render(data, ["pdf", "html", "xlsx"], tmp_path / "out")
    done = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True)
    flat = "".join(done.stdout.split())
    assert "".join(rec["note"].split()) in flat
    assert all(s in flat for s in SERIALS.values())
    assert "录像完整率:0" not in flat and "录像完整率:100" not in flat
    assert rec["note"] in page.read_text(encoding="utf-8")
    wb = load_workbook(xlsx, read_only=True)
    rows = {r[0]: r[1] for r in wb.worksheets[0].iter_rows(min_row=2, values_only=True)}
    wb.close()
    assert rows["录像完整率 (%)"] == rec["note"]


@pytest.mark.parametrize(("nvrs", "reporting", "needle"), [(0, 0, "没有录像机"), (3, 1, "1/3")])
def test_recording_note_wording(nvrs: int, reporting: int, needle: str) -> None:
    from collector.reports.figures import recording_note
    from collector.reports.labels import LABELS

    note = recording_note({"nvr_count": nvrs, "reporting": reporting}, LABELS["zh-CN"])
    assert needle in note
    assert recording_note({"nvr_count": 2, "reporting": 2}, LABELS["en"]) == ""
