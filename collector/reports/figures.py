"""The monthly summary's computed figures: SLA compliance per fault level, availability per
device class, the camera online rate (视频在线率) with its daily curve, and recording
completeness where NVRs report it.

Every figure is computed here from stored records only — incidents with their SLA clocks,
reachability transitions, inspection records — and carries the counts it was computed from,
so the JSON lets anyone redo the arithmetic. A figure with nothing to compute from is
``None`` (printed as "no data"), never 0 %: an empty month is not a month of outages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import RowMapping

from checks.status import Status
from collector.incidents.sla import SlaPolicy
from collector.reports.common import sla_figures
from collector.store.times import utc

#: Device classes counted as cameras for the online rate.
CAMERA_CLASSES = frozenset({"camera"})
#: Device classes that record video: the NVRs whose recording completeness is asked for.
NVR_CLASSES = frozenset({"nvr"})
#: The check an NVR would report its recording completeness (percent of scheduled footage
#: kept) by. No probe produces it yet: neither NVR recording in shared/fixtures/snmprec
#: (Hikvision 50001 enterprise tree, Dahua 1004849) exposes recording or per-channel status
#: over SNMP, only identity and, on the Hikvision, two unlabelled disk figures. The report
#: therefore says in words that no NVR reports it, and fills the figure once a probe does.
RECORDING_CHECK = "nvr.recording"
#: Verdicts of a reachability check that mean "the device answered".
ONLINE = frozenset({int(Status.OK), int(Status.WARN)})
#: The deadlines the SLA summary counts: first response and resolution.
SUMMARY_DEADLINES = ("respond", "resolve")


def rate(num: float, den: float) -> float | None:
    """A percentage rounded to 2 places, or None when there is nothing to divide by."""
    return round(100.0 * num / den, 2) if den > 0 else None


def _timelines(rows: Iterable[RowMapping]) -> dict[str, list[tuple[datetime, bool]]]:
    """Per device, its reachability changes as (time, online) in time order."""
    out: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for r in rows:
        at = utc(r["at"])
        assert at is not None
        out[str(r["target"])].append((at, int(r["to_status"]) in ONLINE))
    for v in out.values():
        v.sort(key=lambda p: p[0])
    return out


def online_seconds(
    timeline: Sequence[tuple[datetime, bool]], start: datetime, end: datetime
) -> tuple[float, float]:
    """(online, observed) seconds of one device within [start, end). Time before its first
    recorded verdict is not observed: a device added mid-month is measured from then on."""
    if end <= start or not timeline:
        return 0.0, 0.0
    online = observed = 0.0
    for i, (at, up) in enumerate(timeline):
        nxt = timeline[i + 1][0] if i + 1 < len(timeline) else end
        a, b = max(at, start), min(nxt, end)
        if b > a:
            span = (b - a).total_seconds()
            observed += span
            if up:
                online += span
    return online, observed


def availability(
    class_of: Mapping[str, str],
    rows: Iterable[RowMapping],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, Any]]:
    """Per device class (by its printed title): share of observed time its devices answered
    their reachability check, with the seconds it was computed from."""
    lines = _timelines(rows)
    out: dict[str, dict[str, Any]] = {}
    for target, cls in sorted(class_of.items()):
        entry = out.setdefault(
            cls, {"devices": 0, "measured": 0, "online_s": 0.0, "observed_s": 0.0, "rate": None}
        )
        entry["devices"] += 1
        up, seen = online_seconds(lines.get(target, []), start, end)
        if seen > 0:
            entry["measured"] += 1
            entry["online_s"] += up
            entry["observed_s"] += seen
    for entry in out.values():
        entry["online_s"] = round(entry["online_s"], 1)
        entry["observed_s"] = round(entry["observed_s"], 1)
        entry["rate"] = rate(entry["online_s"], entry["observed_s"])
    return dict(sorted(out.items()))


def online_curve(
    cameras: Sequence[str],
    rows: Iterable[RowMapping],
    start: datetime,
    end: datetime,
    tz: tzinfo,
) -> dict[str, Any]:
    """The camera online rate of the month and of each local day: camera-seconds online over
    camera-seconds observed. ``end`` is the month's end or "now", whichever is earlier; days
    after it, or before any camera reported, have no point (None)."""
    lines = _timelines(r for r in rows if str(r["target"]) in set(cameras))
    days: list[dict[str, Any]] = []
    day = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    total_up = total_seen = 0.0
    while day < end.astimezone(tz):
        nxt = (day + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight
        a, b = max(day, start), min(nxt, end)
        up = seen = 0.0
        for name in cameras:
            u, s = online_seconds(lines.get(name, []), a, b)
            up, seen = up + u, seen + s
        total_up, total_seen = total_up + up, total_seen + seen
        days.append({"date": f"{day:%Y-%m-%d}", "rate": rate(up, seen)})
        day = nxt
    measured = sum(1 for name in cameras if lines.get(name))
    return {
        "cameras": len(cameras),
        "measured": measured,
        "online_s": round(total_up, 1),
        "observed_s": round(total_seen, 1),
        "rate": rate(total_up, total_seen),
        "daily": days,
    }


def recording(inspection_rows: Iterable[RowMapping], nvrs: Sequence[str] = ()) -> dict[str, Any]:
    """Recording completeness per NVR that reports it (its latest value of the month) and
    their average, beside how many NVRs the site has (``nvrs``), so the report can say
    "none of the 40 NVRs reports it" rather than show 100 % or 0 %: no NVR reporting it
    gives ``rate`` None."""
    per: dict[str, float] = {}
    for r in inspection_rows:
        if r["check"] != RECORDING_CHECK or r["value"] is None:
            continue
        try:
            per[str(r["target"])] = float(r["value"])
        except (TypeError, ValueError):
            continue
    values = list(per.values())
    return {
        "nvrs": [{"device": k, "rate": round(v, 2)} for k, v in sorted(per.items())],
        "rate": round(sum(values) / len(values), 2) if values else None,
        "nvr_count": len(set(nvrs) | set(per)),
        "reporting": len(per),
    }


def recording_note(rec: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The plain statement printed with the recording figure: no NVRs, none reporting (and
    why), or how many of them the average covers; "" when every NVR reports it."""
    n, k = int(rec["nvr_count"]), int(rec["reporting"])
    if n == 0:
        return labels["recording_no_nvr"]
    if k == 0:
        return labels["recording_unreported"].format(n=n)
    if k < n:
        return labels["recording_partial"].format(k=k, n=n)
    return ""


def incident_sla(row: RowMapping, policy: SlaPolicy, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """One incident's deadlines and an overall verdict: missed if any deadline was missed,
    pending while one is still running, else met."""
    figures = sla_figures(row, policy, now, tz)
    verdicts = {f["verdict"] for f in figures}
    overall = "missed" if "missed" in verdicts else "pending" if "pending" in verdicts else "met"
    return {"deadlines": figures, "verdict": overall}


def sla_compliance(
    incidents: Iterable[tuple[RowMapping, dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Per level 1–4: how many incidents were responded to and resolved in time. The rate
    is met / (met + missed); an incident whose deadline is still running counts as pending
    and in neither, and a level without incidents has no rate."""
    out: dict[str, dict[str, Any]] = {}
    for lv in ("1", "2", "3", "4"):
        entry: dict[str, Any] = {"incidents": 0}
        for kind in SUMMARY_DEADLINES:
            entry[kind] = {"met": 0, "missed": 0, "pending": 0, "rate": None}
        out[lv] = entry
    for row, sla in incidents:
        found = out.get(str(row["level"]))
        if found is None:
            continue
        entry = found
        entry["incidents"] += 1
        for f in sla["deadlines"]:
            if f["deadline"] in SUMMARY_DEADLINES:
                entry[f["deadline"]][f["verdict"]] += 1
    for entry in out.values():
        for kind in SUMMARY_DEADLINES:
            k = entry[kind]
            k["rate"] = rate(k["met"], k["met"] + k["missed"])
    return out


def fmt_rate(value: float | None, none: str) -> str:
    """A rate for print: "99.52%" or the plain "no data" wording."""
    return none if value is None else f"{value:.2f}%"
