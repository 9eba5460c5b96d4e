"""Incident rows and their timelines, written inside the caller's transaction.

Everything that changes an incident goes through :class:`IncidentOps`, so the rules that keep
the tracking record honest live in one place: exactly one open incident per (target, check)
(also enforced by a unique index), every change appended to a hash-chained timeline, children
of a device that is down recorded as its impact instead of incidents of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnClause,
    Connection,
    RowMapping,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)

from checks.status import Status
from collector.incidents.engine import (
    REACHABILITY,
    Decision,
    OpenIncident,
    Policy,
    incident_number,
)
from collector.incidents.sla import Clock, Pause, SlaPolicy
from collector.store.fastsql import TimeTexts, execute_many, run
from collector.store.schema import (
    current,
    incident_events,
    incident_impacts,
    incidents,
    targets,
    transitions,
)
from collector.store.times import utc

GENESIS = "0" * 64
SYSTEM = "fieldmon"


def event_hash(
    prev_hash: str,
    incident_id: int,
    at: datetime | None,
    kind: str,
    author: str,
    text: str,
    data: Mapping[str, Any] | Iterable[Any],
) -> str:
    body = orjson.dumps(
        [prev_hash, incident_id, at.isoformat() if at else None, kind, author, text, data],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


@dataclass(slots=True)
class Raised:
    """Something that must be told to people (a notification), produced inside a transaction
    and handed to the notifier only after it commits."""

    number: str
    kind: str  # opened, escalated, breached, resolved
    site: str
    target: str
    level: int
    tier: int
    title: str
    summary: str
    at: datetime
    deadline: datetime | None = None


@dataclass(slots=True)
class IngestStats:
    accepted: int = 0
    duplicates: int = 0
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    attached: int = 0
    suppressed: int = 0
    raised: list[Raised] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OpenRow:
    """An open incident as :meth:`IncidentOps.open_row_for` read it: valid only until
    anything changes it, so it is handed on at once, never kept."""

    incident: OpenIncident
    row: dict[str, Any]
    #: The hash its timeline ends with (None: no entry yet).
    newest_hash: str | None


def clock_of(row: RowMapping) -> Clock:
    return Clock(
        opened_at=_u(row["opened_at"]),
        level=int(row["level"]),
        pauses=tuple(
            Pause(_u(datetime.fromisoformat(p[0])), _opt(p[1]), str(p[2]) if len(p) > 2 else "")
            for p in (row["pauses"] or [])
        ),
        responded_at=utc(row["responded_at"]),
        onsite_at=utc(row["onsite_at"]),
        restored_at=utc(row["restored_at"]),
        resolved_at=utc(row["resolved_at"]),
    )


def _u(dt: datetime | None) -> datetime:
    value = utc(dt)
    assert value is not None
    return value


def _opt(text: str | None) -> datetime | None:
    return _u(datetime.fromisoformat(text)) if text else None


#: ``state = 'open'`` written into the SQL, not bound: only then may a query use the partial
#: unique index of open incidents (``ux_incidents_open``, whose condition is that text). With
#: a bound value SQLite took the index on ``state`` and walked every open incident.
OPEN: ColumnClause[str] = literal_column("'open'")

# Hot lookups of the ingest path, built once: constructing a statement and computing its
# cache key on every call cost more than running it.
_OPEN_FOR = select(
    incidents.c.id,
    incidents.c.level,
    incidents.c.occurrences,
    incidents.c.flapping,
    incidents.c.number,
).where(
    and_(
        incidents.c.site == bindparam("p_site"),
        incidents.c.target == bindparam("p_target"),
        incidents.c.check_key == bindparam("p_key"),
        incidents.c.state == OPEN,
    )
)
_CHANGES_WITHIN = select(func.count()).where(
    and_(
        transitions.c.site == bindparam("p_site"),
        transitions.c.target == bindparam("p_target"),
        transitions.c.check_key == bindparam("p_key"),
        transitions.c.at >= bindparam("p_since"),
        transitions.c.from_status.is_not(None),
    )
)
_FACTS_OF = select(targets.c.facts).where(
    and_(targets.c.site == bindparam("p_site"), targets.c.target == bindparam("p_target"))
)
_LAST_HASH = (
    select(incident_events.c.hash)
    .where(incident_events.c.incident_id == bindparam("p_id"))
    .order_by(incident_events.c.id.desc())
    .limit(1)
)
_INSERT_INCIDENT = insert(incidents)
_INSERT_EVENT = insert(incident_events)
_SET_NUMBER = (
    update(incidents)
    .where(incidents.c.id == bindparam("p_id"))
    .values(number=bindparam("p_number"))
)
_ROW = select(incidents).where(incidents.c.id == bindparam("p_id"))
_ROW_KEYS = tuple(c.key for c in incidents.c)
#: The hash an incident's timeline ends with (NULL while it has no entry), as a column.
_NEWEST_HASH = (
    select(incident_events.c.hash)
    .where(incident_events.c.incident_id == incidents.c.id)
    .order_by(incident_events.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
#: An open incident's whole row and its newest timeline hash: what resolving it reads, in
#: one query instead of three (see :meth:`IncidentOps.open_row_for`).
_OPEN_ROW = select(incidents, _NEWEST_HASH).where(
    and_(
        incidents.c.site == bindparam("p_site"),
        incidents.c.target == bindparam("p_target"),
        incidents.c.check_key == bindparam("p_key"),
        incidents.c.state == OPEN,
    )
)
_RESOLVE = (
    update(incidents)
    .where(incidents.c.id == bindparam("p_id"))
    .values(
        state="resolved",
        resolved_at=bindparam("p_at"),
        last_seen_at=bindparam("p_at"),
        pauses=bindparam("p_pauses", type_=incidents.c.pauses.type),
        analysis_due=bindparam("p_due"),
    )
)
#: Targets of a site that name a parent, and the parent: the JSON path is evaluated by the
#: database, so finding a device's children does not decode every target's facts in Python.
_PARENT = targets.c.facts["parent"].as_string()
_CHILDREN = select(targets.c.target, _PARENT).where(
    and_(targets.c.site == bindparam("p_site"), _PARENT.is_not(None), _PARENT != "")
)
_UNCLEARED_IMPACTS = select(incident_impacts.c.target, incident_impacts.c.check_key).where(
    and_(
        incident_impacts.c.incident_id == bindparam("p_id"),
        incident_impacts.c.cleared_at.is_(None),
    )
)
_IMPACT_WHERE = and_(
    incident_impacts.c.incident_id == bindparam("p_id"),
    incident_impacts.c.target == bindparam("p_target"),
    incident_impacts.c.check_key == bindparam("p_key"),
)
_IMPACT = select(incident_impacts.c.cleared_at).where(_IMPACT_WHERE)
_IMPACT_AGAIN = update(incident_impacts).where(_IMPACT_WHERE).values(cleared_at=None)
_IMPACT_DEVICE = (
    select(incident_impacts.c.check_key)
    .where(
        and_(
            incident_impacts.c.incident_id == bindparam("p_id"),
            incident_impacts.c.target == bindparam("p_target"),
        )
    )
    .limit(1)
)
_INSERT_IMPACT = insert(incident_impacts)
_IMPACT_COUNT_UP = (
    update(incidents)
    .where(incidents.c.id == bindparam("p_id"))
    .values(impact_count=incidents.c.impact_count + 1)
)
_REPEAT = (
    update(incidents)
    .where(incidents.c.id == bindparam("p_id"))
    .values(
        last_seen_at=bindparam("p_at"),
        occurrences=incidents.c.occurrences + 1,
        summary=bindparam("p_summary"),
    )
)


def _nothing() -> None:
    return None


def _not_held(site: str, target: str) -> dict[str, Any] | None:
    return None


def _no_parents_held(site: str) -> dict[str, str] | None:
    return None


def _ignore_change(site: str, target: str, key: str, is_open: bool) -> None:
    return None


class IncidentOps:
    def __init__(
        self,
        conn: Connection,
        before_read: Callable[[], None] = _nothing,
        held_facts: Callable[[str, str], dict[str, Any] | None] = _not_held,
        held_parents: Callable[[str], dict[str, str] | None] = _no_parents_held,
        open_changed: Callable[[str, str, str, bool], None] = _ignore_change,
        defer_events: bool = False,
    ) -> None:
        self.conn = conn
        #: A target's facts as the caller holds them in memory (None: not held, read the
        #: row), exactly what the row holds once the caller's pending writes are out.
        self.held_facts = held_facts
        #: Called before reading targets, current or transitions: a caller that holds
        #: writes to those tables back (the ingest path's BatchWriter) writes them out here,
        #: so every lookup sees the same state it would see result by result.
        self.before_read = before_read
        #: {target: parent name or ""} of every target of a site the caller holds in memory
        #: (None: none held). Finding a device's children then needs no flush: the caller's
        #: pending writes touch only the targets it holds.
        self.held_parents = held_parents
        #: Told of every incident this object opens (True) or takes out of "open" (False),
        #: as (site, target, check key), so a caller can keep its view of open incidents.
        self.open_changed = open_changed
        #: Hash of the newest timeline entry this transaction wrote, per incident: the next
        #: entry chains onto it without reading it back.
        self._last_hash: dict[int, str] = {}
        #: :meth:`_stored_parents`' rows, per site.
        self._parents_read: dict[str, list[tuple[Any, ...]]] = {}
        #: Timeline entries are held here and written by :meth:`write_events` (one
        #: executemany) instead of one INSERT each. Only for a caller that calls it before
        #: its transaction ends and reads timelines only through this object: the hash
        #: chain itself never needs a held entry back (:attr:`_last_hash` has its hash).
        self.defer_events = defer_events
        self._events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ lookups

    def open_for(self, site: str, target: str, key: str) -> OpenIncident | None:
        row = run(self.conn, _OPEN_FOR, {"p_site": site, "p_target": target, "p_key": key}).first()
        if row is None:
            return None
        return OpenIncident(int(row[0]), int(row[1]), int(row[2]), bool(row[3]), str(row[4]))

    def open_row_for(self, site: str, target: str, key: str) -> OpenRow | None:
        """:meth:`open_for` with what :meth:`resolve` would read next (the whole row, the
        newest timeline hash), for a result that may resolve the incident."""
        found = run(self.conn, _OPEN_ROW, {"p_site": site, "p_target": target, "p_key": key})
        values = found.first()
        if values is None:
            return None
        row = dict(zip(_ROW_KEYS, values[:-1], strict=True))
        inc = OpenIncident(
            int(row["id"]),
            int(row["level"]),
            int(row["occurrences"]),
            bool(row["flapping"]),
            str(row["number"]),
        )
        return OpenRow(inc, row, values[-1])

    def row(self, incident_id: int) -> RowMapping:
        return self.conn.execute(_ROW, {"p_id": incident_id}).mappings().one()

    def _row(self, incident_id: int) -> dict[str, Any]:
        """:meth:`row` as a plain dict, through the cheaper prepared path (hot on ingest)."""
        found = run(self.conn, _ROW, {"p_id": incident_id}).first()
        if found is None:
            raise LookupError(f"no incident with id {incident_id}")
        return dict(zip(_ROW_KEYS, found, strict=True))

    def parent_of(self, site: str, target: str) -> str | None:
        facts = self.held_facts(site, target)
        if facts is None:
            # A target the caller does not hold has no pending writes either.
            facts = run(self.conn, _FACTS_OF, {"p_site": site, "p_target": target}).scalar()
        parent = (facts or {}).get("parent")
        return str(parent) if parent else None

    def parent_down(self, site: str, target: str) -> OpenIncident | None:
        """The nearest ancestor with an open "device gone" incident (cycle-safe)."""
        seen = {target}
        node = self.parent_of(site, target)
        while node and node not in seen and len(seen) < 16:
            seen.add(node)
            for key in REACHABILITY:
                inc = self.open_for(site, node, key)
                if inc is not None:
                    return inc
            node = self.parent_of(site, node)
        return None

    def descendants(self, site: str, target: str) -> set[str]:
        held = self.held_parents(site)
        if held is None:
            self.before_read()
            rows = run(self.conn, _CHILDREN, {"p_site": site}).rows
            held = {}
        else:
            rows = self._stored_parents(site)
        children: dict[str, list[str]] = {}
        for name, parent in rows:
            if str(name) not in held:
                children.setdefault(str(parent), []).append(str(name))
        for name, parent in held.items():
            if parent:
                children.setdefault(parent, []).append(name)
        out: set[str] = set()
        todo = [target]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in out and child != target:
                    out.add(child)
                    todo.append(child)
        return out

    def _stored_parents(self, site: str) -> list[tuple[Any, ...]]:
        """(target, parent) of the site's stored targets that name a parent, read once per
        site by this object instead of once per device going down (the query reads every
        target of the site). Only for the site whose targets the caller holds: only their
        rows can change meanwhile, and for those the caller's values count, not these."""
        rows = self._parents_read.get(site)
        if rows is None:
            rows = self._parents_read[site] = run(self.conn, _CHILDREN, {"p_site": site}).rows
        return rows

    def changes_within(self, site: str, target: str, key: str, since: datetime) -> int:
        self.before_read()
        return self.stored_changes_within(site, target, key, since)

    def stored_changes_within(self, site: str, target: str, key: str, since: datetime) -> int:
        """:meth:`changes_within` over the rows written so far, without ``before_read``."""
        return int(
            run(
                self.conn,
                _CHANGES_WITHIN,
                {"p_site": site, "p_target": target, "p_key": key, "p_since": since},
            ).scalar()
        )

    # ------------------------------------------------------------------ timeline

    def event(
        self,
        incident_id: int,
        at: datetime,
        kind: str,
        author: str,
        text: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        prev_hash = self._last_hash.get(incident_id)
        if prev_hash is None:
            prev = run(self.conn, _LAST_HASH, {"p_id": incident_id}).scalar()
            prev_hash = prev or GENESIS
        body = dict(data or {})
        digest = event_hash(prev_hash, incident_id, at, kind, author, text, body)
        entry = {
            "incident_id": incident_id,
            "at": at,
            "kind": kind,
            "author": author,
            "text": text,
            "data": body,
            "prev_hash": prev_hash,
            "hash": digest,
        }
        if self.defer_events:
            self._events.append(entry)
        else:
            run(self.conn, _INSERT_EVENT, entry)
        self._last_hash[incident_id] = digest

    def write_events(self, times: TimeTexts | None = None) -> None:
        """Write the timeline entries held back (``defer_events``), in order."""
        if self._events:
            events, self._events = self._events, []
            execute_many(self.conn, _INSERT_EVENT, events, times)

    # ------------------------------------------------------------------ changes

    def open(
        self,
        *,
        site: str,
        target: str,
        key: str,
        check: str,
        item: str,
        level: int,
        title: str,
        summary: str,
        at: datetime,
        stats: IngestStats,
        source: str = "auto",
        author: str = SYSTEM,
        device_class: str = "",
        vendor: str = "",
        caller: Mapping[str, str] | None = None,
        flapping: bool = False,
        data: Mapping[str, Any] | None = None,
    ) -> OpenIncident:
        new_id = run(
            self.conn,
            _INSERT_INCIDENT,
            {
                "site": site,
                "target": target,
                "check_key": key,
                "check": check,
                "item": item,
                "device_class": device_class,
                "vendor": vendor,
                "level": level,
                "state": "open",
                "source": source,
                "title": title,
                "summary": summary,
                "opened_at": at,
                "last_seen_at": at,
                "occurrences": 1,
                "tier": 1,
                "flapping": flapping,
                "pauses": [],
                "breaches": [],
                "caller": dict(caller or {}),
                "impact_count": 0,
            },
        ).lastrowid
        assert new_id is not None
        inc_id = int(new_id)
        number = incident_number(inc_id, at)
        run(self.conn, _SET_NUMBER, {"p_id": inc_id, "p_number": number})
        self._last_hash[inc_id] = GENESIS  # a new incident has an empty timeline
        self.open_changed(site, target, key, True)
        self.event(
            inc_id,
            at,
            "opened",
            author,
            f"opened at level {level}: {summary or title}",
            {**(data or {}), "level": level, "source": source},
        )
        if flapping:
            self.event(inc_id, at, "flapping", SYSTEM, "the check is flapping")
        stats.opened.append(number)
        stats.raised.append(Raised(number, "opened", site, target, level, 1, title, summary, at))
        return OpenIncident(inc_id, level, 1, flapping, number)

    def repeat(self, inc: OpenIncident, at: datetime, summary: str, mark_flapping: bool) -> None:
        if not mark_flapping:
            run(self.conn, _REPEAT, {"p_id": inc.id, "p_at": at, "p_summary": summary})
            return
        values: dict[str, Any] = {
            "last_seen_at": at,
            "occurrences": incidents.c.occurrences + 1,
            "summary": summary,
            "flapping": True,
        }
        self.event(inc.id, at, "flapping", SYSTEM, "the check is flapping; kept open")
        self.conn.execute(update(incidents).where(incidents.c.id == inc.id).values(**values))

    def mark_flapping(self, inc: OpenIncident, at: datetime) -> None:
        self.conn.execute(update(incidents).where(incidents.c.id == inc.id).values(flapping=True))
        self.event(inc.id, at, "flapping", SYSTEM, "the check is flapping; kept open")

    def resolve(
        self,
        inc_id: int,
        at: datetime,
        text: str,
        stats: IngestStats,
        author: str = SYSTEM,
        data: Mapping[str, Any] | None = None,
        analysis_within: timedelta = timedelta(days=3),
        current: OpenRow | None = None,
    ) -> None:
        """``current``: the incident as :meth:`open_row_for` just read it, if it did."""
        if current is not None and current.incident.id == inc_id:
            row = current.row
            self._last_hash.setdefault(inc_id, current.newest_hash or GENESIS)
        else:
            row = self._row(inc_id)
        if row["state"] != "open":
            return
        run(
            self.conn,
            _RESOLVE,
            {
                "p_id": inc_id,
                "p_at": at,
                "p_pauses": _close_pauses(row["pauses"], at),
                "p_due": at + analysis_within,
            },
        )
        self.event(inc_id, at, "resolved", author, text, data)
        self.open_changed(str(row["site"]), str(row["target"]), str(row["check_key"]), False)
        stats.resolved.append(str(row["number"]))
        stats.raised.append(
            Raised(
                str(row["number"]),
                "resolved",
                row["site"],
                row["target"],
                int(row["level"]),
                int(row["tier"]),
                row["title"],
                text,
                at,
            )
        )

    def attach(self, parent: OpenIncident, site: str, target: str, key: str, at: datetime) -> bool:
        """Record ``target``'s failure as impact of the parent's incident; True if new.

        A storm behind one switch calls this once per device, so it runs prepared statements
        and counts devices as they are added instead of recounting every impact."""
        ids = {"p_id": parent.id, "p_target": target}
        exists = run(self.conn, _IMPACT, {**ids, "p_key": key}).first()
        if exists is not None:
            if exists[0] is not None:
                run(self.conn, _IMPACT_AGAIN, {**ids, "p_key": key})
            return False
        # The count is of devices, not checks: it grows only with a device not yet listed.
        known_device = run(self.conn, _IMPACT_DEVICE, ids).first()
        run(
            self.conn,
            _INSERT_IMPACT,
            {"incident_id": parent.id, "target": target, "check_key": key, "first_at": at},
        )
        if known_device is None:
            run(self.conn, _IMPACT_COUNT_UP, {"p_id": parent.id})
        return True

    def clear_impact(self, site: str, target: str, key: str, at: datetime) -> None:
        """A child recovered while its parent's incident is open."""
        open_ids = select(incidents.c.id).where(
            and_(incidents.c.site == site, incidents.c.state == "open")
        )
        self.conn.execute(
            update(incident_impacts)
            .where(
                and_(
                    incident_impacts.c.incident_id.in_(open_ids),
                    incident_impacts.c.target == target,
                    incident_impacts.c.check_key == key,
                    incident_impacts.c.cleared_at.is_(None),
                )
            )
            .values(cleared_at=at)
        )

    def merge_children(
        self, parent: OpenIncident, site: str, parent_target: str, at: datetime, policy: Policy
    ) -> None:
        """Fold incidents that children opened shortly before their parent went down."""
        kids = self.descendants(site, parent_target)
        if not kids:
            return
        rows = (
            self.conn.execute(
                select(incidents).where(
                    and_(
                        incidents.c.site == site,
                        incidents.c.state == "open",
                        incidents.c.target.in_(kids),
                        incidents.c.opened_at >= at - policy.dependency_window,
                    )
                )
            )
            .mappings()
            .all()
        )
        for r in rows:
            self.attach(parent, site, r["target"], r["check_key"], _u(r["opened_at"]))
            self.conn.execute(
                update(incidents)
                .where(incidents.c.id == r["id"])
                .values(state="merged", merged_into=parent.id, resolved_at=at)
            )
            self.open_changed(site, str(r["target"]), str(r["check_key"]), False)
            self.event(
                int(r["id"]),
                at,
                "merged",
                SYSTEM,
                f"part of {parent.number}: {parent_target} is down",
                {"into": parent.number},
            )
        if rows:
            self.event(
                parent.id,
                at,
                "impact",
                SYSTEM,
                f"{len(rows)} earlier incident(s) of devices behind {parent_target} folded in",
                {"merged": [str(r["number"]) for r in rows]},
            )

    def still_failing_children(self, inc_id: int, policy: Policy) -> list[RowMapping]:
        """Impacted children whose current status still fails (for their own incidents)."""
        rows = run(self.conn, _UNCLEARED_IMPACTS, {"p_id": inc_id}).rows
        out: list[RowMapping] = []
        if not rows:
            return out  # the common case: nothing depended on it
        self.before_read()
        failing = [int(s) for s in policy.open_on]
        site = self.row(inc_id)["site"]
        for target, key in rows:
            cur = (
                self.conn.execute(
                    select(current).where(
                        and_(
                            current.c.site == site,
                            current.c.target == target,
                            current.c.check_key == key,
                            current.c.status.in_(failing),
                        )
                    )
                )
                .mappings()
                .first()
            )
            if cur is not None:
                out.append(cur)
        return out

    def apply(
        self,
        decision: Decision,
        inc: OpenIncident | None,
        *,
        site: str,
        target: str,
        key: str,
        check: str,
        item: str,
        level: int,
        title: str,
        summary: str,
        at: datetime,
        stats: IngestStats,
        policy: Policy,
        parent: OpenIncident | None = None,
        device_class: str = "",
        vendor: str = "",
        source: str = "auto",
        data: Mapping[str, Any] | None = None,
        current: OpenRow | None = None,
    ) -> None:
        """Carry out a decision of the engine for one (target, check). ``current``: ``inc``
        as :meth:`open_row_for` just read it, if it did."""
        act = decision.action
        if act == "open":
            new = self.open(
                site=site,
                target=target,
                key=key,
                check=check,
                item=item,
                level=level,
                title=title,
                summary=summary,
                at=at,
                stats=stats,
                source=source,
                device_class=device_class,
                vendor=vendor,
                flapping=decision.mark_flapping,
                data=data,
            )
            if check in REACHABILITY:
                self.merge_children(new, site, target, at, policy)
        elif act == "repeat" and inc is not None:
            self.repeat(inc, at, summary, decision.mark_flapping)
        elif act == "hold" and inc is not None and decision.mark_flapping:
            self.mark_flapping(inc, at)
        elif act == "resolve" and inc is not None:
            self.resolve(
                inc.id,
                at,
                f"resolved automatically: {decision.reason}",
                stats,
                data=data,
                current=current,
            )
            for child in self.still_failing_children(inc.id, policy):
                self._open_for_child(child, inc, at, stats, policy)
        elif act == "attach" and parent is not None:
            if self.attach(parent, site, target, key, at):
                stats.attached += 1
        elif act == "suppress":
            stats.suppressed += 1
        elif act == "none" and decision.mark_flapping and inc is not None:
            self.mark_flapping(inc, at)

    def _open_for_child(
        self,
        child: RowMapping,
        parent: OpenIncident,
        at: datetime,
        stats: IngestStats,
        policy: Policy,
    ) -> None:
        if self.open_for(child["site"], child["target"], child["check_key"]) is not None:
            return
        self.before_read()
        trow = self.conn.execute(
            select(targets.c["class"], targets.c.facts).where(
                and_(targets.c.site == child["site"], targets.c.target == child["target"])
            )
        ).first()
        title = f"{child['target']}: {child['check']}" + (
            f" ({child['item']})" if child["item"] else ""
        )
        level = policy.level_overrides.get(child["check"], 3)
        self.open(
            site=child["site"],
            target=child["target"],
            key=child["check_key"],
            check=child["check"],
            item=child["item"],
            level=level,
            title=title,
            summary=f"still failing after {parent.number} was resolved: {child['summary']}",
            at=at,
            stats=stats,
            device_class=str(trow[0]) if trow else "",
            vendor=str((trow[1] or {}).get("vendor", "")) if trow else "",
            data={"after": parent.number, "status": Status(child["status"]).name},
        )

    # ------------------------------------------------------------------ SLA

    def escalate(self, row: RowMapping, sla: SlaPolicy, now: datetime, stats: IngestStats) -> None:
        """Raise tier and breach escalations that are due; each is recorded once."""
        from collector.incidents.sla import breached, deadlines, tier

        clock = clock_of(row)
        inc_id, number = int(row["id"]), str(row["number"])
        new_tier = tier(clock, sla, now)
        due = deadlines(clock, sla, now)
        if new_tier > int(row["tier"]):
            self.conn.execute(
                update(incidents).where(incidents.c.id == inc_id).values(tier=new_tier)
            )
            who = {2: "the named response owner", 3: "the product maintainer"}[new_tier]
            self.event(
                inc_id,
                now,
                "escalated",
                SYSTEM,
                f"escalated to tier {new_tier} ({who})",
                {"tier": new_tier},
            )
            stats.raised.append(
                Raised(
                    number,
                    "escalated",
                    row["site"],
                    row["target"],
                    int(row["level"]),
                    new_tier,
                    row["title"],
                    f"tier {new_tier}: {who}",
                    now,
                    due.get("resolve"),
                )
            )
        done = set(row["breaches"] or [])
        for kind in sorted(breached(clock, sla, now) - done):
            done.add(kind)
            self.conn.execute(
                update(incidents).where(incidents.c.id == inc_id).values(breaches=sorted(done))
            )
            deadline_at = due.get(kind)
            self.event(
                inc_id,
                now,
                "breached",
                SYSTEM,
                f"{kind} deadline passed ({deadline_at.isoformat() if deadline_at else '?'})",
                {"deadline": kind},
            )
            stats.raised.append(
                Raised(
                    number,
                    "breached",
                    row["site"],
                    row["target"],
                    int(row["level"]),
                    max(new_tier, int(row["tier"])),
                    row["title"],
                    f"{kind} deadline passed",
                    now,
                    deadline_at,
                )
            )

    def pause(self, inc_id: int, at: datetime, reason: str, author: str) -> bool:
        row = self.row(inc_id)
        pauses = list(row["pauses"] or [])
        if pauses and pauses[-1][1] is None:
            return False
        pauses.append([at.isoformat(), None, reason])
        self.conn.execute(update(incidents).where(incidents.c.id == inc_id).values(pauses=pauses))
        self.event(inc_id, at, "paused", author, f"SLA clock paused: {reason}")
        return True

    def resume(self, inc_id: int, at: datetime, author: str, reason: str = "") -> bool:
        row = self.row(inc_id)
        pauses = list(row["pauses"] or [])
        if not pauses or pauses[-1][1] is not None:
            return False
        self.conn.execute(
            update(incidents)
            .where(incidents.c.id == inc_id)
            .values(pauses=_close_pauses(pauses, at))
        )
        self.event(
            inc_id,
            at,
            "resumed",
            author,
            "SLA clock running again" + (f": {reason}" if reason else ""),
        )
        return True


def _close_pauses(pauses: list[list[Any]] | None, at: datetime) -> list[list[Any]]:
    out = [list(p) for p in (pauses or [])]
    if out and out[-1][1] is None:
        out[-1][1] = at.isoformat()
    return out
