"""Two parts of the monthly report derived by comparing inspection records:

* "Changes since last month" (变更情况): what differs between this month's and the previous
  month's inspection records of each device — serial number, firmware, configuration — and
  which devices were added or removed.
* "Hidden dangers and recommendations" (设备及系统隐患分析): findings from the month's
  records, each with its evidence and a suggested action.

The inspection record keeps, per device and check item, the latest value and summary of the
month plus the worst verdict and sample counts — not the facts an agent reported. So the
serial number is the ``inventory.entity`` item's value, the firmware is the
``firmware.version`` item's value (or the "firmware …" part of the ``inventory.entity``
summary); the location, which no inspection record keeps, comes from the location history
the collector records (``target_locations``, see collector/store/history.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import RowMapping

from checks.status import Status
from collector.store.times import utc

#: A disk whose trend reaches 100 % within this many days is reported.
DISK_HORIZON_DAYS = 365
#: TLS certificates expiring within this many days are reported even if the check passed.
TLS_DAYS = 30
#: An item is "failing repeatedly" with at least this many failed samples …
REPEAT_MIN_FAILED = 3
#: … making up at least this share of the month's samples.
REPEAT_MIN_SHARE = 0.1

SERIAL_CHECK = "inventory.entity"
FIRMWARE_CHECK = "firmware.version"
CONFIG_CHECK = "config.changed"
DISK_CHECK = "disk.usage"
UPS_REPLACE_CHECK = "ups.battery_replace"
CLOCK_CHECKS = ("clock.drift", "time.offset")
TLS_CHECK = "tls.days_left"
IF_ERRORS_CHECK = "if.errors"
#: Checks reported by their own finding (or as a change), not again as "failing repeatedly".
_OWN_FINDING = frozenset(
    {DISK_CHECK, UPS_REPLACE_CHECK, FIRMWARE_CHECK, *CLOCK_CHECKS, TLS_CHECK, IF_ERRORS_CHECK}
    | {CONFIG_CHECK}
)

_FIRMWARE_IN_SUMMARY = re.compile(r"(?:^|,\s*)firmware\s+(.+?)\s*(?:,|$)")

Row = RowMapping
#: Records one finding: (row, kind, evidence, extra fields for the JSON).
_Add = Callable[..., None]


def previous_month(month: str) -> str:
    year, mon = (int(p) for p in month.split("-"))
    year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return f"{year:04d}-{mon:02d}"


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _index(rows: Iterable[Row]) -> dict[str, dict[str, Row]]:
    """Rows by target, then by check key (``check`` or ``check[item]``)."""
    out: dict[str, dict[str, Row]] = {}
    for r in rows:
        out.setdefault(str(r["target"]), {})[str(r["check_key"])] = r
    return out


def _of(records: Mapping[str, Row], check: str) -> list[Row]:
    return sorted(
        (r for r in records.values() if r["check"] == check), key=lambda r: str(r["item"])
    )


def serial_of(records: Mapping[str, Row]) -> str:
    for r in _of(records, SERIAL_CHECK):
        if r["value"]:
            return str(r["value"])
    return ""


def firmware_of(records: Mapping[str, Row]) -> str:
    """The firmware as stored in a month's record: the ``firmware.version`` value, else the
    "firmware X" part of the ``inventory.entity`` summary the agent writes."""
    for r in _of(records, FIRMWARE_CHECK):
        if r["value"]:
            return str(r["value"])
    for r in _of(records, SERIAL_CHECK):
        m = _FIRMWARE_IN_SUMMARY.search(str(r["summary"] or ""))
        if m:
            return m.group(1)
    return ""


def build_changes(
    site_rows: Sequence[Row],
    prev_rows: Sequence[Row],
    facts_by_target: Mapping[str, Mapping[str, str]],
    month: str,
    L: Mapping[str, str],
    *,
    locations: Sequence[Row] = (),
    bounds: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """The changes between the previous month's records and this month's. ``locations`` is
    the site's location history (``target_locations`` rows) and ``bounds`` the month's
    [start, end): a device whose location at the end differs from the one at the start was
    moved."""
    now_idx, prev_idx = _index(site_rows), _index(prev_rows)
    prev_month = previous_month(month)
    items: list[dict[str, Any]] = []
    notes: list[dict[str, str]] = []
    compared = bool(prev_idx)

    def add(device: str, kind: str, before: str, after: str, remark: str, **extra: Any) -> None:
        items.append(
            {
                "device": device,
                "kind": kind,
                "change": L[f"chg_{kind}"],
                "before": before,
                "after": after,
                "remark": remark,
                **extra,
            }
        )

    moved = _moves(locations, bounds) if bounds is not None else {}

    if compared:
        for device in sorted(set(now_idx) - set(prev_idx)):
            add(device, "added", "", serial_of(now_idx[device]), L["chg_added_remark"])
        for device in sorted(set(prev_idx) - set(now_idx)):
            add(device, "removed", serial_of(prev_idx[device]), "", L["chg_removed_remark"])

    for device in sorted(now_idx):
        cur, old = now_idx[device], prev_idx.get(device)
        facts = facts_by_target.get(device, {})
        if old is not None:
            s_new, s_old = serial_of(cur), serial_of(old)
            if s_new and s_old and s_new != s_old:
                add(device, "serial", s_old, s_new, L["chg_serial_remark"])
            f_new, f_old = firmware_of(cur), firmware_of(old)
            if f_new and f_old and f_new != f_old:
                add(device, "firmware", f_old, f_new, "")
        if device in moved:
            before, after, n = moved[device]
            add(device, "location", before, after, L["chg_location_remark"].format(n=n))
        if not firmware_of(cur) and (old is None or not firmware_of(old)) and facts.get("firmware"):
            notes.append(
                {
                    "device": device,
                    "text": L["chg_firmware_facts_only"].format(firmware=facts["firmware"]),
                }
            )
        for r in _of(cur, CONFIG_CHECK):
            if int(r["worst"]) >= Status.WARN:
                diff = str(facts.get("diff", ""))
                add(
                    device,
                    "config",
                    "",
                    str(r["summary"] or r["value"] or ""),
                    L["chg_config_remark"].format(n=r["failed_samples"], m=r["samples"]),
                    diff=diff,
                    # The anchor of the diff's appendix entry in the HTML and PDF.
                    diff_ref=f"diff-{len(items)}" if diff else "",
                    backup=str(facts.get("backup_path", "")),
                    previous_backup=str(facts.get("previous_backup", "")),
                )
    return {
        "previous_period": prev_month,
        "compared": compared,
        #: From the location history (collector/store/history.py).
        "location_compared": bool(locations) and bounds is not None,
        "items": items,
        "notes": notes,
    }


def _moves(
    locations: Sequence[Row], bounds: tuple[datetime, datetime]
) -> dict[str, tuple[str, str, int]]:
    """Devices whose location at the month's end differs from the one at its start:
    device → (before, after, moves recorded within the month). A device first located
    within the month has no "before" and is not a move."""
    start, end = bounds
    out: dict[str, tuple[str, str, int]] = {}
    by_target: dict[str, list[tuple[datetime, str]]] = {}
    for r in locations:
        at = utc(r["since"])
        if at is not None and at < end:
            by_target.setdefault(str(r["target"]), []).append((at, str(r["location"])))
    for target, hist in by_target.items():
        hist.sort(key=lambda p: p[0])
        before = [loc for at, loc in hist if at < start]
        inside = [loc for at, loc in hist if start <= at]
        if before and inside and inside[-1] != before[-1]:
            out[target] = (before[-1], inside[-1], len(inside))
    return out


def _verdict(r: Row, key: str = "status") -> Status:
    return Status(int(r[key]))


def build_dangers(
    site_rows: Sequence[Row],
    prev_rows: Sequence[Row],
    tz: tzinfo,
    L: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Findings from the month's records, each with evidence and a suggested action."""
    prev_idx = _index(prev_rows)
    out: list[dict[str, Any]] = []

    def add(r: Row, kind: str, evidence: str, **extra: Any) -> None:
        out.append(
            {
                "device": str(r["target"]),
                "kind": kind,
                "title": L[f"dz_{kind}"],
                "item": str(r["item"]),
                "evidence": evidence,
                "action": L[f"dz_{kind}_action"],
                **extra,
            }
        )

    for r in sorted(site_rows, key=lambda r: (str(r["target"]), str(r["check_key"]))):
        check = str(r["check"])
        status, worst = _verdict(r), _verdict(r, "worst")
        value = "" if r["value"] is None else str(r["value"])
        shown = f"{value}{r['unit'] or ''}"
        if check == DISK_CHECK:
            _disk(r, prev_idx, tz, L, add)
        elif check == UPS_REPLACE_CHECK and status in (Status.WARN, Status.CRIT):
            add(r, "ups", L["dz_ups_evidence"].format(value=value, summary=r["summary"] or ""))
        elif check == FIRMWARE_CHECK and status in (Status.WARN, Status.CRIT):
            add(r, "firmware", L["dz_firmware_evidence"].format(summary=r["summary"] or value))
        elif check in CLOCK_CHECKS and worst in (Status.WARN, Status.CRIT):
            add(
                r,
                "clock",
                L["dz_clock_evidence"].format(
                    value=shown, worst=L[worst.name], n=r["failed_samples"], m=r["samples"]
                ),
            )
        elif check == TLS_CHECK:
            days = _number(r["value"])
            if status in (Status.WARN, Status.CRIT) or (days is not None and days <= TLS_DAYS):
                seen = utc(r["observed_at"])
                expires = (
                    (seen + timedelta(days=days)).astimezone(tz).strftime("%Y-%m-%d")
                    if seen is not None and days is not None
                    else ""
                )
                add(
                    r,
                    "tls",
                    L["dz_tls_evidence"].format(days=value, date=expires or "?"),
                    expires=expires or None,
                )
        elif check == IF_ERRORS_CHECK and worst in (Status.WARN, Status.CRIT):
            old = prev_idx.get(str(r["target"]), {}).get(str(r["check_key"]))
            before = "" if old is None or old["value"] is None else f"{old['value']}{r['unit']}"
            add(
                r,
                "if_errors",
                L["dz_if_errors_evidence"].format(
                    value=shown,
                    worst=L[worst.name],
                    n=r["failed_samples"],
                    m=r["samples"],
                    before=before or L["dz_no_previous"],
                ),
            )
        if check not in _OWN_FINDING:
            failed, samples = int(r["failed_samples"]), int(r["samples"])
            if failed >= REPEAT_MIN_FAILED and failed >= REPEAT_MIN_SHARE * samples:
                add(
                    r,
                    "repeated",
                    L["dz_repeated_evidence"].format(
                        check=check, n=failed, m=samples, worst=L[worst.name]
                    ),
                    failed_samples=failed,
                    samples=samples,
                )
    return out


def _disk(
    r: Row,
    prev_idx: Mapping[str, Mapping[str, Row]],
    tz: tzinfo,
    L: Mapping[str, str],
    add: _Add,
) -> None:
    """A mount's usage now and a month ago, extended linearly to 100 %."""
    now_v = _number(r["value"])
    old = prev_idx.get(str(r["target"]), {}).get(str(r["check_key"]))
    old_v = None if old is None else _number(old["value"])
    t1 = utc(r["observed_at"])
    t0 = None if old is None else utc(old["observed_at"])
    if now_v is None:
        return
    if old_v is not None and t0 is not None and t1 is not None and t1 > t0 and now_v > old_v:
        days = (t1 - t0).total_seconds() / 86400
        rate = (now_v - old_v) / days
        days_left = max(0.0, (100.0 - now_v) / rate)
        if days_left <= DISK_HORIZON_DAYS:
            full = (t1 + timedelta(days=days_left)).astimezone(tz)
            add(
                r,
                "disk",
                L["dz_disk_evidence"].format(
                    before=f"{old_v:g}",
                    after=f"{now_v:g}",
                    a=_day(t0, tz),
                    b=_day(t1, tz),
                    rate=f"{rate:.2f}",
                    date=f"{full:%Y-%m-%d}",
                ),
                full_date=f"{full:%Y-%m-%d}",
                rate_per_day=round(rate, 4),
                previous_value=old_v,
                value=now_v,
            )
            return
    if _verdict(r) in (Status.WARN, Status.CRIT):
        add(r, "disk", L["dz_disk_high_evidence"].format(value=f"{now_v:g}"), full_date=None)


def _day(dt: datetime, tz: tzinfo) -> str:
    return f"{dt.astimezone(tz):%Y-%m-%d}"
