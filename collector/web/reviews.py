"""Report review in the console: which reports a site has, each one built and settled through
``collector.reports.review`` (so the console, the command line and the files agree on what
is a draft and what was approved), the remark fields, and the files to download.

Reports are built on demand from the store, as ``fieldmon report`` builds them; nothing is
cached, so a page always shows what an approval would freeze.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from checks.catalogue import DeviceClass
from collector.config import CollectorConfig
from collector.reports.common import html_env
from collector.reports.monthly import ReportError, build_monthly
from collector.reports.monthly import render as render_monthly
from collector.reports.quarterly import QuarterError, build_quarterly, render_quarterly
from collector.reports.review import ReviewError, danger_key, device_key, review, settle
from collector.store.db import Store

Kind = Literal["monthly", "quarterly"]
KINDS: tuple[Kind, ...] = ("monthly", "quarterly")
PERIOD_RE: dict[str, re.Pattern[str]] = {
    "monthly": re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"),
    "quarterly": re.compile(r"^\d{4}Q[1-4]$"),
}
#: What each kind can be downloaded as (the XLSX form exists for the monthly record only);
#: JSON is the report's data as ``fieldmon report --format json`` writes it.
DOWNLOADS: dict[str, tuple[str, ...]] = {
    "monthly": ("pdf", "xlsx", "html", "json"),
    "quarterly": ("pdf", "html", "json"),
}
MEDIA = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}
#: Report languages (collector/reports/labels.py has these two).
LANGS = ("zh-CN", "en")


class BadReport(ValueError):
    """A report that cannot be built as asked: the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class Listed:
    kind: Kind
    period: str
    lang: str
    #: "draft", "approved" or "" (never reviewed).
    state: str
    version: int
    reviewer: str
    approved_at: datetime | None


def quarter_of(month: str) -> str:
    year, mon = month.split("-")
    return f"{year}Q{(int(mon) - 1) // 3 + 1}"


def periods(store: Store, site: str, now: datetime, tz: tzinfo) -> list[tuple[Kind, str]]:
    """Every report the site can have: a monthly one per month with inspection records (and
    the current month), a quarterly one per quarter those months fall in; newest first."""
    current = now.astimezone(tz).strftime("%Y-%m")
    months = sorted({current, *store.inspection_months(site)}, reverse=True)
    quarters = sorted({quarter_of(m) for m in months}, reverse=True)
    return [("monthly", m) for m in months] + [("quarterly", q) for q in quarters]


def listing(store: Store, site: str, lang: str, now: datetime, tz: tzinfo) -> list[Listed]:
    out: list[Listed] = []
    for kind, period in periods(store, site, now, tz):
        row = store.report_review(kind, site, period, lang)
        out.append(
            Listed(
                kind=kind,
                period=period,
                lang=lang,
                state=str(row["state"]) if row else "",
                version=int(row["version"]) if row else 0,
                reviewer=str(row["reviewer"] or "") if row else "",
                approved_at=row["approved_at"] if row else None,
            )
        )
    return out


def period_over(kind: str, period: str, now: datetime, tz: tzinfo) -> bool:
    """Whether the period has ended: only then can a report be approved. A running month's
    figures (availability so far, results still arriving) change by the second, so an
    approval would lapse into a new draft almost at once."""
    if kind == "monthly":
        last = period
    else:
        year, q = period.split("Q")
        last = f"{year}-{int(q) * 3:02d}"
    return now.astimezone(tz).strftime("%Y-%m") > last


def approvable_from(kind: str, period: str) -> str:
    """The first day (YYYY-MM-DD, collector time zone) on which the period is over and its
    report can be approved: the day after its last month ends."""
    if kind == "monthly":
        year, mon = (int(x) for x in period.split("-"))
    else:
        y, q = period.split("Q")
        year, mon = int(y), int(q) * 3
    return f"{year + 1}-01-01" if mon == 12 else f"{year}-{mon + 1:02d}-01"


def check_request(kind: str, period: str, lang: str) -> None:
    if kind not in KINDS:
        raise BadReport(f"report kind {kind!r} is not one of {', '.join(KINDS)}")
    if not PERIOD_RE[kind].match(period):
        shape = "YYYY-MM" if kind == "monthly" else "YYYYQn"
        raise BadReport(f"{kind} report period {period!r} is not {shape}")
    if lang not in LANGS:
        raise BadReport(f"report language {lang!r} is not one of {', '.join(LANGS)}")


def _raw(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    kind: str,
    site: str,
    period: str,
    lang: str,
    now: datetime,
) -> dict[str, Any]:
    check_request(kind, period, lang)
    try:
        if kind == "monthly":
            return build_monthly(store, cfg, classes, site, period, lang, now)
        data = build_quarterly(store, cfg, site, period, lang, now)
    except (ReportError, QuarterError) as exc:
        raise BadReport(str(exc)) from None
    # The review model puts remarks into data["devices"]; the quarterly report has no
    # per-device checklist, so it is reviewed (and hashed) with an empty one.
    data.setdefault("devices", [])
    return data


def build(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    kind: str,
    site: str,
    period: str,
    lang: str,
    now: datetime,
    warn: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """The report as it stands, with its review state (``data["review"]``) and remarks;
    ``warn`` hears when the data changed after approval and a new draft version began."""
    data = _raw(store, cfg, classes, kind, site, period, lang, now)
    return settle(store, data, kind, period, now, cfg.tz, warn)


def save(
    store: Store,
    cfg: CollectorConfig,
    classes: Mapping[str, DeviceClass],
    kind: str,
    site: str,
    period: str,
    lang: str,
    remarks: Mapping[str, str],
    *,
    approve: bool,
    reviewer: str,
    now: datetime,
) -> None:
    """Record the remarks typed on the page and, with ``approve``, freeze the report."""
    data = _raw(store, cfg, classes, kind, site, period, lang, now)
    try:
        review(store, data, kind, period, remarks, approve=approve, reviewer=reviewer, now=now)
    except ReviewError as exc:
        raise BadReport(str(exc)) from None


def remark_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per device, the key and text of its own remark and its checklist rows with the review
    key each row's remark is stored under."""
    out: list[dict[str, Any]] = []
    for d in data.get("devices", []):
        rows = []
        for it in d["items"]:
            key = f"{d['name']}:{it['check']}" + (f"/{it['item']}" if it["item"] else "")
            rows.append({"key": key, "item": it, "remark": it.get("remark", "")})
        out.append(
            {
                "name": d["name"],
                "class_title": d.get("class_title", ""),
                "key": device_key(str(d["name"])),
                "remark": d.get("remark", ""),
                "rows": rows,
            }
        )
    return out


def danger_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The hidden dangers with the key of the engineer's recommendation for each, the
    suggested action (shown as the field's placeholder) and the engineer's text, if any."""
    out: list[dict[str, Any]] = []
    for z in data.get("dangers") or []:
        mine = "suggested" in z
        out.append(
            {
                "key": danger_key(z),
                "danger": z,
                "suggested": z["suggested"] if mine else z.get("action", ""),
                "remark": z.get("action", "") if mine else "",
            }
        )
    return out


def html(data: Mapping[str, Any], kind: str) -> str:
    return html_env().get_template(f"{kind}.html.j2").render(r=data, L=data["labels"])


def render_file(data: dict[str, Any], kind: str, fmt: str) -> tuple[str, bytes]:
    """The report as one file: (file name, bytes)."""
    if fmt not in DOWNLOADS.get(kind, ()):
        raise BadReport(f"a {kind} report cannot be downloaded as {fmt!r}")
    body = {k: v for k, v in data.items() if not (kind == "quarterly" and k == "devices")}
    with tempfile.TemporaryDirectory(prefix="fieldmon-web-report-") as tmp:
        try:
            if kind == "monthly":
                (path,) = render_monthly(body, [fmt], Path(tmp))
            else:
                (path,) = render_quarterly(body, [fmt], Path(tmp))
        except (ReportError, ValueError) as exc:
            raise BadReport(str(exc)) from None
        return path.name, path.read_bytes()
