"""Histories the reports read beside the monthly inspection record: where each device stood
(``target_locations``) and when its reachability changed (``transitions``).

Serials and firmware already have a history: the inspection record keeps each month's
``inventory.entity`` and ``firmware.version`` values. A location is an identity fact the agent
sends with its results, and the ``targets`` row keeps only the newest one, so the collector
snapshots it into ``target_locations`` on its housekeeping pass (and before a report is built):
a row is added only when a device's location differs from its last recorded one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, and_, insert, select

from collector.store.db import Store
from collector.store.schema import target_locations, targets, transitions
from collector.store.times import utc

#: The checks whose verdict says whether a device answers at all.
REACHABILITY = ("snmp.reachable", "host.reachable")


def location_of(facts: dict[str, object] | None) -> str:
    """The location an agent reported: the configured ``location``, else the device's own
    SNMP ``sysLocation``."""
    f = facts or {}
    return str(f.get("location") or f.get("sys_location") or "").strip()


def record_locations(store: Store, now: datetime, site: str | None = None) -> int:
    """Append a history row for every device whose current location differs from its last
    recorded one; returns how many were added. A device's first row dates from when it was
    first seen (its location has been known since then); later rows from ``now``, the moment
    the move was noticed."""
    q = select(targets.c.site, targets.c.target, targets.c.facts, targets.c.first_seen)
    if site is not None:
        q = q.where(targets.c.site == site)
    last = select(
        target_locations.c.site, target_locations.c.target, target_locations.c.location
    ).order_by(target_locations.c.site, target_locations.c.target, target_locations.c.since)
    if site is not None:
        last = last.where(target_locations.c.site == site)
    with store.engine.begin() as conn:
        latest: dict[tuple[str, str], str] = {}
        for row in conn.execute(last):
            latest[(str(row.site), str(row.target))] = str(row.location)
        new: list[dict[str, object]] = []
        for m in conn.execute(q).mappings():
            where = location_of(m["facts"])
            key = (str(m["site"]), str(m["target"]))
            if not where or latest.get(key) == where:
                continue
            since = now if key in latest else (utc(m["first_seen"]) or now)
            new.append({"site": key[0], "target": key[1], "location": where, "since": since})
        if new:
            conn.execute(insert(target_locations), new)
    return len(new)


def location_rows(store: Store, site: str, target: str | None = None) -> list[RowMapping]:
    """Every recorded location of a site's devices (or one device), oldest first."""
    cond = [target_locations.c.site == site]
    if target is not None:
        cond.append(target_locations.c.target == target)
    q = (
        select(target_locations)
        .where(and_(*cond))
        .order_by(target_locations.c.target, target_locations.c.since, target_locations.c.id)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(q).mappings())


def reachability_rows(
    store: Store, site: str, until: datetime, targets_: Sequence[str] | None = None
) -> list[RowMapping]:
    """Reachability verdict changes before ``until``, per device in time order: the raw
    record the online rate and availability figures are computed from."""
    cond = [
        transitions.c.site == site,
        transitions.c.check_key.in_(REACHABILITY),
        transitions.c.at < until,
    ]
    if targets_ is not None:
        cond.append(transitions.c.target.in_(list(targets_)))
    q = (
        select(transitions)
        .where(and_(*cond))
        .order_by(transitions.c.target, transitions.c.at, transitions.c.id)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(q).mappings())
