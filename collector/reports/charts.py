"""Charts for the PDF, drawn with matplotlib (Agg, no display needed) as PNG images that the
Typst template places in the summary. Drawn from the report data dict only, so every bar is a
number the JSON output also carries."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

# Noto Sans CJK from fonts-noto-cjk. matplotlib reads the first face of the .ttc collection,
# which may be registered under its JP name; its glyphs cover simplified Chinese as well.
CJK_FAMILIES = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK", "DejaVu Sans"]
LEVEL_COLOURS = ["#b00020", "#d9534f", "#e0a030", "#7a8fa6"]


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = CJK_FAMILIES
    matplotlib.rcParams["axes.unicode_minus"] = False
    # A Figure, not pyplot: no global figure registry, safe to call from a server thread.
    return Figure(figsize=(4.2, 2.8), dpi=150, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No software/version stamp: identical data then gives identical bytes across upgrades.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def pass_rate_by_class(data: Mapping[str, Any]) -> bytes | None:
    """Share of inspected checklist items that passed, per device class: the report's
    availability figure. None when nothing was inspected (no chart beats an empty one)."""
    L = data["labels"]
    totals: dict[str, list[int]] = {}
    for d in data["devices"]:
        for it in d["items"]:
            if it["verdict"]:
                t = totals.setdefault(d["class_title"], [0, 0])
                t[0] += it["verdict"] == "OK"
                t[1] += 1
    rates = {cls: 100.0 * ok / n for cls, (ok, n) in sorted(totals.items())}
    if not rates:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    bars = ax.barh(list(rates), list(rates.values()), height=0.5, color="#2f4a66")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in rates.values()], padding=2, fontsize=7)
    ax.set_xlim(0, 110)
    ax.set_xlabel(L["pass_rate"], fontsize=8)
    ax.set_title(L["chart_availability"], fontsize=9)
    ax.tick_params(labelsize=7)
    ax.invert_yaxis()
    return _png(fig)


def incidents_by_level(data: Mapping[str, Any]) -> bytes:
    """Incidents of the month per fault level; drawn even when all are zero, since "no
    incidents" is itself what the customer wants to see."""
    L = data["labels"]
    levels = ["1", "2", "3", "4"]
    counts = [int(data["summary"]["incidents_by_level"][lv]) for lv in levels]
    fig = _figure()
    ax = fig.add_subplot()
    bars = ax.bar([f"{L['level']} {lv}" for lv in levels], counts, color=LEVEL_COLOURS)
    ax.bar_label(bars, padding=2, fontsize=7)
    ax.set_ylim(0, max([*counts, 1]) * 1.25)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(L["count"], fontsize=8)
    ax.set_title(L["chart_incidents"], fontsize=9)
    ax.tick_params(labelsize=7)
    return _png(fig)


def online_by_day(data: Mapping[str, Any]) -> bytes | None:
    """The camera online rate (视频在线率) of each day of the month as a line; days without
    any camera data are gaps in the line, not zeros. None when no day has data."""
    L = data["labels"]
    online = data["summary"].get("camera_online") or {}
    daily = online.get("daily", [])
    if not any(d["rate"] is not None for d in daily):
        return None
    days = [int(d["date"][-2:]) for d in daily]
    rates = [float("nan") if d["rate"] is None else float(d["rate"]) for d in daily]
    fig = _figure()
    fig.set_size_inches(8.4, 2.6)
    ax = fig.add_subplot()
    ax.plot(days, rates, marker="o", markersize=2.5, linewidth=1.2, color="#2f4a66")
    known = [r for r in rates if r == r]
    low = min(known)
    ax.set_ylim(max(0.0, min(low - 2.0, 90.0)), 100.5)
    ax.set_xlim(0.5, max(days) + 0.5)
    ax.set_xticks(days[::2] if len(days) > 16 else days)
    ax.set_ylabel("%", fontsize=8)
    ax.set_xlabel(L["date"], fontsize=8)
    ax.set_title(f"{L['chart_online']} · {data['cover']['period']}", fontsize=9)
    ax.grid(True, linewidth=0.3, color="#cccccc")
    ax.tick_params(labelsize=7)
    return _png(fig)


def quarter_trend(data: Mapping[str, Any]) -> bytes:
    """The quarterly report's trend: incidents per month as bars, availability and camera
    online rate per month as lines (a month without data is a gap, not 0 %)."""
    L = data["labels"]
    trends = data["trends"]
    months = [t["month"] for t in trends]
    fig = _figure()
    fig.set_size_inches(8.4, 2.8)
    ax = fig.add_subplot()
    bars = ax.bar(months, [t["incidents"] for t in trends], color="#b8c4d0", width=0.5)
    ax.bar_label(bars, padding=2, fontsize=7)
    ax.set_ylim(0, max([t["incidents"] for t in trends] + [1]) * 1.3)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(L["trend_incidents"], fontsize=8)
    rates = ax.twinx()
    for key, colour in (("availability", "#2f4a66"), ("camera_online", "#17692b")):
        ys = [float("nan") if t[key] is None else 100.0 * float(t[key]) for t in trends]
        rates.plot(months, ys, marker="o", markersize=3, linewidth=1.4, color=colour, label=L[key])
    rates.set_ylim(0, 105)
    rates.set_ylabel("%", fontsize=8)
    rates.legend(fontsize=7, loc="lower right")
    ax.set_title(L["trend"], fontsize=9)
    for a in (ax, rates):
        a.tick_params(labelsize=7)
    return _png(fig)


def quarterly_charts(data: Mapping[str, Any]) -> dict[str, bytes]:
    """File name → PNG for the quarterly report."""
    return {"chart-trend.png": quarter_trend(data)}


def charts(data: Mapping[str, Any]) -> dict[str, bytes]:
    """File name → PNG for every chart that has something to show."""
    out: dict[str, bytes] = {}
    curve = online_by_day(data)
    if curve is not None:
        out["chart-online.png"] = curve
    rate = pass_rate_by_class(data)
    if rate is not None:
        out["chart-pass-rate.png"] = rate
    out["chart-incidents.png"] = incidents_by_level(data)
    return out
