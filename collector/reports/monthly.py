"""The monthly inspection report: data first (a plain dict, also the JSON output), then
renderers. Built from the month's inspection records, the targets' identity facts and the
month's incidents."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from checks.catalogue import CATEGORIES, DeviceClass
from checks.status import Status
from collector.config import CollectorConfig
from collector.reports.changes import build_changes, build_dangers, previous_month
from collector.reports.common import duration, html_env, local
from collector.reports.labels import LABELS
from collector.store.db import Store, utc

FORMATS = ("html", "json", "pdf", "xlsx")
REACHABILITY = ("snmp.reachable", "host.reachable")


class ReportError(ValueError):
    """A report that cannot be built as asked (bad month, unknown format)."""


@dataclass(frozen=True)
class Period:
    month: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, month: str, tz: ZoneInfo) -> Period:
        try:
            first = datetime.strptime(month, "%Y-%m").replace(tzinfo=tz)
        except ValueError:
            raise ReportError(f"month {month!r} is not YYYY-MM") from None
        nxt = (first + timedelta(days=32)).replace(day=1)
        return cls(month, first.astimezone(UTC), nxt.astimezone(UTC))


def build_monthly(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    site: str,
    month: str,
    lang: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    if lang not in LABELS:
        raise ReportError(f"language {lang!r} is not one of {', '.join(LABELS)}")
    tz = cfg.tz
    period = Period.parse(month, tz)
    now = now or datetime.now(UTC)
    site_cfg = cfg.site(site)
    rows = store.inspection_rows(site, month)
    facts_by_target = {t["target"]: t for t in store.target_rows(site)}
    by_target: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_target[r["target"]].append(r)

    devices: list[dict[str, Any]] = []
    item_counts: Counter[str] = Counter()
    class_counts: Counter[str] = Counter()
    unreachable = 0
    for target in sorted(by_target):
        trow = facts_by_target.get(target)
        cls_name = str(trow["class"]) if trow else "unknown"
        dc = classes.get(cls_name)
        facts: dict[str, str] = dict(trow["facts"]) if trow else {}
        class_counts[dc.title_in(lang) if dc else cls_name] += 1
        records = by_target[target]
        items: list[dict[str, Any]] = []
        for ci in dc.items if dc else ():
            matching = [r for r in records if r["check"] == ci.id]
            if not matching:
                items.append(
                    {
                        "check": ci.id,
                        "item": "",
                        "title": ci.title_in(lang),
                        "category": ci.category_in(lang),
                        "method": ci.method,
                        "value": None,
                        "unit": ci.unit,
                        "threshold": ci.threshold.describe() if ci.threshold else "",
                        "verdict": None,
                        "worst": None,
                        "summary": "",
                        "checked_at": None,
                    }
                )
                continue
            for r in matching:
                verdict = Status(r["status"]).name
                item_counts[verdict] += 1
                if ci.id in REACHABILITY and verdict != "OK":
                    unreachable += 1
                items.append(
                    {
                        "check": ci.id,
                        "item": r["item"],
                        "title": ci.title_in(lang),
                        "category": ci.category_in(lang),
                        "method": ci.method,
                        "value": r["value"],
                        "unit": r["unit"],
                        "threshold": ci.threshold.describe() if ci.threshold else "",
                        "verdict": verdict,
                        "worst": Status(r["worst"]).name,
                        "summary": r["summary"],
                        "checked_at": local(r["observed_at"], tz),
                        "samples": r["samples"],
                        "failed_samples": r["failed_samples"],
                    }
                )
        devices.append(
            {
                "name": target,
                "class": cls_name,
                "class_title": dc.title_in(lang) if dc else cls_name,
                "identity": {
                    "model": facts.get("model", ""),
                    "serial": facts.get("serial", ""),
                    "firmware": facts.get("firmware", ""),
                    "location": facts.get("location") or facts.get("sys_location", ""),
                    "address": facts.get("address", ""),
                    "description": facts.get("sys_descr") or facts.get("os", ""),
                    "sys_name": facts.get("sys_name") or facts.get("hostname", ""),
                },
                "agent": trow["agent"] if trow else "",
                "items": items,
                "inspector": f"fieldmon agent {trow['agent']}" if trow else "fieldmon",
            }
        )

    incidents = [
        r
        for r in store.incidents(site=site, limit=100_000)
        if utc(r["opened_at"]) < period.end  # type: ignore[operator]
        and (r["resolved_at"] is None or utc(r["resolved_at"]) >= period.start)  # type: ignore[operator]
    ]
    incidents.sort(key=lambda r: (r["opened_at"], r["id"]))
    by_level = Counter(int(r["level"]) for r in incidents)
    inc_list = [
        {
            "number": r["number"],
            "level": r["level"],
            "device": r["target"],
            "title": r["title"],
            "summary": r["summary"],
            "state": r["state"],
            "opened_at": local(r["opened_at"], tz),
            "resolved_at": local(r["resolved_at"], tz),
            "duration": duration(utc(r["opened_at"]), utc(r["resolved_at"])),
        }
        for r in incidents
    ]
    gap_list = [
        {
            "dropped": g["dropped"],
            "first": local(g["first_observed"], tz),
            "last": local(g["last_observed"], tz),
        }
        for g in store.gap_rows(site, period.start, period.end)
    ]
    prev_rows = store.inspection_rows(site, previous_month(month))
    target_facts = {name: dict(t["facts"] or {}) for name, t in facts_by_target.items()}
    changes = build_changes(rows, prev_rows, target_facts, month, LABELS[lang])
    dangers = build_dangers(rows, prev_rows, tz, LABELS[lang])
    return {
        "kind": "monthly-inspection",
        "lang": lang,
        "labels": LABELS[lang],
        "cover": {
            "site": site,
            "customer": site_cfg.customer,
            "contract": site_cfg.contract,
            "title": site_cfg.title or site,
            "maintainer": site_cfg.maintainer,
            "period": month,
            "report_no": f"RPT-{site}-{month}",
            "generated": local(now, tz),
            "timezone": cfg.timezone,
        },
        "summary": {
            "devices": len(devices),
            "inspected": len(devices),
            "unreachable": unreachable,
            "by_class": dict(sorted(class_counts.items())),
            "items": {s.name: item_counts.get(s.name, 0) for s in Status},
            "incidents_by_level": {str(lv): by_level.get(lv, 0) for lv in (1, 2, 3, 4)},
            "incidents_open": sum(1 for r in incidents if r["state"] == "open"),
            "incidents_resolved": sum(1 for r in incidents if r["state"] == "resolved"),
        },
        "categories": {k: v[lang] for k, v in CATEGORIES.items()},
        "devices": devices,
        "changes": changes,
        "dangers": dangers,
        "incidents": inc_list,
        "gaps": gap_list,
    }


def render(
    data: dict[str, Any],
    formats: list[str],
    out_dir: Path,
    *,
    template_dir: Path | None = None,
    pdf_tags: bool = False,
) -> list[Path]:
    """Write ``data`` in each of ``formats``. The PDF and XLSX writers are imported only when
    asked for, so HTML/JSON keep working on an install without Typst or openpyxl."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ReportError(f"format(s) {', '.join(bad)} not supported (use {', '.join(FORMATS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"monthly-{data['cover']['site']}-{data['cover']['period']}-{data['lang']}"
    written: list[Path] = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "json":
            body = {k: v for k, v in data.items() if k != "labels"}
            path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        elif fmt == "pdf":
            from collector.reports.pdf import PdfError, render_pdf

            try:
                render_pdf(data, path, template_dir=template_dir, tagged=pdf_tags)
            except PdfError as exc:
                raise ReportError(str(exc)) from exc
        elif fmt == "xlsx":
            from collector.reports.xlsx import render_xlsx

            render_xlsx(data, path)
        else:
            html = html_env().get_template("monthly.html.j2").render(r=data, L=data["labels"])
            path.write_text(html, encoding="utf-8")
        written.append(path)
    return written
