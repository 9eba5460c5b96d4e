"""Monthly report of a 500-device site: from stored records to finished HTML, PDF and XLSX.

Why: the report is written for whole sites once a month, by hand or by the collector's
schedule, and a large site is where it gets slow or runs out of memory. The site has 20
servers, 30 switches, 400 cameras, 40 NVRs and 10 UPSes, with two months of synthetic stored
data written straight into a temporary SQLite store: every checklist item's inspection record
for October and November (a few serials, firmware versions and locations changed),
reachability transitions with outages, about 60 incidents with SLA clocks, and agent gaps.

What is timed, per format, from stored records to the finished file: ``build_monthly`` (all
queries and figures), the review step, and rendering (for PDF: the charts and Typst). Each
format runs in a fresh child process so that its peak memory is its own; the PDF renderer
typesets in a grandchild (collector/reports/pdf.py), so the PDF's peak is what the Python
process held while waiting for it plus the Typst process's own peak (or the Python process's
own peak, if larger): the most both held at once.

Anchor, measured in the same run: the bare Typst compile of the same document (the same
data.json, template and chart images, ``pdf_tags=False``) — the floor no PDF pipeline built
on Typst can beat. HTML and XLSX are shown against it too, for scale.

Goals (printed beside the figures, not asserted): HTML <= 3 s, PDF <= 10 s with peak memory
<= 1 GiB, XLSX <= 5 s.

Run: ``.venv/bin/python -m bench.report_500 [--quick]`` (quick: one round instead of three).
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench._common import Row, emit, median, parse_args, spread

SITE = "big"
MONTH = "2026-11"
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
#: (class, how many, name prefix)
FLEET = (
    ("linux-server", 20, "srv"),
    ("switch", 30, "sw"),
    ("camera", 400, "cam"),
    ("nvr", 40, "nvr"),
    ("ups", 10, "ups"),
)
GOALS = {"html": 3.0, "pdf": 10.0, "xlsx": 5.0}
MEMORY_GOAL_MB = 1024.0


def _config(db: Path) -> Any:
    from collector.config import load_collector_config

    return load_collector_config(
        None,
        {
            "database": {"url": f"sqlite:///{db}"},
            "sites": [
                {
                    "name": SITE,
                    "customer": "市公安局交通管理支队",
                    "contract": "FM-2026-500",
                    "title": "城区视频监控专网",
                    "maintainer": "Example Integrator",
                }
            ],
        },
    )


def populate(db: Path) -> dict[str, int]:
    """Write the synthetic site into a fresh store; returns row counts."""
    from sqlalchemy import insert

    from checks.catalogue import load_catalogue
    from checks.status import Status
    from collector.store.db import Store
    from collector.store.history import record_locations
    from collector.store.schema import gaps, inspection, target_locations, targets, transitions

    rnd = random.Random(500)
    classes = load_catalogue()
    store = Store(f"sqlite:///{db}", TZ)
    start = {m: datetime.strptime(m, "%Y-%m").replace(tzinfo=TZ) for m in ("2026-10", MONTH)}
    target_rows: list[dict[str, Any]] = []
    insp: list[dict[str, Any]] = []
    trans: list[dict[str, Any]] = []
    devices: list[tuple[str, str]] = []
    for cls, n, prefix in FLEET:
        for i in range(1, n + 1):
            name = f"{prefix}-{i:03d}"
            devices.append((name, cls))
            serial = f"{prefix.upper()}2026{rnd.getrandbits(64):016X}{i:04d}"
            target_rows.append(
                {
                    "site": SITE,
                    "target": name,
                    "agent": f"agent-{i % 8}",
                    "class": cls,
                    "facts": {
                        "serial": serial,
                        "model": f"{prefix.upper()}-MODEL-{i % 5}",
                        "firmware": f"V{1 + i % 3}.{i % 7}.0 build 2026{i % 12 + 1:02d}01",
                        "location": f"{(i % 12) + 1} 号楼 {(i % 5) + 1} 层 弱电间",
                        "address": f"10.{i // 250}.{i % 250}.{len(prefix)}",
                    },
                    "first_seen": start["2026-10"].astimezone(UTC),
                    "last_seen": NOW,
                    "cadence": 60.0,
                    "stale": False,
                }
            )
            dc = classes[cls]
            for month in ("2026-10", MONTH):
                t0 = start[month].astimezone(UTC)
                for ci in dc.items:
                    status = Status.OK if rnd.random() > 0.03 else Status.WARN
                    value: str | None = "ok"
                    if ci.unit == "%":
                        value = f"{rnd.uniform(5, 80):.1f}"
                    elif ci.id == "inventory.entity":
                        value = serial if not (month == MONTH and i % 97 == 0) else serial + "R"
                    elif ci.id == "firmware.version":
                        value = f"V{1 + i % 3}.{i % 7}.{1 if month == MONTH and i % 50 == 0 else 0}"
                    worst = max(status, Status.WARN if rnd.random() < 0.05 else Status.OK)
                    insp.append(
                        {
                            "month": month,
                            "site": SITE,
                            "target": name,
                            "check_key": ci.id,
                            "check": ci.id,
                            "item": "",
                            "status": int(status),
                            "value": value,
                            "unit": ci.unit,
                            "summary": "",
                            "observed_at": t0 + timedelta(days=27, minutes=i),
                            "worst": int(worst),
                            "samples": 2880,
                            "failed_samples": 0 if worst == Status.OK else rnd.randint(1, 40),
                        }
                    )
            reach = "host.reachable" if cls == "linux-server" else "snmp.reachable"
            at = start["2026-10"].astimezone(UTC)
            trans.append(
                {"site": SITE, "target": name, "check_key": reach, "from_status": None,
                 "to_status": int(Status.OK), "at": at}
            )  # fmt: skip
            for _ in range(rnd.randint(0, 3)):
                down = start[MONTH].astimezone(UTC) + timedelta(minutes=rnd.randint(0, 43000))
                back = down + timedelta(minutes=rnd.randint(5, 600))
                trans += [
                    {"site": SITE, "target": name, "check_key": reach,
                     "from_status": int(Status.OK), "to_status": int(Status.CRIT), "at": down},
                    {"site": SITE, "target": name, "check_key": reach,
                     "from_status": int(Status.CRIT), "to_status": int(Status.OK), "at": back},
                ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(insert(targets), target_rows)
        conn.execute(insert(inspection), insp)
        conn.execute(insert(transitions), trans)
        conn.execute(
            insert(gaps),
            [
                {"site": SITE, "agent": f"agent-{k}", "dropped": 40 * k,
                 "first_observed": start[MONTH] + timedelta(days=k),
                 "last_observed": start[MONTH] + timedelta(days=k, hours=2),
                 "recorded_at": start[MONTH] + timedelta(days=k, hours=3), "gap_id": f"g{k}"}
                for k in range(1, 4)
            ],
        )  # fmt: skip
        # Where the devices stood in October; a few were moved in November.
        conn.execute(
            insert(target_locations),
            [
                {"site": SITE, "target": r["target"], "location": r["facts"]["location"] + " 旧",
                 "since": start["2026-10"].astimezone(UTC)}
                for r in target_rows[::40]
            ],
        )  # fmt: skip
    record_locations(store, start[MONTH].astimezone(UTC) + timedelta(days=9))
    # Incidents through the store's own operations, with responses and resolutions.
    n_inc = 0
    for k, (name, _cls) in enumerate(devices[::8]):
        opened = start[MONTH].astimezone(UTC) + timedelta(hours=11 * k + 3)
        number, _ = store.open_manual(
            site=SITE, target=name, level=1 + k % 4, title=f"故障 {k}", description="巡检发现",
            caller={"name": "值班"}, author="desk", now=opened,
        )  # fmt: skip
        store.act(number, "ack", "eng", opened + timedelta(minutes=3 + k % 15))
        if k % 5:
            store.act(number, "resolve", "eng", opened + timedelta(hours=1 + k % 6), text="已处理")
        n_inc += 1
    store.close()
    return {"devices": len(devices), "inspection": len(insp), "transitions": len(trans),
            "incidents": n_inc}  # fmt: skip


def pipeline(db: Path, fmt: str, out: Path) -> float:
    """Stored records → finished file in ``fmt``; seconds."""
    from checks.catalogue import load_catalogue
    from collector.reports.monthly import build_monthly, render
    from collector.reports.review import settle
    from collector.store.db import Store

    cfg = _config(db)
    classes = load_catalogue()
    store = Store(cfg.database.url, TZ)
    started = time.perf_counter()
    data = build_monthly(store, cfg, classes, SITE, MONTH, "zh-CN", now=NOW)
    settle(store, data, "monthly", MONTH, NOW, TZ)
    render(data, [fmt], out)
    took = time.perf_counter() - started
    store.close()
    return took


def bare_typst(db: Path) -> tuple[float, int]:
    """The anchor: Typst compiling the same document (the folder ``render_pdf`` prepares: the
    template, style.json, chart images and data.json) in this process, timed alone."""
    from checks.catalogue import load_catalogue
    from collector.reports.charts import charts
    from collector.reports.monthly import build_monthly
    from collector.reports.pdf import compile_dir, prepare
    from collector.reports.review import settle
    from collector.store.db import Store

    cfg = _config(db)
    store = Store(cfg.database.url, TZ)
    data = build_monthly(store, cfg, load_catalogue(), SITE, MONTH, "zh-CN", now=NOW)
    settle(store, data, "monthly", MONTH, NOW, TZ)
    store.close()
    images = charts(data)
    with tempfile.TemporaryDirectory(prefix="bench-typst-") as tmp:
        main = prepare(data, Path(tmp), images=images)
        started = time.perf_counter()
        pdf = compile_dir(main)
        took = time.perf_counter() - started
    return took, len(pdf)


def _rss_mb() -> float:
    """This process's resident memory now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def child(argv: list[str]) -> int:
    """``--child FMT DB OUT``: one pipeline run in this fresh process, then its time and
    peak memory as JSON. FMT ``typst`` is the anchor: the bare compile, also in a fresh
    process, since the typst package keeps its layout caches for the life of a process (a
    second compile of the same document there takes a fraction of the first)."""
    fmt, db, out = argv[0], Path(argv[1]), Path(argv[2])
    if fmt == "typst":
        took, size = bare_typst(db)
        print(json.dumps({"seconds": took, "pdf_bytes": size}))
        return 0
    took = pipeline(db, fmt, out)
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    typst_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    # While the Typst child ran, this process waited holding what it holds now (typesetting is
    # its last step), so the job's peak is the larger of its own peak and that plus the child's.
    waiting_mb = _rss_mb()
    peak_mb = max(own_mb, waiting_mb + typst_mb)
    print(json.dumps({"seconds": took, "peak_mb": peak_mb, "own_mb": waiting_mb,
                      "typst_mb": typst_mb}))  # fmt: skip
    return 0


def _in_child(fmt: str, db: Path, out: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.report_500", "--child", fmt, str(db), str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        db = root / "collector.db"
        t0 = time.perf_counter()
        counts = populate(db)
        print(f"synthetic site: {counts} in {time.perf_counter() - t0:.1f} s")
        times: dict[str, list[float]] = {"html": [], "pdf": [], "xlsx": []}
        typst_s: list[float] = []
        peak: list[float] = []
        split: list[tuple[float, float]] = []
        size = 0
        for r in range(rounds):
            for fmt in ("html", "pdf", "xlsx"):
                got = _in_child(fmt, db, root / f"out{r}")
                times[fmt].append(got["seconds"])
                if fmt == "pdf":
                    peak.append(got["peak_mb"])
                    split.append((got["own_mb"], got["typst_mb"]))
            anchor_run = _in_child("typst", db, root / f"out{r}")
            typst_s.append(anchor_run["seconds"])
            size = int(anchor_run["pdf_bytes"])
        pdf = root / "out0" / f"monthly-{SITE}-{MONTH}-zh-CN.pdf"
        pages = subprocess.run(
            ["pdfinfo", str(pdf)], capture_output=True, text=True, check=False
        ).stdout
        page_line = next((ln for ln in pages.splitlines() if ln.startswith("Pages:")), "")
        pages = page_line.split()[-1] if page_line else "?"
        print(f"PDF {pdf.stat().st_size / 1e6:.1f} MB, {pages} pages")
    anchor = median(typst_s)
    rows: list[Row] = []
    print(f"bare Typst compile of the same document: {anchor:.2f} s (rounds {spread(typst_s)})")
    for fmt in ("html", "pdf", "xlsx"):
        t = median(times[fmt])
        goal = GOALS[fmt]
        verdict = "within" if t <= goal else "OVER"
        extra = ""
        if fmt == "pdf":
            mem = max(peak)
            own, typ = max(split, key=lambda p: p[0] + p[1])
            extra = (
                f", peak {mem:.0f} MB ({own:.0f} Python waiting + {typ:.0f} Typst child) "
                f"({'within' if mem <= MEMORY_GOAL_MB else 'OVER'} 1 GiB)"
            )
        print(
            f"{fmt.upper():4s} {t:6.2f} s ({verdict} the {goal:g} s goal){extra}; "
            f"ratio to bare Typst {t / anchor:.2f} (rounds {spread(times[fmt])})"
        )
        figures = {"seconds": t, "anchor_seconds": anchor, "pdf_bytes": float(size)}
        if fmt == "pdf":
            figures["peak_mb"] = max(peak)
        rows.append(
            Row(
                benchmark="report_500",
                what=f"monthly report {fmt.upper()}, 500 devices, records to file",
                anchor="bare Typst compile of the same document",
                ratio=round(t / anchor, 2),
                figures=f"{t:.2f} s (goal {goal:g} s); Typst alone {anchor:.2f} s{extra}",
                extra=figures,
                goal=f"≤ {goal:g} s" + (" and ≤ 1 GiB" if fmt == "pdf" else ""),
            )
        )
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
