"""The monthly report as a workbook, for customers who file inspection records in spreadsheets:
a summary sheet, one 巡检记录表 sheet with a row per device and checklist item (so it can be
filtered and sorted), and an incidents sheet. Written from the same dict as the PDF and JSON.

openpyxl writes cell values as values, never as formulas unless asked, but a text starting with
"=" would still be read by spreadsheet programs as a formula; such text is stored as a string
cell explicitly so that a device named "=HYPERLINK(...)" stays text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from copy import copy
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

HEAD_FILL = PatternFill("solid", start_color="E8EEF4")
HEAD_FONT = Font(bold=True)
WRAP = Alignment(vertical="top", wrap_text=True)
VERDICT_FONT = {
    "OK": Font(color="17692B"),
    "WARN": Font(color="A66400", bold=True),
    "CRIT": Font(color="B00020", bold=True),
    "UNKNOWN": Font(color="666666", italic=True),
}
# Sheet titles may not contain these characters (Excel's rule).
_BAD_TITLE = str.maketrans({c: "_" for c in "[]:*?/\\"})


def _cell(ws: Worksheet, row: int, col: int, value: Any) -> Cell | MergedCell:
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
        cell.value = value
        cell.data_type = "s"  # text, even if it looks like a formula
    else:
        cell.value = value
    return cell


def _number(value: Any) -> Any:
    """A measured value as a number when it is one, so that the column sorts and filters
    numerically; the store keeps values as text."""
    if not isinstance(value, str):
        return value
    try:
        f = float(value)
    except ValueError:
        return value
    if not math.isfinite(f):
        return value
    return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f


def _sheet(
    ws: Worksheet, header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[int]
) -> None:
    """A table with a bold frozen header row and an autofilter, the way engineers use them."""
    for col, name in enumerate(header, 1):
        c = _cell(ws, 1, col, name)
        c.font, c.fill = HEAD_FONT, HEAD_FILL
    # Styles are copied from one styled cell instead of assigned per cell: assigning looks
    # the style up in the workbook's style list each time, which dominated a 500-device
    # workbook's writing time (about 250,000 cells).
    proto: StyleArray | None = None
    for r, values in enumerate(rows, 2):
        for col, value in enumerate(values, 1):
            cell = _cell(ws, r, col, value)
            if proto is None:
                cell.alignment = WRAP
                proto = copy(cell._style)  # type: ignore[union-attr]
            else:
                cell._style = copy(proto)  # type: ignore[union-attr]
    for col, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = "A2"
    if rows:
        ws.auto_filter.ref = ws.dimensions


def _figures(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The summary's computed figures as (label, value) rows, rates as numbers in percent so
    they sort, and the words for "no data" where there was nothing to compute from."""
    L: Mapping[str, str] = data["labels"]
    S = data["summary"]
    if "sla_compliance" not in S:
        return []
    nodata = L["no_data"]
    out: list[tuple[str, Any]] = []
    if S.get("empty"):
        out.append((L["summary"], L["empty_month"]))
    for lv, e in S["sla_compliance"].items():
        head = f"{L['sla_compliance']} · {L['level']} {lv}"
        if e["incidents"] == 0:
            out.append((head, L["sla_no_incidents"]))
            continue
        for kind, label in (("respond", L["responded_ok"]), ("resolve", L["resolved_ok"])):
            k = e[kind]
            out.append((f"{head} · {label}", f"{k['met']}/{k['met'] + k['missed']}"))
            out.append((f"{head} · {label} · {L['sla_rate']} (%)", _or(k["rate"], nodata)))
    for cls, a in S["availability"].items():
        out.append((f"{L['availability']} (%): {cls}", _or(a["rate"], nodata)))
    co = S["camera_online"]
    out.append((f"{L['camera_online']} (%)", _or(co["rate"], L["no_cameras"])))
    rec = S["recording"]
    note = rec.get("note") or L["recording_none"]
    out.append((f"{L['recording']} (%)", _or(rec["rate"], note)))
    if rec["rate"] is not None and rec.get("note"):
        out.append((L["recording"], rec["note"]))
    for n in rec["nvrs"]:
        out.append((f"{L['recording']} (%): {n['device']}", n["rate"]))
    if S["never_reached"]:
        out.append((L["never_reached"], ", ".join(S["never_reached"])))
    return out


def _or(value: float | None, none: str) -> Any:
    return none if value is None else value


def render_xlsx(data: Mapping[str, Any], out: Path) -> Path:
    L: Mapping[str, str] = data["labels"]
    cover, summary = data["cover"], data["summary"]
    wb = Workbook()

    ws = wb.active
    assert ws is not None  # a new workbook always has one sheet
    ws.title = L["summary_sheet"].translate(_BAD_TITLE)[:31]
    figures: list[tuple[str, Any]] = [
        (L["monthly_title"], cover["title"]),
        (L["customer"], cover["customer"]),
        (L["site"], cover["site"]),
        (L["contract"], cover["contract"]),
        (L["period"], cover["period"]),
        (L["maintainer"], cover["maintainer"]),
        (L["report_no"], cover["report_no"]),
        (L["generated"], f"{cover['generated']} ({cover['timezone']})"),
        (L["devices"], summary["devices"]),
        (L["inspected"], summary["inspected"]),
        (L["unreachable"], summary["unreachable"]),
        (L["passed"], summary["items"]["OK"]),
        (L["warned"], summary["items"]["WARN"]),
        (L["failed"], summary["items"]["CRIT"]),
        (L["unknown"], summary["items"]["UNKNOWN"]),
        *((f"{L['level']} {lv}", n) for lv, n in summary["incidents_by_level"].items()),
        (L["open"], summary["incidents_open"]),
        (L["resolved"], summary["incidents_resolved"]),
        *((f"{L['by_class']}: {cls}", n) for cls, n in summary["by_class"].items()),
        *(
            (L["gaps"], L["gap_text"].format(n=g["dropped"], a=g["first"], b=g["last"]))
            for g in data["gaps"]
        ),
        *_figures(data),
    ]
    _sheet(ws, [L["figure"], L["figure_value"]], figures, [28, 50])

    rows: list[list[Any]] = []
    verdicts: list[tuple[str | None, str | None]] = []
    for d in data["devices"]:
        idn = d["identity"]
        for it in d["items"]:
            verdicts.append((it["verdict"], it["worst"]))
            rows.append(
                [
                    d["name"],
                    d["class_title"],
                    idn["model"],
                    idn["serial"],
                    idn["firmware"],
                    idn["location"],
                    idn["address"],
                    it["category"],
                    f"{it['title']} — {it['item']}" if it["item"] else it["title"],
                    it["method"],
                    _number(it["value"]),
                    it["unit"],
                    it["summary"],
                    it["threshold"],
                    L[it["verdict"]] if it["verdict"] else L["not_inspected"],
                    L[it["worst"]] if it["worst"] else "",
                    it["checked_at"] or "",
                    d["inspector"],
                    it.get("remark", ""),
                ]
            )
    forms = wb.create_sheet(L["record_form"].translate(_BAD_TITLE)[:31])
    header = [
        L["device"],
        L["class"],
        L["vendor_model"],
        L["serial"],
        L["firmware"],
        L["location"],
        L["address"],
        L["category"],
        L["item"],
        L["method"],
        L["value"],
        L["unit"],
        L["details"],
        L["threshold"],
        L["verdict"],
        L["worst"],
        L["inspected_at"],
        L["inspector"],
        L["remark"],
    ]
    widths = [18, 14, 18, 26, 22, 22, 15, 8, 34, 8, 12, 6, 30, 20, 8, 10, 17, 20, 20]
    _sheet(forms, header, rows, widths)
    styled: dict[str, StyleArray] = {}
    for r, pair in enumerate(verdicts, 2):
        for col, status in zip((15, 16), pair, strict=True):
            key = status or "UNKNOWN"
            cell = forms.cell(row=r, column=col)
            if key in styled:
                cell._style = copy(styled[key])
            else:
                cell.font = VERDICT_FONT[key]
                styled[key] = copy(cell._style)

    inc = wb.create_sheet(L["incidents_sheet"].translate(_BAD_TITLE)[:31])
    _sheet(
        inc,
        [
            L["number"],
            L["level"],
            L["device"],
            L["item"],
            L["opened"],
            L["resolved_at"],
            L["duration"],
            L["state"],
            L["sla_col"],
        ],
        [
            [
                i["number"],
                i["level"],
                i["device"],
                f"{i['title']}\n{i['summary']}" if i["summary"] else i["title"],
                i["opened_at"],
                i["resolved_at"] or "",
                i["duration"],
                L.get(i["state"], i["state"]),
                L[i["sla"]] if i.get("sla") else "",
            ]
            for i in data["incidents"]
        ],
        [18, 6, 18, 40, 17, 17, 10, 10, 10],
    )
    online = data["summary"].get("camera_online")
    if online is not None and online["rate"] is not None:
        daily = wb.create_sheet(L["camera_online"].translate(_BAD_TITLE)[:31])
        _sheet(
            daily,
            [L["date"], f"{L['camera_online']} (%)"],
            [
                [d["date"], d["rate"] if d["rate"] is not None else L["no_data"]]
                for d in online["daily"]
            ],
            [14, 20],
        )
    changes = data.get("changes")
    if changes is not None:
        chg = wb.create_sheet(L["changes_sheet"].translate(_BAD_TITLE)[:31])
        prev = changes["previous_period"]
        note = L["chg_intro" if changes["compared"] else "chg_no_previous"].format(prev=prev)
        chg_rows: list[list[Any]] = [
            [c["device"], c["change"], c["before"], c["after"], c["remark"]]
            for c in changes["items"]
        ]
        chg_rows += [[n["device"], L["chg_notes"], "", "", n["text"]] for n in changes["notes"]]
        chg_rows += [["", L["chg_notes"], "", "", text] for text in (note, L["chg_location_note"])]
        _sheet(
            chg,
            [L["device"], L["chg_change"], L["chg_before"], L["chg_after"], L["remark"]],
            chg_rows,
            [18, 16, 26, 26, 50],
        )
    dangers = data.get("dangers")
    if dangers is not None:
        dz = wb.create_sheet(L["dangers_sheet"].translate(_BAD_TITLE)[:31])
        _sheet(
            dz,
            [L["device"], L["item"], L["dz_finding"], L["dz_evidence"], L["dz_action"]],
            [[z["device"], z["item"], z["title"], z["evidence"], z["action"]] for z in dangers],
            [18, 14, 18, 60, 45],
        )
    wb.save(out)
    return out
