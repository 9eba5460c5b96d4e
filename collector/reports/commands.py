"""``fieldmon report fault|quarterly|review``: argument handling for the reports beside the
monthly one, kept in the reports package so the thin command line only dispatches here."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from collector.config import load_collector_config
from collector.store.db import ActionError, Store


def _formats(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def _fail(message: str) -> int:
    print(f"fieldmon: {message}", file=sys.stderr)
    return 2


def report_command(args: argparse.Namespace) -> int:
    """Exit 0 with the written paths (or the review state) on stdout; 2 for bad input."""
    from collector.reports.common import RenderError
    from collector.reports.fault import FaultReportError, build_fault, render_fault
    from collector.reports.quarterly import QuarterError, build_quarterly, render_quarterly
    from collector.reports.review import ReviewError

    cfg = load_collector_config(args.config)
    store = Store(cfg.database.url, cfg.tz)
    try:
        if args.cmd == "review":
            return _review(args, cfg, store)
        if args.cmd == "device":
            return _device(args, cfg, store)
        if args.cmd == "mail":
            return _mail(args, cfg, store)
        if args.cmd == "fault":
            data = build_fault(store, cfg, args.number, args.lang)
            paths = render_fault(data, _formats(args.format), args.out, args.template_dir)
        else:
            data = build_quarterly(store, cfg, args.site, args.quarter, args.lang)
            paths = render_quarterly(data, _formats(args.format), args.out, args.template_dir)
    except (FaultReportError, QuarterError, RenderError, ReviewError, ActionError) as exc:
        return _fail(str(exc))
    finally:
        store.close()
    for p in paths:
        print(p)
    return 0


def _review(args: argparse.Namespace, cfg: Any, store: Store) -> int:
    from checks.catalogue import load_catalogue
    from collector.reports.monthly import ReportError, build_monthly
    from collector.reports.review import parse_remarks, review

    now = datetime.now(UTC)
    try:
        data = build_monthly(
            store, cfg, load_catalogue(cfg.catalogue_dirs), args.site, args.month, args.lang, now
        )
    except ReportError as exc:
        return _fail(str(exc))
    row = review(
        store,
        data,
        "monthly",
        args.month,
        parse_remarks(args.remark),
        approve=args.approve,
        reviewer=args.reviewer,
        now=now,
    )
    state = (
        f"monthly {args.site} {args.month} ({args.lang}): version {row['version']} {row['state']}"
    )
    if row["state"] == "approved":
        state += f" by {row['reviewer']} at {row['approved_at']}"
    print(f"{state}; {len(row['remarks'])} remark(s)")
    return 0


def _device(args: argparse.Namespace, cfg: Any, store: Store) -> int:
    from checks.catalogue import load_catalogue
    from collector.reports.device import build_device, render_device
    from collector.reports.monthly import ReportError

    try:
        data = build_device(
            store,
            cfg,
            load_catalogue(cfg.catalogue_dirs),
            args.site,
            args.target,
            args.lang,
            args.first,
            args.last,
        )
        paths = render_device(data, _formats(args.format), args.out, args.template_dir)
    except ReportError as exc:
        return _fail(str(exc))
    for p in paths:
        print(p)
    return 0


def _mail(args: argparse.Namespace, cfg: Any, store: Store) -> int:
    from checks.catalogue import load_catalogue
    from collector.reports.mail import mail_monthly
    from collector.reports.monthly import ReportError

    try:
        paths, outcome = mail_monthly(
            store,
            cfg,
            load_catalogue(cfg.catalogue_dirs),
            args.site,
            args.month,
            args.lang,
            args.out,
        )
    except ReportError as exc:
        return _fail(str(exc))
    for p in paths:
        print(p)
    print(outcome)
    return 0
