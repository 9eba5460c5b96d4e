"""Checklist items the collector concludes from other results, not measured by any agent.

``sec.config_unplanned`` (security): a configuration change made outside every maintenance
window. The agent's configuration backup reports ``config.changed`` (``changed`` with the
masked diff, ``unchanged``, or ``baseline`` for the first backup) but cannot tell planned work
from an intrusion, because only the collector knows the windows: the ``[[maintenance]]``
entries of collector.toml and the one-off windows engineers enter in the console or API (the
same two sources that keep incidents from opening). Deriving the item here means windows are
configured once. For every ``config.changed`` result the collector adds, on the same target
and at the same observed time:

* ``unplanned`` — changed, and no window covered the time of the backup that found the
  change (the catalogue makes this a fault, so an incident opens at the item's level);
* ``planned`` — changed inside a window, whose reason is quoted;
* ``unchanged`` / ``baseline`` — passed through, so the item is measured at every backup and
  an ``unplanned`` incident resolves once backups show no further change.

The time judged is the backup's observation time: the change happened at the latest then
(and after the previous backup). A change made inside a window but first seen by a backup
after it ended is therefore ``unplanned``; running the inspection run (or ``agent inspect``)
before a window closes avoids that, and the evidence names both times for the reviewer.

The derived result gets a msg_id computed from the source result's, so a redelivered message
is deduplicated for both. Results an agent sends for a derived check are dropped: only the
collector may conclude them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from checks.thresholds import evaluate
from collector.incidents.rules import Rules
from collector.store.db import MAX_CLOCK_AHEAD, Store
from collector.store.schema import maintenance
from collector.store.times import utc

log = logging.getLogger(__name__)

SOURCE_CHECK = "config.changed"
CHECK = "sec.config_unplanned"
#: Every check id this module derives (an agent's results for them are dropped).
DERIVED = frozenset({CHECK})
#: Namespace of the derived results' msg_ids (uuid5 of the source msg_id and the check).
_MSG_NS = uuid.UUID("5d0c6f0e-2a4b-4e54-9a51-6b1f0f3c9e27")
MAX_SUMMARY = 1024


@dataclass(frozen=True, slots=True)
class WindowHit:
    """The maintenance window covering a moment: where it is defined and why it was set."""

    source: str  # "collector.toml" or "console/API"
    reason: str
    start: datetime | None = None
    end: datetime | None = None


#: (site, target, when) -> the window covering that moment on that target, or None.
WindowLookup = Callable[[str, str, datetime], WindowHit | None]


def derived_msg_id(source_msg_id: str, check: str) -> str:
    """Stable per source result, so redeliveries deduplicate the derived result too."""
    return uuid.uuid5(_MSG_NS, f"{source_msg_id}/{check}").hex


def _local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).isoformat(timespec="seconds")


def unplanned_change(
    source: Result, window: WindowHit | None, dc: DeviceClass, tz: tzinfo
) -> Result | None:
    """The ``sec.config_unplanned`` result for one ``config.changed`` result; pure.

    ``window`` is the maintenance window covering ``source.observed_at`` (None: none did).
    None is returned when there is nothing to conclude: the class has no such item, or the
    source is not a measurement (UNKNOWN: the backup failed, so nothing is known).
    """
    item = dc.item(CHECK)
    if item is None or source.check != SOURCE_CHECK or source.status == Status.UNKNOWN:
        return None
    if source.value is None:
        return None
    seen = _local(source.observed_at, tz)
    facts: dict[str, str] = {"change_seen_at": seen}
    for key in ("config_hash", "previous_hash", "lines_added", "lines_removed"):
        if source.facts.get(key):
            facts[key] = source.facts[key]
    if source.value != "changed":
        value = str(source.value)
        summary = f"no configuration change in the backup of {seen} ({value})"
    else:
        digest = source.facts.get("config_hash", "")
        before = source.facts.get("previous_hash", "")
        delta = ""
        if digest:
            delta = f"sha256 {digest[:12]}…" + (f" (was {before[:12]}…)" if before else "")
        counts = ""
        if "lines_added" in source.facts or "lines_removed" in source.facts:
            added = source.facts.get("lines_added", "?")
            removed = source.facts.get("lines_removed", "?")
            counts = f"+{added} -{removed} lines"
        what = ", ".join(p for p in (delta, counts) if p)
        change = f"configuration change found by the backup of {seen}" + (
            f" ({what})" if what else ""
        )
        if window is None:
            value = "unplanned"
            facts["maintenance_window"] = "none"
            summary = f"{change} outside any maintenance window"
        else:
            value = "planned"
            reason = window.reason or "no reason given"
            facts["maintenance_window"] = f"{window.source}: {reason}"
            span = ""
            if window.start is not None and window.end is not None:
                span = f" {_local(window.start, tz)} – {_local(window.end, tz)}"
            summary = f"{change} inside the maintenance window{span} ({window.source}): {reason}"
        detail = source.summary.strip()
        if detail:
            summary = f"{summary}; {detail}"
    return Result(
        target=source.target,
        target_class=source.target_class,
        check=CHECK,
        status=evaluate(value, item.threshold),
        value=value,
        summary=summary[:MAX_SUMMARY],
        observed_at=source.observed_at,
        facts=facts,
        msg_id=derived_msg_id(source.msg_id, CHECK),
    )


def derive(
    site: str,
    results: Sequence[Result],
    classes: Mapping[str, DeviceClass],
    window_at: WindowLookup,
    tz: tzinfo,
    now: datetime,
) -> list[Result]:
    """``results`` with agent-sent derived checks dropped and derived results added after
    their sources. ``window_at`` is only asked for changes, so the common batch costs
    nothing. A result stamped further ahead than the store accepts is judged at ``now``,
    the time the store will record it at."""
    out: list[Result] = []
    for r in results:
        if r.check in DERIVED:
            log.warning(
                "dropped %s for %s/%s sent by an agent: only the collector derives it",
                r.check,
                site,
                r.target,
            )
            continue
        out.append(r)
        if r.check != SOURCE_CHECK:
            continue
        dc = classes.get(r.target_class)
        if dc is None:
            continue
        window = None
        if r.value == "changed" and r.status != Status.UNKNOWN:
            when = now if r.observed_at - now > MAX_CLOCK_AHEAD else r.observed_at
            window = window_at(site, r.target, when)
        derived = unplanned_change(r, window, dc, tz)
        if derived is not None:
            out.append(derived)
    return out


def window_lookup(store: Store, rules: Rules) -> WindowLookup:
    """Windows from collector.toml (``rules``), then the ones stored by the console/API."""

    def window_at(site: str, target: str, when: datetime) -> WindowHit | None:
        configured = rules.configured_window(site, target, when)
        if configured is not None:
            return WindowHit("collector.toml", configured.reason, configured.start, configured.end)
        query = (
            select(maintenance.c.reason, maintenance.c.starts_at, maintenance.c.ends_at)
            .where(
                and_(
                    maintenance.c.site == site,
                    or_(maintenance.c.target == "", maintenance.c.target == target),
                    maintenance.c.starts_at <= when,
                    maintenance.c.ends_at > when,
                )
            )
            .limit(1)
        )
        with store.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return WindowHit("console/API", str(row[0] or ""), utc(row[1]), utc(row[2]))

    return window_at


def add_derived(
    store: Store,
    classes: Mapping[str, DeviceClass],
    rules: Rules,
    site: str,
    results: list[Result],
    now: datetime,
) -> list[Result]:
    """The ingest hook: :func:`derive` with the collector's windows and time zone.

    Database errors propagate (the message is then retried, like any storing failure); any
    other failure is logged and the agent's results go on without the derived ones, so a
    fault here can never cost a measured result.
    """
    if not any(r.check == SOURCE_CHECK or r.check in DERIVED for r in results):
        return results
    try:
        return derive(site, results, classes, window_lookup(store, rules), store.tz, now)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("deriving %s for site %s failed; results stored without it", CHECK, site)
        return results
