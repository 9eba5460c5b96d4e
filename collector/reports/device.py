"""The per-device maintenance file (设备维护档案): one device's identity and location history,
its 巡检记录表 month by month, its incidents with their SLA verdicts and its configuration
changes, over a range of months.

Built from the same stored records and with the same row builder as the monthly report, so a
month of the file shows exactly what that month's report shows for the device."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checks.catalogue import DeviceClass
from collector.config import CollectorConfig
from collector.reports.changes import CONFIG_CHECK
from collector.reports.common import duration, local, render_report
from collector.reports.figures import incident_sla
from collector.reports.labels import LABELS
from collector.reports.monthly import Period, ReportError, device_record, identity
from collector.store.db import Store
from collector.store.history import location_rows, record_locations
from collector.store.times import utc

#: A file longer than this is a mistake in --from/--to rather than a wish.
MAX_MONTHS = 60


class DeviceReportError(ReportError):
    """No such device, or a month range that cannot be read."""


def months_between(first: str, last: str) -> list[str]:
    """Every YYYY-MM from ``first`` to ``last`` inclusive."""
    out: list[str] = []
    try:
        y, m = (int(p) for p in first.split("-"))
        ly, lm = (int(p) for p in last.split("-"))
    except ValueError:
        raise DeviceReportError(f"months {first!r}..{last!r} are not YYYY-MM") from None
    for month, label in ((m, first), (lm, last)):
        if not 1 <= month <= 12 or len(label) != 7:
            raise DeviceReportError(f"month {label!r} is not YYYY-MM")
    if (y, m) > (ly, lm):
        raise DeviceReportError(f"--from {first} is after --to {last}")
    while (y, m) <= (ly, lm):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if len(out) > MAX_MONTHS:
            raise DeviceReportError(f"{first}..{last} spans more than {MAX_MONTHS} months")
    return out


def build_device(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    site: str,
    target: str,
    lang: str,
    first: str | None = None,
    last: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The file's data. ``first``/``last`` default to the month the device was first seen and
    the current month."""
    if lang not in LABELS:
        raise DeviceReportError(f"language {lang!r} is not one of {', '.join(LABELS)}")
    tz = cfg.tz
    now = now or datetime.now(UTC)
    trow = store.target_row(site, target)
    if trow is None:
        known = [str(t["target"]) for t in store.target_rows(site)]
        more = " …" if len(known) > 10 else ""
        hint = f" (known: {', '.join(known[:10])}{more})" if known else ""
        raise DeviceReportError(f"no device {target!r} at site {site!r}{hint}")
    first_seen = utc(trow["first_seen"])
    assert first_seen is not None
    first = first or f"{first_seen.astimezone(tz):%Y-%m}"
    last = last or f"{now.astimezone(tz):%Y-%m}"
    months = months_between(first, last)
    start = Period.parse(months[0], tz).start
    end = Period.parse(months[-1], tz).end
    L = LABELS[lang]
    cls_name = str(trow["class"])
    dc = classes.get(cls_name)
    record_locations(store, now, site)

    month_list: list[dict[str, Any]] = []
    config_changes: list[dict[str, Any]] = []
    for month in months:
        records = store.device_inspection_rows(site, target, month)
        if not records:
            month_list.append({"month": month, "empty": True, "counts": {}, "items": []})
            continue
        entry = device_record(target, trow, dc, records, lang, tz, Period.parse(month, tz).start)
        counts = Counter(it["verdict"] for it in entry["items"] if it["verdict"])
        month_list.append(
            {
                "month": month,
                "empty": False,
                "never_reached": entry["never_reached"],
                "counts": {k: counts.get(k, 0) for k in ("OK", "WARN", "CRIT", "UNKNOWN")},
                "items": entry["items"],
                "inspector": entry["inspector"],
            }
        )
        for r in records:
            if r["check"] == CONFIG_CHECK and int(r["worst"]) >= 1:
                config_changes.append(
                    {
                        "month": month,
                        "at": local(r["observed_at"], tz),
                        "summary": str(r["summary"] or r["value"] or ""),
                        "checks": int(r["samples"]),
                        "changed": int(r["failed_samples"]),
                    }
                )

    policy = cfg.rules().sla_for(site)
    incidents = [
        r
        for r in store.incidents(site=site, target=target, limit=100_000)
        if utc(r["opened_at"]) < end  # type: ignore[operator]
        and (r["resolved_at"] is None or utc(r["resolved_at"]) >= start)  # type: ignore[operator]
    ]
    incidents.sort(key=lambda r: (r["opened_at"], r["id"]))
    inc_list = []
    for r in incidents:
        sla = incident_sla(r, policy, now, tz) if r["state"] != "merged" else None
        inc_list.append(
            {
                "number": str(r["number"]),
                "level": int(r["level"]),
                "title": str(r["title"]),
                "summary": str(r["summary"]),
                "state": str(r["state"]),
                "opened_at": local(r["opened_at"], tz),
                "resolved_at": local(r["resolved_at"], tz),
                "duration": duration(utc(r["opened_at"]), utc(r["resolved_at"])),
                "sla": sla["verdict"] if sla else "",
                "sla_deadlines": sla["deadlines"] if sla else [],
            }
        )
    facts: dict[str, Any] = dict(trow["facts"] or {})
    site_cfg = cfg.site(site)
    period = months[0] if len(months) == 1 else f"{months[0]} – {months[-1]}"
    has_data = any(not m["empty"] for m in month_list)
    return {
        "kind": "device-file",
        "lang": lang,
        "labels": L,
        "cover": {
            "site": site,
            "customer": site_cfg.customer,
            "contract": site_cfg.contract,
            "title": site_cfg.title or site,
            "maintainer": site_cfg.maintainer,
            "period": period,
            "report_no": f"DEV-{site}-{target}-{months[0]}-{months[-1]}",
            "generated": local(now, tz),
            "timezone": cfg.timezone,
        },
        "device": {
            "name": target,
            "class": cls_name,
            "class_title": dc.title_in(lang) if dc else cls_name,
            "agent": str(trow["agent"]),
            "first_seen": local(first_seen, tz),
            "last_seen": local(trow["last_seen"], tz),
            "identity": identity(facts),
        },
        "range": {"from": months[0], "to": months[-1]},
        "has_data": has_data,
        "new": first_seen >= start,
        "never_reached": has_data
        and all(m.get("never_reached", False) for m in month_list if not m["empty"]),
        "locations": [
            {"location": str(r["location"]), "since": local(r["since"], tz)}
            for r in location_rows(store, site, target)
        ],
        "months": month_list,
        "incidents": inc_list,
        "config_changes": config_changes,
        "config_diff": str(facts.get("diff", "")),
    }


def render_device(
    data: dict[str, Any], formats: list[str], out_dir: Path, template_dir: Path | None = None
) -> list[Path]:
    d, c, span = data["device"], data["cover"], data["range"]
    stem = f"device-{c['site']}-{d['name']}-{span['from']}-{span['to']}-{data['lang']}"
    return render_report(
        data, formats, out_dir, kind="device", stem=stem, template_dir=template_dir
    )
