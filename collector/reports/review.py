"""The review step: a generated report is a draft until an engineer approves it.

Remarks are kept per report version in the store, one flat text per key:

- ``device:check`` (or ``device:check/item``): printed in that row's 巡检记录表 remark column;
- ``device:@device``: the engineer's remark on the device as a whole, printed under its
  巡检记录表;
- ``device:@danger/kind`` (or ``device:@danger/kind/item``): the engineer's recommendation for
  one hidden danger, printed instead of the suggested action (which stays in the data as
  ``suggested``).

The check part never starts with "@", so the three kinds cannot collide.

Approval stores the hash of the report data as approved (remarks
included, the generation time excluded). Rendering an approved report recomputes that hash:
equal, the report prints as approved with the reviewer and approval time; different (a late
result arrived, a remark changed), it says so and becomes a new draft version that keeps the
remarks, so an approved report can never change silently."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import RowMapping

from collector.reports.common import local
from collector.store.db import Store


class ReviewError(ValueError):
    """A remark that cannot be parsed or names no device/check in the report."""


def parse_remarks(texts: Iterable[str]) -> dict[str, str]:
    """``device:check=text`` → {"device:check": "text"}. The device name may itself contain
    ':' (the check id never does), so the key splits at its last colon."""
    out: dict[str, str] = {}
    for raw in texts:
        key, sep, text = raw.partition("=")
        device, colon, check = key.strip().rpartition(":")
        if not sep or not colon or not device or not check:
            raise ReviewError(f"remark {raw!r} is not 'device:check=text'")
        out[f"{device}:{check}"] = text.strip()
    return out


#: The check part of a device's own remark key (``device:@device``).
DEVICE_REMARK = "@device"
#: The check part of a hidden danger's recommendation key starts with this.
DANGER_REMARK = "@danger"


def device_key(device: str) -> str:
    """The key of the engineer's remark on a whole device."""
    return f"{device}:{DEVICE_REMARK}"


def danger_key(danger: Mapping[str, Any]) -> str:
    """The key of the engineer's recommendation for one hidden danger: device, kind and (for
    per-item findings such as one disk) the item, so two findings never share a text."""
    item = str(danger.get("item") or "")
    return f"{danger['device']}:{DANGER_REMARK}/{danger['kind']}" + (f"/{item}" if item else "")


def merge_remarks(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """New remarks replace old ones for the same key; an empty text removes the remark."""
    merged = {**old, **new}
    return {k: v for k, v in sorted(merged.items()) if v}


def apply_remarks(data: dict[str, Any], remarks: Mapping[str, str]) -> list[str]:
    """Put each remark where it is printed: a checklist row (``device:check`` or
    ``device:check/item``), a device (``device:@device``) or a hidden danger's recommendation
    (``device:@danger/...``). Returns the keys that matched nothing, so a typo is reported
    instead of vanishing. Applying twice gives the same data: a danger keeps its suggested
    action aside, so clearing the recommendation brings the suggestion back."""
    used: set[str] = set()
    for d in data["devices"]:
        own = device_key(str(d["name"]))
        # Set only when there is one: a report without the newer kinds of remark hashes as
        # it did before they existed, so earlier approvals stay valid.
        d.pop("remark", None)
        if remarks.get(own):
            d["remark"] = remarks[own]
            used.add(own)
        for it in d["items"]:
            keys = [f"{d['name']}:{it['check']}/{it['item']}", f"{d['name']}:{it['check']}"]
            hit = next((k for k in keys if k in remarks), None)
            it["remark"] = remarks[hit] if hit else ""
            if hit:
                used.add(hit)
    for z in data.get("dangers") or []:
        if "suggested" in z:
            z["action"] = z.pop("suggested")
        key = danger_key(z)
        if remarks.get(key):
            z["suggested"], z["action"] = z["action"], remarks[key]
            used.add(key)
    return sorted(set(remarks) - used)


def content_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of what a reader sees as content: every figure, row and remark, but not the
    labels (wording), the generation time or the review block itself."""
    body = {k: v for k, v in data.items() if k not in ("labels", "review", "charts")}
    body["cover"] = {
        k: v for k, v in dict(body.get("cover", {})).items() if k not in ("generated", "version")
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _block(row: RowMapping | None, state: str, tz: Any, changed: bool) -> dict[str, Any]:
    return {
        "state": state,
        "version": int(row["version"]) if row else 1,
        "reviewer": str(row["reviewer"]) if row and state == "approved" else "",
        "approved_at": local(row["approved_at"], tz) if row and state == "approved" else None,
        "content_hash": str(row["content_hash"] or "") if row and state == "approved" else "",
        "changed_since_approval": changed,
    }


def settle(
    store: Store,
    data: dict[str, Any],
    kind: str,
    period: str,
    now: datetime,
    tz: Any,
    warn: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Attach the review state to freshly built report ``data`` (in place, also returned):
    remarks applied, draft or approved, and a new draft version when the data no longer
    matches what was approved (``warn`` is told why)."""
    site, lang = str(data["cover"]["site"]), str(data["lang"])
    latest = store.report_review(kind, site, period, lang)
    remarks: dict[str, str] = dict(latest["remarks"]) if latest else {}
    apply_remarks(data, remarks)
    if latest is None:
        review = _block(None, "draft", tz, False)
    elif latest["state"] == "approved" and content_hash(data) == latest["content_hash"]:
        review = _block(latest, "approved", tz, False)
        # The approval time, not the render time: re-rendering gives the same text.
        data["cover"]["generated"] = review["approved_at"]
    elif latest["state"] == "approved":
        row = store.save_report_draft(kind, site, period, lang, remarks, now)
        warn(
            f"{kind} report {site} {period} ({lang}): the data changed since version "
            f"{latest['version']} was approved by {latest['reviewer']}; "
            f"written as draft version {row['version']}, which needs review again"
        )
        review = _block(row, "draft", tz, True)
    else:
        review = _block(latest, "draft", tz, False)
    data["review"] = review
    data["cover"]["version"] = review["version"]
    data["cover"]["report_no"] = f"{data['cover']['report_no']}-v{review['version']}"
    return data


def review(
    store: Store,
    data: dict[str, Any],
    kind: str,
    period: str,
    new_remarks: Mapping[str, str],
    *,
    approve: bool,
    reviewer: str,
    now: datetime,
) -> RowMapping:
    """Record an engineer's remarks and, if asked, approve: returns the review row. Raises
    ReviewError for a remark naming no device/check in the report."""
    site, lang = str(data["cover"]["site"]), str(data["lang"])
    latest = store.report_review(kind, site, period, lang)
    old: dict[str, str] = dict(latest["remarks"]) if latest else {}
    remarks = merge_remarks(old, new_remarks)
    unknown = apply_remarks(data, remarks)
    if unknown:
        raise ReviewError(f"no such device:check in the report: {', '.join(unknown)}")
    digest = content_hash(data)
    unchanged = (
        latest is not None
        and latest["state"] == "approved"
        and latest["content_hash"] == digest
        and remarks == old
    )
    if unchanged:
        assert latest is not None
        return latest  # already approved exactly as it stands: nothing to record
    row = store.save_report_draft(kind, site, period, lang, remarks, now)
    if approve:
        store.approve_report(int(row["id"]), reviewer, digest, now)
        found = store.report_review(kind, site, period, lang)
        assert found is not None
        return found
    return row
