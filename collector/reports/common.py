"""What the quarterly and fault analysis reports share with the monthly one: local times,
SLA figures recomputed from an incident's stored clock, and one renderer for every kind.

Each report is a plain dict first (also its JSON output); HTML and PDF are drawn from that
same dict, so the figures in the three formats cannot disagree."""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import orjson
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    select_autoescape,
)
from sqlalchemy import RowMapping

from collector.incidents.sla import KINDS, SlaPolicy, deadlines
from collector.store.incident_ops import clock_of
from collector.store.times import utc

#: Formats the quarterly and fault reports are written in (XLSX is the monthly form's).
FORMATS = ("html", "json", "pdf")


class RenderError(ValueError):
    """A report that cannot be written as asked (unknown format, PDF typesetting failed)."""


def local(dt: datetime | None, tz: tzinfo) -> str | None:
    """A stored UTC time as the contract's wall clock: customers read local times."""
    value = utc(dt)
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else None


def duration(a: datetime | None, b: datetime | None) -> str:
    if a is None or b is None:
        return ""
    secs = int((b - a).total_seconds())
    hours, rest = divmod(secs, 3600)
    return f"{hours}h {rest // 60:02d}m"


def sla_figures(
    row: RowMapping, policy: SlaPolicy, now: datetime, tz: tzinfo
) -> list[dict[str, Any]]:
    """Each deadline the incident's level carries, with when it was due, when it was met and
    the verdict (met / missed / pending), recomputed from the stored clock with the same pure
    functions the collector escalates by, so the report agrees with the alarms people got."""
    clock = clock_of(row)
    out: list[dict[str, Any]] = []
    dues = deadlines(clock, policy, now)
    for kind in KINDS:
        due = dues.get(kind)
        if due is None:
            continue
        done = clock.done_at(kind)
        if done is not None:
            verdict = "met" if done <= due else "missed"
        else:
            verdict = "missed" if now > due else "pending"
        out.append(
            {"deadline": kind, "due": local(due, tz), "done": local(done, tz), "verdict": verdict}
        )
    return out


def html_env(template_dir: Path | None = None) -> Environment:
    """Jinja2 for the HTML reports: autoescaped, so device and incident text stays text. A
    restyled folder's templates are used first, the packaged ones for the rest."""
    package = PackageLoader("collector.reports", "templates")
    loader: BaseLoader = (
        ChoiceLoader([FileSystemLoader(template_dir), package]) if template_dir else package
    )
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    return env


def html_style(template_dir: Path | None = None) -> dict[str, Any]:
    """style.json as the HTML views use it: the colours and company name as written, and the
    logo inlined as a data: URI so the HTML file stays one self-contained file."""
    from collector.reports.pdf import load_style, package_dir

    style = dict(load_style(template_dir))
    logo = str(style.get("logo") or "")
    style["logo_uri"] = ""
    if logo:
        for folder in (template_dir, package_dir()):
            path = folder / logo if folder is not None else None
            if path is not None and path.is_file():
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                blob = base64.b64encode(path.read_bytes()).decode("ascii")
                style["logo_uri"] = f"data:{mime};base64,{blob}"
                break
    return style


def render_html(data: Mapping[str, Any], kind: str, template_dir: Path | None = None) -> str:
    """One report as HTML from ``{kind}.html.j2`` with the labels of its language and the
    restyling of ``template_dir`` (or the packaged style)."""
    template = html_env(template_dir).get_template(f"{kind}.html.j2")
    return template.render(r=data, L=data["labels"], style=html_style(template_dir))


def pct(value: float | None, none: str) -> str:
    """A rate as every format prints it ("99.52%", "100%"), or the words for "no data":
    a figure with nothing behind it is never shown as 0 %."""
    return none if value is None else f"{value:g}%"


def safe_stem(stem: str) -> str:
    """A file name from report identity (site, device, incident): anything but letters (any
    script), digits and ``.-_@+`` becomes "_", so a device named ``a/../b`` or ``<x>`` cannot
    pick where the file is written."""
    return re.sub(r"[^\w.@+-]+", "_", stem).lstrip(".") or "report"


def render_report(
    data: Mapping[str, Any],
    formats: list[str],
    out_dir: Path,
    *,
    kind: str,
    stem: str,
    template_dir: Path | None = None,
    images: Mapping[str, bytes] | None = None,
) -> list[Path]:
    """Write ``data`` as ``{stem}.{fmt}`` using the ``{kind}.typ`` / ``{kind}.html.j2``
    templates. Typst is imported only for PDF, so HTML/JSON work without it."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise RenderError(f"format(s) {', '.join(bad)} not supported (use {', '.join(FORMATS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(stem)
    written: list[Path] = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "json":
            body = {k: v for k, v in data.items() if k != "labels"}
            path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        elif fmt == "pdf":
            from collector.reports.pdf import PdfError, render_pdf

            try:
                render_pdf(
                    data,
                    path,
                    images=images or {},
                    template_dir=template_dir,
                    template_name=f"{kind}.typ",
                )
            except PdfError as exc:
                raise RenderError(str(exc)) from exc
        else:
            path.write_text(render_html(data, kind, template_dir), encoding="utf-8")
        written.append(path)
    return written
