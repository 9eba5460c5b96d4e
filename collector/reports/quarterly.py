"""The quarterly maintenance report (季度维护报告), due by the 10th of the next quarter: per
month of the quarter, incidents by level, SLA compliance per level, availability; across the
quarter, recurring faults and recommendations derived from those same figures.

Every figure is computed here from stored rows (incidents with their clocks, the months'
inspection records), and a figure with nothing behind it is None ("no data"), never 0 %."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping

from collector.config import CollectorConfig
from collector.incidents.sla import SlaPolicy, deadline
from collector.reports.common import local, render_report
from collector.reports.figures import CAMERA_CLASSES, availability, online_curve
from collector.reports.labels import LABELS
from collector.store.db import Store
from collector.store.history import reachability_rows
from collector.store.incident_ops import clock_of
from collector.store.times import utc

LEVELS = ("1", "2", "3", "4")
#: Monthly availability below this gets a recommendation (a contract may promise more).
AVAILABILITY_TARGET = 0.99


class QuarterError(ValueError):
    """A quarter not written as YYYYQn, or an unknown language."""


def months_of(quarter: str) -> list[str]:
    """``2026Q4`` → ["2026-10", "2026-11", "2026-12"]."""
    year, q, n = quarter[:4], quarter[4:5].upper(), quarter[5:]
    if not (year.isdigit() and q == "Q" and n in ("1", "2", "3", "4") and len(quarter) == 6):
        raise QuarterError(f"quarter {quarter!r} is not YYYYQn (e.g. 2026Q4)")
    first = (int(n) - 1) * 3 + 1
    return [f"{year}-{m:02d}" for m in range(first, first + 3)]


def _month_bounds(month: str, tz: Any) -> tuple[datetime, datetime]:
    first = datetime.strptime(month, "%Y-%m").replace(tzinfo=tz)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first.astimezone(UTC), nxt.astimezone(UTC)


def _in_time(row: RowMapping, policy: SlaPolicy, kind: str, now: datetime) -> bool | None:
    """Met (True), missed (False), or not decided yet / no such deadline (None)."""
    clock = clock_of(row)
    due = deadline(clock, policy, kind, now)  # type: ignore[arg-type]
    if due is None:
        return None
    done = clock.done_at(kind)  # type: ignore[arg-type]
    if done is not None:
        return done <= due
    return False if now > due else None


def _rate(ok: int, total: int) -> float | None:
    return round(ok / total, 4) if total else None


def _sla_by_level(rows: list[RowMapping], policy: SlaPolicy, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lv in LEVELS:
        mine = [r for r in rows if str(r["level"]) == lv]
        figures: dict[str, Any] = {"incidents": len(mine)}
        for kind, name in (("respond", "responded"), ("resolve", "resolved")):
            verdicts = [_in_time(r, policy, kind, now) for r in mine]
            decided = [v for v in verdicts if v is not None]
            ok = sum(1 for v in decided if v)
            figures[f"{name}_in_time"] = ok
            figures[f"{name}_late"] = len(decided) - ok
            figures[f"{name}_pending"] = len(verdicts) - len(decided)
            figures[f"{name}_rate"] = _rate(ok, len(decided))
        out[lv] = figures
    return out


def _availability(
    class_of: dict[str, str], reach: list[RowMapping], start: datetime, end: datetime
) -> dict[str, Any]:
    """Share of observed device-time the site's devices answered their reachability check,
    computed exactly as the monthly report's availability per class (figures.availability,
    from reachability transitions), so a month reads the same in both reports; with the
    hours it was computed from."""
    per = availability(class_of, reach, start, end)
    up = sum(float(e["online_s"]) for e in per.values())
    seen = sum(float(e["observed_s"]) for e in per.values())
    return {
        "online_h": round(up / 3600, 1),
        "observed_h": round(seen / 3600, 1),
        "rate": round(up / seen, 4) if seen > 0 else None,
        "by_class": {k: (None if e["rate"] is None else e["rate"] / 100) for k, e in per.items()},
    }


def _direction(cur: float | None, prev: float | None) -> str | None:
    """How a monthly figure moved against the month before: "up", "down" or "flat" (within
    a hundredth of a percentage point), None when either month has no figure."""
    if cur is None or prev is None:
        return None
    if abs(cur - prev) < 1e-4:
        return "flat"
    return "up" if cur > prev else "down"


def _resolved_rate(sla: dict[str, Any]) -> float | None:
    """All levels together: resolutions in time over resolutions decided."""
    ok = sum(int(f["resolved_in_time"]) for f in sla.values())
    late = sum(int(f["resolved_late"]) for f in sla.values())
    return _rate(ok, ok + late)


def _trends(per_month: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The quarter's trend table: per month the headline figures and which way each moved
    against the previous month of the quarter (the first month has no direction)."""
    out: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for m in per_month:
        row = {
            "month": m["month"],
            "incidents": m["incidents"],
            "resolved_rate": _resolved_rate(m["sla"]),
            "availability": m["availability"]["rate"],
            "camera_online": m["camera_online"]["rate"],
        }
        row["direction"] = {
            k: _direction(
                None if row[k] is None else float(row[k]),
                None if prev is None or prev[k] is None else float(prev[k]),
            )
            for k in ("incidents", "resolved_rate", "availability", "camera_online")
        }
        out.append(row)
        prev = row
    return out


def _pct(rate: float | None, none: str) -> str:
    return none if rate is None else f"{rate * 100:.2f}%"


def build_quarterly(
    store: Store,
    cfg: CollectorConfig,
    site: str,
    quarter: str,
    lang: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    if lang not in LABELS:
        raise QuarterError(f"language {lang!r} is not one of {', '.join(LABELS)}")
    L = LABELS[lang]
    months = months_of(quarter)
    tz = cfg.tz
    now = now or datetime.now(UTC)
    policy = cfg.rules().sla_for(site)
    site_cfg = cfg.site(site)
    start, _ = _month_bounds(months[0], tz)
    _, end = _month_bounds(months[-1], tz)
    # Merged incidents were folded into a parent's: counting them would count one outage twice.
    rows = [
        r
        for r in store.incidents(site=site, since=start, until=end, limit=1_000_000)
        if r["state"] != "merged"
    ]
    # The camera online rate per month, by the same computation as the monthly report's
    # (camera-seconds online over camera-seconds observed, from reachability transitions);
    # kept here as a share (0–1) like this report's other rates.
    class_of = {str(t["target"]): str(t["class"]) for t in store.target_rows(site)}
    cameras = sorted(n for n, c in class_of.items() if c in CAMERA_CLASSES)
    reach = reachability_rows(store, site, min(end, max(now, start)), sorted(class_of))
    per_month: list[dict[str, Any]] = []
    for month in months:
        a, b = _month_bounds(month, tz)
        mine = [r for r in rows if a <= utc(r["opened_at"]) < b]  # type: ignore[operator]
        levels = Counter(str(r["level"]) for r in mine)
        until = min(b, max(now, a))
        online = online_curve(cameras, reach, a, until, tz)
        per_month.append(
            {
                "month": month,
                "incidents": len(mine),
                "incidents_by_level": {lv: levels.get(lv, 0) for lv in LEVELS},
                "sla": _sla_by_level(mine, policy, now),
                "availability": _availability(class_of, reach, a, until),
                "camera_online": {
                    "cameras": online["cameras"],
                    "measured": online["measured"],
                    "rate": None if online["rate"] is None else round(online["rate"] / 100, 4),
                },
            }
        )
    groups: dict[tuple[str, str], list[RowMapping]] = defaultdict(list)
    for r in rows:
        groups[(str(r["target"]), str(r["check"]))].append(r)
    recurring: list[dict[str, Any]] = [
        {
            "device": target,
            "check": check,
            "times": len(found),
            "numbers": [str(r["number"]) for r in sorted(found, key=lambda r: r["opened_at"])],
            "last": local(max(r["opened_at"] for r in found), tz),
        }
        for (target, check), found in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        if len(found) > 1
    ]
    quarter_sla = _sla_by_level(rows, policy, now)
    recs: list[dict[str, str]] = []
    for rec in recurring:
        text = L["rec_recurring"].format(device=rec["device"], check=rec["check"], n=rec["times"])
        recs.append({"kind": "recurring", "text": text, "evidence": ", ".join(rec["numbers"])})
    for lv, fig in quarter_sla.items():
        if fig["resolved_late"]:
            rate = _pct(fig["resolved_rate"], L["no_data"])
            recs.append(
                {
                    "kind": "sla",
                    "text": L["rec_sla"].format(level=lv, rate=rate),
                    "evidence": f"{fig['resolved_in_time']}/"
                    f"{fig['resolved_in_time'] + fig['resolved_late']}",
                }
            )
    for m in per_month:
        rate = m["availability"]["rate"]
        if rate is not None and rate < AVAILABILITY_TARGET:
            recs.append(
                {
                    "kind": "availability",
                    "text": L["rec_availability"].format(
                        month=m["month"],
                        rate=_pct(rate, ""),
                        target=_pct(AVAILABILITY_TARGET, ""),
                    ),
                    "evidence": f"{m['availability']['online_h']} h / "
                    f"{m['availability']['observed_h']} h",
                }
            )
    for r in rows:
        due = utc(r["analysis_due"])
        if r["analysis"] is None and r["source"] != "agent" and due is not None and now > due:
            recs.append(
                {
                    "kind": "analysis",
                    "text": L["rec_analysis"].format(number=r["number"]),
                    "evidence": str(r["number"]),
                }
            )
    return {
        "kind": "quarterly",
        "lang": lang,
        "labels": L,
        "cover": {
            "site": site,
            "customer": site_cfg.customer,
            "contract": site_cfg.contract,
            "title": site_cfg.title or site,
            "maintainer": site_cfg.maintainer,
            "period": quarter,
            "report_no": f"QRT-{site}-{quarter}",
            "generated": local(now, tz),
            "timezone": cfg.timezone,
        },
        "months": per_month,
        "trends": _trends(per_month),
        "quarter": {
            "incidents": len(rows),
            "incidents_by_level": {
                lv: sum(m["incidents_by_level"][lv] for m in per_month) for lv in LEVELS
            },
            "sla": quarter_sla,
        },
        "recurring": recurring,
        "recommendations": recs,
    }


def render_quarterly(
    data: dict[str, Any], formats: list[str], out_dir: Path, template_dir: Path | None = None
) -> list[Path]:
    """Write the report; the PDF carries the trend chart (matplotlib), drawn from ``data``."""
    from collector.reports.charts import quarterly_charts

    stem = f"quarterly-{data['cover']['site']}-{data['cover']['period']}-{data['lang']}"
    images = quarterly_charts(data) if "pdf" in formats else {}
    return render_report(
        data,
        formats,
        out_dir,
        kind="quarterly",
        stem=stem,
        template_dir=template_dir,
        images=images,
    )
