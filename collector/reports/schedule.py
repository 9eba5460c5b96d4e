"""Report drafts the running collector writes by itself, from its hourly housekeeping pass:
the previous month's inspection report from ``[reports] monthly_day`` on, the previous
quarter's report from ``quarterly_day`` of the quarter's next month (before the 10th, when
customers expect it).

A draft is written once per period and language (its files existing is the mark); writing it
again later, by hand or by the schedule, goes through the same review step, so the remarks
engineers added are kept and an approved report prints as approved — identical text — until
its data changes. The same pass snapshots device locations for the location history."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from checks.catalogue import DeviceClass
from collector.config import CollectorConfig, ReportsConfig
from collector.reports.changes import previous_month
from collector.store.db import Store
from collector.store.history import record_locations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    kind: str  # "monthly" | "quarterly"
    site: str
    period: str  # YYYY-MM | YYYYQn
    lang: str

    def stem(self) -> str:
        return f"{self.kind}-{self.site}-{self.period}-{self.lang}"


def due_reports(cfg: CollectorConfig, rc: ReportsConfig, now: datetime) -> list[Due]:
    """The reports whose drafting day has come, at ``now`` on the contract's clock."""
    today = now.astimezone(cfg.tz)
    sites = rc.sites if rc.sites is not None else [s.name for s in cfg.sites]
    periods: list[tuple[str, str]] = []
    if today.day >= rc.monthly_day:
        periods.append(("monthly", previous_month(f"{today:%Y-%m}")))
    if today.month in (1, 4, 7, 10) and today.day >= rc.quarterly_day:
        year, q = (today.year - 1, 4) if today.month == 1 else (today.year, (today.month - 1) // 3)
        periods.append(("quarterly", f"{year}Q{q}"))
    return [Due(k, s, p, lang) for k, p in periods for s in sites for lang in rc.langs]


def write_draft(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    due: Due,
    out_dir: Path,
    formats: list[str],
    now: datetime,
) -> list[Path]:
    """Build and write one report as the command line would, review state included."""
    if due.kind == "monthly":
        from collector.reports.monthly import build_monthly, render
        from collector.reports.review import settle

        data = build_monthly(store, cfg, classes, due.site, due.period, due.lang, now)
        settle(store, data, "monthly", due.period, now, cfg.tz, warn=log.warning)
        return render(data, formats, out_dir)
    from collector.reports.quarterly import build_quarterly, render_quarterly

    qdata = build_quarterly(store, cfg, due.site, due.period, due.lang, now)
    return render_quarterly(qdata, [f for f in formats if f != "xlsx"], out_dir)


def run_schedule(
    store: Store, cfg: CollectorConfig, classes: Mapping[str, DeviceClass], now: datetime
) -> list[Path]:
    """One housekeeping pass: record moved devices, then write the drafts that are due and
    not yet written. A report that fails is logged and tried again on the next pass; the
    others are still written."""
    record_locations(store, now)
    rc = cfg.reports
    if rc is None:
        return []
    out_dir = rc.out_dir
    written: list[Path] = []
    for due in due_reports(cfg, rc, now):
        formats: list[str] = list(rc.formats)
        first = (
            formats[0]
            if due.kind == "monthly"
            else next((f for f in formats if f != "xlsx"), "json")
        )
        if (out_dir / f"{due.stem()}.{first}").exists():
            continue
        try:
            paths = write_draft(store, cfg, classes, due, out_dir, formats, now)
        except Exception:
            log.exception("drafting the %s report %s %s failed", due.kind, due.site, due.period)
            continue
        log.info("drafted the %s report %s %s (%s)", due.kind, due.site, due.period, due.lang)
        written += paths
    return written
