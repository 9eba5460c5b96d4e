"""The fault analysis report (故障分析说明) of one incident, due within 3 days of resolution.

It joins what the system recorded (identity, caller, the hash-chained timeline, SLA clocks,
the devices behind the outage) with what the engineer filed (symptoms, handling, result,
prevention). A field the engineer has not filed is marked missing rather than left blank, so
a draft cannot be mistaken for a complete report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.config import CollectorConfig
from collector.reports.common import local, render_report, sla_figures
from collector.reports.labels import LABELS
from collector.store.db import Store
from collector.store.times import utc

ANALYSIS_FIELDS = ("symptoms", "handling", "result", "prevention")


class FaultReportError(ValueError):
    """No such incident, or a language the labels do not cover."""


def build_fault(
    store: Store,
    cfg: CollectorConfig,
    number: str,
    lang: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report data for incident ``number``; ``now`` decides pending vs missed deadlines."""
    if lang not in LABELS:
        raise FaultReportError(f"language {lang!r} is not one of {', '.join(LABELS)}")
    found = store.incident(number)
    if found is None:
        raise FaultReportError(f"no incident {number}")
    row, events = found
    now = now or datetime.now(UTC)
    tz = cfg.tz
    site = str(row["site"])
    site_cfg = cfg.site(site)
    policy = cfg.rules().sla_for(site)
    filed: dict[str, Any] = dict(row["analysis"] or {})
    analysis = {
        f: {"text": str(filed.get(f, "")), "missing": not str(filed.get(f, "")).strip()}
        for f in ANALYSIS_FIELDS
    }
    due = utc(row["analysis_due"])
    sla = sla_figures(row, policy, now, tz)
    return {
        "kind": "fault-analysis",
        "lang": lang,
        "labels": LABELS[lang],
        "cover": {
            "site": site,
            "customer": site_cfg.customer,
            "contract": site_cfg.contract,
            "title": site_cfg.title or site,
            "maintainer": site_cfg.maintainer,
            "report_no": f"FAR-{number}",
            "generated": local(now, tz),
            "timezone": cfg.timezone,
        },
        "incident": {
            "number": str(row["number"]),
            "level": int(row["level"]),
            "state": str(row["state"]),
            "source": str(row["source"]),
            "device": str(row["target"]),
            "device_class": str(row["device_class"]),
            "vendor": str(row["vendor"]),
            "check": str(row["check"]),
            "item": str(row["item"]),
            "title": str(row["title"]),
            "summary": str(row["summary"]),
            "tier": int(row["tier"]),
            "assignee": str(row["assignee"]),
            "occurrences": int(row["occurrences"]),
            "opened_at": local(row["opened_at"], tz),
            "responded_at": local(row["responded_at"], tz),
            "onsite_at": local(row["onsite_at"], tz),
            "restored_at": local(row["restored_at"], tz),
            "resolved_at": local(row["resolved_at"], tz),
            "closed_at": local(row["closed_at"], tz),
            "satisfaction": row["satisfaction"],
        },
        "caller": {k: str(v) for k, v in sorted(dict(row["caller"] or {}).items())},
        "sla": sla,
        "sla_met": sum(1 for s in sla if s["verdict"] == "met"),
        "sla_missed": sum(1 for s in sla if s["verdict"] == "missed"),
        "impacts": [
            {
                "device": str(i["target"]),
                "check": str(i["check_key"]),
                "first_at": local(i["first_at"], tz),
                "cleared_at": local(i["cleared_at"], tz),
            }
            for i in store.impacts(int(row["id"]))
        ],
        "timeline": [
            {
                "at": local(e["at"], tz),
                "kind": str(e["kind"]),
                "author": str(e["author"]),
                "text": str(e["text"]),
                "hash": str(e["hash"]),
            }
            for e in events
        ],
        "timeline_intact": store.verify_timeline(int(row["id"])),
        "analysis": analysis,
        "analysis_complete": not any(a["missing"] for a in analysis.values()),
        "analysis_author": str(filed.get("author", "")),
        "analysis_due": local(due, tz),
        "analysis_overdue": bool(
            due is not None and now > due and any(a["missing"] for a in analysis.values())
        ),
    }


def render_fault(
    data: dict[str, Any], formats: list[str], out_dir: Path, template_dir: Path | None = None
) -> list[Path]:
    stem = f"fault-{data['incident']['number']}-{data['lang']}"
    return render_report(data, formats, out_dir, kind="fault", stem=stem, template_dir=template_dir)
