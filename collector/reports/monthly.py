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
from collector.reports.common import duration, local, render_html
from collector.reports.figures import (
    CAMERA_CLASSES,
    NVR_CLASSES,
    availability,
    incident_sla,
    online_curve,
    recording,
    recording_note,
    sla_compliance,
)
from collector.reports.labels import LABELS
from collector.store.db import Store, utc
from collector.store.history import location_rows, reachability_rows, record_locations

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


def checklist_items(
    dc: DeviceClass | None, records: list[Any], lang: str, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """A device's 巡检记录表 rows for one month: every checklist item of its class, with the
    month's record where there is one and "not inspected" where there is none."""
    items: list[dict[str, Any]] = []
    for ci in dc.items if dc else ():
        base = {
            "check": ci.id,
            "title": ci.title_in(lang),
            "category": ci.category_in(lang),
            "method": ci.method,
            "threshold": ci.threshold.describe() if ci.threshold else "",
        }
        matching = [r for r in records if r["check"] == ci.id]
        if not matching:
            items.append(
                {
                    **base,
                    "item": "",
                    "value": None,
                    "unit": ci.unit,
                    "verdict": None,
                    "worst": None,
                    "summary": "",
                    "checked_at": None,
                }
            )
            continue
        for r in matching:
            items.append(
                {
                    **base,
                    "item": r["item"],
                    "value": r["value"],
                    "unit": r["unit"],
                    "verdict": Status(r["status"]).name,
                    "worst": Status(r["worst"]).name,
                    "summary": r["summary"],
                    "checked_at": local(r["observed_at"], tz),
                    "samples": r["samples"],
                    "failed_samples": r["failed_samples"],
                }
            )
    return items


def identity(facts: Mapping[str, Any]) -> dict[str, str]:
    """The identity block of a device as its agent last reported it."""
    return {
        "model": str(facts.get("model", "")),
        "serial": str(facts.get("serial", "")),
        "firmware": str(facts.get("firmware", "")),
        "location": str(facts.get("location") or facts.get("sys_location", "")),
        "address": str(facts.get("address", "")),
        "description": str(facts.get("sys_descr") or facts.get("os", "")),
        "sys_name": str(facts.get("sys_name") or facts.get("hostname", "")),
    }


def never_reached(records: list[Any]) -> bool:
    """Asked for its reachability all month and never answered: said in words, not as 0 %."""
    reach = [r for r in records if r["check"] in REACHABILITY]
    return bool(reach) and all(int(r["samples"]) == int(r["failed_samples"]) for r in reach)


def device_record(
    target: str,
    trow: Any,
    dc: DeviceClass | None,
    records: list[Any],
    lang: str,
    tz: ZoneInfo,
    period_start: datetime,
) -> dict[str, Any]:
    """One device's entry of the monthly report (also a month of its maintenance file)."""
    cls_name = str(trow["class"]) if trow else "unknown"
    facts: dict[str, Any] = dict(trow["facts"] or {}) if trow else {}
    first = utc(trow["first_seen"]) if trow else None
    return {
        "name": target,
        "class": cls_name,
        "class_title": dc.title_in(lang) if dc else cls_name,
        "identity": identity(facts),
        "agent": trow["agent"] if trow else "",
        "never_reached": never_reached(records),
        # First seen this month: no earlier record to compare with, said in words.
        "new": first is not None and first >= period_start,
        "first_seen": local(first, tz),
        "items": checklist_items(dc, records, lang, tz),
        "inspector": f"fieldmon agent {trow['agent']}" if trow else "fieldmon",
    }


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
    until = min(period.end, max(now, period.start))
    site_cfg = cfg.site(site)
    # Snapshot where devices stand now, so a move not yet seen by housekeeping is counted.
    record_locations(store, now, site)
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
        class_counts[dc.title_in(lang) if dc else cls_name] += 1
        device = device_record(target, trow, dc, by_target[target], lang, tz, period.start)
        for it in device["items"]:
            if it["verdict"]:
                item_counts[it["verdict"]] += 1
                if it["check"] in REACHABILITY and it["verdict"] != "OK":
                    unreachable += 1
        devices.append(device)

    incidents = [
        r
        for r in store.incidents(site=site, limit=100_000)
        if utc(r["opened_at"]) < period.end  # type: ignore[operator]
        and (r["resolved_at"] is None or utc(r["resolved_at"]) >= period.start)  # type: ignore[operator]
    ]
    incidents.sort(key=lambda r: (r["opened_at"], r["id"]))
    by_level = Counter(int(r["level"]) for r in incidents)
    policy = cfg.rules().sla_for(site)
    slas = {int(r["id"]): incident_sla(r, policy, now, tz) for r in incidents}
    # Compliance counts the incidents opened this month; merged ones were folded into a
    # parent's incident and carry no clock of their own.
    opened_here = [
        (r, slas[int(r["id"])])
        for r in incidents
        if utc(r["opened_at"]) >= period.start and r["state"] != "merged"  # type: ignore[operator]
    ]
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
            "responded_at": local(r["responded_at"], tz),
            "sla": slas[int(r["id"])]["verdict"] if r["state"] != "merged" else "",
            "sla_deadlines": slas[int(r["id"])]["deadlines"] if r["state"] != "merged" else [],
        }
        for r in incidents
    ]
    class_of = {d["name"]: str(d["class_title"]) for d in devices}
    reach_rows = reachability_rows(store, site, until, list(class_of))
    cameras = [d["name"] for d in devices if d["class"] in CAMERA_CLASSES]
    online = online_curve(cameras, reach_rows, period.start, until, tz)
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
    changes = build_changes(
        rows,
        prev_rows,
        target_facts,
        month,
        LABELS[lang],
        locations=location_rows(store, site),
        bounds=(period.start, until),
    )
    dangers = build_dangers(rows, prev_rows, tz, LABELS[lang])
    nvrs = [d["name"] for d in devices if d["class"] in NVR_CLASSES]
    rec = recording(rows, nvrs)
    rec["note"] = recording_note(rec, LABELS[lang])
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
            "inspected": sum(1 for d in devices if not d["never_reached"]),
            "unreachable": unreachable,
            "empty": not devices,
            "by_class": dict(sorted(class_counts.items())),
            "items": {s.name: item_counts.get(s.name, 0) for s in Status},
            "incidents_by_level": {str(lv): by_level.get(lv, 0) for lv in (1, 2, 3, 4)},
            "incidents_open": sum(1 for r in incidents if r["state"] == "open"),
            "incidents_resolved": sum(1 for r in incidents if r["state"] == "resolved"),
            "sla_compliance": sla_compliance(opened_here),
            "availability": availability(class_of, reach_rows, period.start, until),
            "camera_online": online,
            "recording": rec,
            "never_reached": [d["name"] for d in devices if d["never_reached"]],
            "measured_until": local(until, tz),
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
            path.write_text(render_html(data, "monthly", template_dir), encoding="utf-8")
        written.append(path)
    return written
