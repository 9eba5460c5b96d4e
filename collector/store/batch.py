"""Storing a batch of results with a handful of statements instead of several per result.

The state a batch touches (its targets, their current check states, this month's inspection
records, their open incidents) is read once, changed in memory, and written back with one
executemany per table and shape of row (the timeline entries incidents got included). Only
results that fail, or belong to an open incident, take the slow path through
:class:`IncidentOps`; before that path reads targets, current or transitions
(:attr:`IncidentOps.before_read`), pending writes are flushed so the incident rules see the
same state they would see result by result. Lookups of incidents and maintenance windows,
which pending writes never touch, repeats of an open incident and the flapping test's count
of changes (read once per batch, then kept up to date) do not flush.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Label,
    Select,
    and_,
    bindparam,
    insert,
    literal_column,
    select,
    update,
)

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import REACHABILITY, Context, is_flapping, on_result
from collector.incidents.rules import Rules
from collector.store.fastsql import TimeTexts, execute_many, run
from collector.store.incident_ops import OPEN, IncidentOps, IngestStats, OpenRow
from collector.store.schema import (
    current,
    incident_impacts,
    incidents,
    inspection,
    maintenance,
    targets,
    transitions,
)
from collector.store.times import utc

__all__ = ["BatchWriter", "execute_many", "value_text"]

STALE_CHECK = "data.stale"

_CURRENT_COLUMNS = (
    "check",
    "item",
    "status",
    "value",
    "unit",
    "summary",
    "observed_at",
    "since",
    "ok_streak",
)
_CURRENT_WHERE = and_(
    current.c.site == bindparam("k_site"),
    current.c.target == bindparam("k_target"),
    current.c.check_key == bindparam("k_key"),
)
#: On SQLite a row read by the batch is updated by its rowid (``k_rowid``): one B-tree
#: search instead of the key's index and then the table (measured: 2.0 against 3.0 µs per
#: row). Rows the batch inserted, and every row on PostgreSQL, go by their key.
_BY_ROWID = literal_column("rowid") == bindparam("k_rowid")
#: UPDATEs of current rows by (by rowid, writes ``since``): a status that did not change
#: leaves ``since`` as stored, neither read nor written.
_UPDATE_CURRENT = {
    (by_rowid, with_since): update(current)
    .where(_BY_ROWID if by_rowid else _CURRENT_WHERE)
    .values({c: bindparam(c) for c in _CURRENT_COLUMNS if with_since or c != "since"})
    for by_rowid in (False, True)
    for with_since in (False, True)
}
#: What an inspection record keeps of the latest result.
_LATEST_COLUMNS = ("check", "item", "status", "value", "unit", "summary", "observed_at")
#: Statuses counted as failed samples in the inspection record.
_FAILED = frozenset({int(Status.WARN), int(Status.CRIT)})
_INSPECTION_COLUMNS = (
    "check",
    "item",
    "status",
    "value",
    "unit",
    "summary",
    "observed_at",
    "worst",
    "samples",
    "failed_samples",
)
#: The counts only, for a late result: the latest result's columns stay as stored (its
#: ``observed_at`` is written back unchanged, the batch compares later results with it).
_COUNT_COLUMNS = ("observed_at", "worst", "samples", "failed_samples")
_INSPECTION_WHERE = and_(
    inspection.c.month == bindparam("k_month"),
    inspection.c.site == bindparam("k_site"),
    inspection.c.target == bindparam("k_target"),
    inspection.c.check_key == bindparam("k_key"),
)
#: UPDATEs of inspection records by (by rowid, writes the latest result's columns).
_UPDATE_INSPECTION = {
    (by_rowid, latest): update(inspection)
    .where(_BY_ROWID if by_rowid else _INSPECTION_WHERE)
    .values({c: bindparam(c) for c in (_INSPECTION_COLUMNS if latest else _COUNT_COLUMNS)})
    for by_rowid in (False, True)
    for latest in (False, True)
}
_NAMES: BindParameter[str] = bindparam("p_names", expanding=True)
_LOAD_TARGETS = select(targets).where(
    and_(targets.c.site == bindparam("p_site"), targets.c.target.in_(_NAMES))
)
#: Of the current rows and inspection records, only what the batch compares and counts
#: with (the other columns are written, never read: see _UPDATE_CURRENT and
#: _UPDATE_INSPECTION), and on SQLite the rowid, per dialect.
_CURRENT_READ = (
    current.c.target,
    current.c.check_key,
    current.c.status,
    current.c.observed_at,
    current.c.ok_streak,
)
_INSPECTION_READ = (
    inspection.c.month,
    inspection.c.target,
    inspection.c.check_key,
    inspection.c.observed_at,
    inspection.c.worst,
    inspection.c.samples,
    inspection.c.failed_samples,
)
_ROWID: Label[Any] = literal_column("rowid").label("k_rowid")
_LOAD_CURRENT = {
    sqlite: select(*_CURRENT_READ, *([_ROWID] if sqlite else [])).where(
        and_(current.c.site == bindparam("p_site"), current.c.target.in_(_NAMES))
    )
    for sqlite in (False, True)
}
_LOAD_INSPECTION = {
    sqlite: select(*_INSPECTION_READ, *([_ROWID] if sqlite else [])).where(
        and_(
            inspection.c.site == bindparam("p_site"),
            inspection.c.month.in_(bindparam("p_months", expanding=True)),
            inspection.c.target.in_(_NAMES),
        )
    )
    for sqlite in (False, True)
}
_LOAD_OPEN_KEYS = select(incidents.c.target, incidents.c.check_key).where(
    and_(
        incidents.c.site == bindparam("p_site"),
        incidents.c.state == OPEN,
        incidents.c.target.in_(_NAMES),
    )
)
#: Uncleared impacts of the site's open incidents, for the batch's own targets only: a parent
#: down with 1,000 devices behind it would otherwise have all 1,000 read for every message.
_LOAD_IMPACTED = select(incident_impacts.c.target, incident_impacts.c.check_key).where(
    and_(
        incident_impacts.c.incident_id.in_(
            select(incidents.c.id).where(
                and_(incidents.c.site == bindparam("p_site"), incidents.c.state == OPEN)
            )
        ),
        incident_impacts.c.target.in_(_NAMES),
        incident_impacts.c.cleared_at.is_(None),
    )
)
#: Stored maintenance windows of the site overlapping the batch's observation times.
_LOAD_WINDOWS = select(maintenance.c.target, maintenance.c.starts_at, maintenance.c.ends_at).where(
    and_(
        maintenance.c.site == bindparam("p_site"),
        maintenance.c.starts_at <= bindparam("p_last"),
        maintenance.c.ends_at > bindparam("p_first"),
    )
)
#: Status changes (from a known status) of the batch's targets since a time: what the
#: flapping test counts (``IncidentOps.changes_within``), for all of them at once.
_LOAD_CHANGES = select(transitions.c.target, transitions.c.check_key, transitions.c.at).where(
    and_(
        transitions.c.site == bindparam("p_site"),
        transitions.c.target.in_(_NAMES),
        transitions.c.at >= bindparam("p_since"),
        transitions.c.from_status.is_not(None),
    )
)
#: Column names of the rows the loading statements return, by statement.
_KEYS: dict[int, tuple[str, ...]] = {
    id(stmt): tuple(str(c.key) for c in stmt.selected_columns)
    for stmt in (_LOAD_TARGETS, *_LOAD_CURRENT.values(), *_LOAD_INSPECTION.values())
}
_INSERT_TARGET = insert(targets)
_INSERT_CURRENT = insert(current)
_INSERT_TRANSITION = insert(transitions)
_INSERT_INSPECTION = insert(inspection)
_UPDATE_TARGET = (
    update(targets)
    .where(and_(targets.c.site == bindparam("k_site"), targets.c.target == bindparam("k_target")))
    .values({c: bindparam(c) for c in ("agent", "class", "facts", "last_seen", "cadence", "stale")})
)


def value_text(value: float | str | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}" if isinstance(value, float) else value


@dataclass(slots=True)
class _Pending:
    """Rows changed in memory and not yet written. Each holds its key columns as its
    statement names them (``site``, ``target``… for an INSERT, ``k_site``, ``k_target``…
    for an UPDATE), so :meth:`BatchWriter.flush` writes the rows as they are."""

    current_new: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    current_upd: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    inspection_new: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    inspection_upd: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    targets_new: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets_upd: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.current_new
            or self.current_upd
            or self.inspection_new
            or self.inspection_upd
            or self.targets_new
            or self.targets_upd
            or self.transitions
        )


def _dicts(conn: Connection, stmt: Select[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    keys = _KEYS[id(stmt)]
    return [dict(zip(keys, row, strict=True)) for row in run(conn, stmt, params).rows]


class BatchWriter:
    def __init__(
        self,
        conn: Connection,
        site: str,
        agent: str,
        classes: Mapping[str, DeviceClass],
        rules: Rules,
        tz: tzinfo,
        in_maintenance: Any,
        stats: IngestStats,
    ) -> None:
        self.conn = conn
        self.site = site
        self.agent = agent
        self.classes = classes
        self.rules = rules
        self.policy = rules.policy_for(site)
        #: ``policy.open_on`` as plain integers: testing an enum member against a set calls
        #: the enum's hash, written in Python, for every result.
        self.open_on = frozenset(int(s) for s in self.policy.open_on)
        self.tz = tz
        self.sqlite = conn.dialect.name == "sqlite"
        self.in_maintenance = in_maintenance
        self.stats = stats
        self.ops = IncidentOps(
            conn,
            before_read=self.flush,
            held_facts=self._held_facts,
            held_parents=self._held_parents,
            open_changed=self._open_changed,
            defer_events=True,  # written by flush, which the batch always ends with
        )
        self.pending = _Pending()
        #: Observation times of the status changes (from a known status) held in
        #: ``pending.transitions``, per (target, check): counted without scanning the list.
        self.held_changes: dict[tuple[str, str], list[datetime]] = {}
        #: The same for the stored changes of the batch's targets within the flapping
        #: window of its earliest result, read by the first result that needs them (see
        #: :meth:`_changes_within`); None until then.
        self.stored_changes: dict[tuple[str, str], list[datetime]] | None = None
        self.earliest: datetime | None = None
        #: Stored maintenance windows of the site overlapping the batch: (target or "",
        #: start, end), read once per batch instead of once per failing result.
        self.windows: list[tuple[str, datetime, datetime]] = []
        self.months: dict[datetime, str] = {}
        #: :meth:`_held_parents`' answer, kept until a target of the batch is added or
        #: names a parent (every device going down asks for it).
        self._parents: dict[str, str] | None = None

    # ------------------------------------------------------------------ loading

    def load(self, results: Sequence[Result]) -> None:
        site, names = self.site, sorted({r.target for r in results})
        months = sorted({self._month(r) for r in results})
        # Prepared statements run as plain tuples (fastsql), turned into plain dicts:
        # RowMapping objects, and building the IN lists anew, cost more than the queries
        # themselves at a few thousand rows per batch.
        by_names = {"p_site": site, "p_names": names}
        self._parents = None
        self.targets: dict[str, dict[str, Any]] = {
            row["target"]: row for row in _dicts(self.conn, _LOAD_TARGETS, by_names)
        }
        self.current: dict[tuple[str, str], dict[str, Any]] = {
            (row["target"], row["check_key"]): row
            for row in _dicts(self.conn, _LOAD_CURRENT[self.sqlite], by_names)
        }
        self.inspection: dict[tuple[str, str, str], dict[str, Any]] = {
            (row["month"], row["target"], row["check_key"]): row
            for row in _dicts(
                self.conn, _LOAD_INSPECTION[self.sqlite], {**by_names, "p_months": months}
            )
        }
        self.open_keys: set[tuple[str, str]] = {
            (str(t), str(k)) for t, k in run(self.conn, _LOAD_OPEN_KEYS, by_names).rows
        }
        if results:
            first = min(r.observed_at for r in results)
            last = max(r.observed_at for r in results)
            self.earliest = first
            self.windows = [
                (str(name), start, end)
                for name, start, end in (
                    (w[0], utc(w[1]), utc(w[2]))
                    for w in run(
                        self.conn,
                        _LOAD_WINDOWS,
                        {"p_site": site, "p_first": first, "p_last": last},
                    ).rows
                )
                if start is not None and end is not None
            ]
        self.impacted: set[tuple[str, str]] = {
            (str(t), str(k)) for t, k in run(self.conn, _LOAD_IMPACTED, by_names).rows
        }

    def _month(self, r: Result) -> str:
        # Asked twice per result (load, then the inspection record); cached per batch.
        at = r.observed_at
        month = self.months.get(at)
        if month is None:
            local = at.astimezone(self.tz)
            month = self.months[at] = f"{local.year:04d}-{local.month:02d}"  # no strftime
        return month

    # ------------------------------------------------------------------ applying

    def apply(self, r: Result) -> None:
        target, at, status = r.target, r.observed_at, int(r.status)
        key = f"{r.check}[{r.item}]" if r.item else r.check  # Result.key, without the call
        value = value_text(r.value)
        facts = self._target(r)
        ck = (target, key)
        prev = self.current.get(ck)
        self._inspection(r, key, status, value)
        if prev is not None:
            prev_observed = utc(prev["observed_at"])
            assert prev_observed is not None  # a NOT NULL column
            if at < prev_observed:
                return  # replayed late: in the month's record, never moving state backwards
            if r.check in REACHABILITY:
                gap = (at - prev_observed).total_seconds()
                if gap > 0:
                    self._target_row(target)["cadence"] = min(max(gap, 5.0), 86_400.0)
            ok_streak = prev["ok_streak"] + 1 if status == Status.OK else 0
            changed = prev["status"] != status
        else:
            ok_streak = 1 if status == Status.OK else 0
            changed = True
        pending = self.pending
        # A new row per result, kept as the batch's view of the check (``current``) and
        # held for writing: the next result of the same check replaces both. ``since`` is
        # in it when it has to be written: a new row's, a change's, or one held already
        # (prev is then the held row) that this result replaces.
        row: dict[str, Any]
        if prev is None or ck in pending.current_new:
            row = {"site": self.site, "target": target, "check_key": key}
            pending.current_new[ck] = row
            since = at if changed else prev["since"]  # type: ignore[index]
        else:
            since = at if changed else prev.get("since") if ck in pending.current_upd else None
            rowid = prev.get("k_rowid")
            if rowid is not None:
                row = {"k_rowid": rowid}
            else:
                row = {"k_site": self.site, "k_target": target, "k_key": key}
            pending.current_upd[ck] = row
        row["check"] = r.check
        row["item"] = r.item
        row["status"] = status
        row["value"] = value
        row["unit"] = r.unit
        row["summary"] = r.summary
        row["observed_at"] = at
        if since is not None:
            row["since"] = since
        row["ok_streak"] = ok_streak
        self.current[ck] = row
        if changed:
            if prev is not None:
                self.held_changes.setdefault(ck, []).append(at)
            pending.transitions.append(
                {
                    "site": self.site,
                    "target": target,
                    "check_key": key,
                    "from_status": prev["status"] if prev is not None else None,
                    "to_status": status,
                    "at": at,
                }
            )
        if ck not in self.open_keys and status not in self.open_on:
            if status == Status.OK and ck in self.impacted:
                # Touches incident_impacts only, which no pending write changes: no flush.
                self.ops.clear_impact(self.site, target, key, at)
                self.impacted.discard(ck)
            return
        self._incident_path(r, key, ok_streak, facts, changed)

    def _incident_path(
        self, r: Result, key: str, ok_streak: int, facts: dict[str, Any], changed: bool
    ) -> None:
        ops, policy, site = self.ops, self.policy, self.site
        # open_for reads only the incidents table, which pending writes never touch. The
        # batch's view of open incidents (open_keys: read by load, kept up to date by
        # _open_changed) answers "none" without a query; a concurrent collector opening
        # the same one meanwhile is caught by the unique index and the batch retried.
        failing = int(r.status) in self.open_on
        current: OpenRow | None = None
        if (r.target, key) not in self.open_keys:
            open_inc = None
        elif failing:
            open_inc = ops.open_for(site, r.target, key)
        else:
            # Not failing: the incident may resolve, which reads its row and its timeline's
            # end; one query reads them with it.
            current = ops.open_row_for(site, r.target, key)
            open_inc = current.incident if current is not None else None
        if open_inc is not None and not changed and failing:
            # Still failing, nothing changed: a repeat. Flapping needs a change and
            # maintenance windows only stop incidents from opening, so skip both lookups
            # (the common case while a device stays down). The decision is then always a
            # plain "repeat", which updates the incident row only.
            ctx = Context(flapping=open_inc.flapping)
        else:
            # The lookups below that read transitions, targets or current flush the pending
            # writes first (IncidentOps.before_read), so they see the same state they would
            # see result by result; maintenance and incident lookups need no flush.
            flapping = is_flapping(
                self._changes_within(r.target, key, r.observed_at - policy.flap_window),
                policy,
            )
            ctx = Context(
                flapping=flapping,
                in_maintenance=self._maintained(r.target, r.observed_at),
                parent_down=ops.parent_down(site, r.target) if open_inc is None else None,
            )
        decision = on_result(open_inc, r.status, ok_streak, policy, ctx)
        dc = self.classes.get(r.target_class)
        item = dc.item(r.check) if dc else None
        level = policy.level_overrides.get(r.check, item.level if item else 3)
        title = f"{r.target}: {item.title_in('en') if item else r.check}"
        if r.item:
            title += f" ({r.item})"
        ops.apply(
            decision,
            open_inc,
            site=site,
            target=r.target,
            key=key,
            check=r.check,
            item=r.item,
            level=level,
            title=title,
            summary=r.summary,
            at=r.observed_at,
            stats=self.stats,
            policy=policy,
            parent=ctx.parent_down,
            device_class=r.target_class,
            vendor=str(facts.get("vendor", "")),
            data={"status": r.status.name, "value": value_text(r.value)},
            current=current,
        )
        if decision.action == "attach":
            self.impacted.add((r.target, key))
        # open_keys follows every incident the ops open, resolve or merge (_open_changed),
        # children folded in or re-opened by a device coming or going included.

    def _open_changed(self, site: str, target: str, key: str, is_open: bool) -> None:
        if site != self.site:
            return
        if is_open:
            self.open_keys.add((target, key))
        else:
            self.open_keys.discard((target, key))

    def _maintained(self, target: str, at: datetime) -> bool:
        """Whether ``target`` is in a maintenance window at ``at``: a configured one, or one
        of the stored windows read by :meth:`load` (what ``in_maintenance`` would find)."""
        if self.rules.configured_window(self.site, target, at) is not None:
            return True
        return any(start <= at < end for name, start, end in self.windows if name in ("", target))

    def _held_parents(self, site: str) -> dict[str, str] | None:
        """{target: parent or ""} of this batch's targets, as their rows hold them once
        flushed; None for another site."""
        if site != self.site:
            return None
        if self._parents is None:
            self._parents = {
                name: str((row["facts"] or {}).get("parent") or "")
                for name, row in self.targets.items()
            }
        return self._parents

    def _held_facts(self, site: str, target: str) -> dict[str, Any] | None:
        """The facts of a target of this batch (what its row holds once flushed); None for
        any other target, whose row no pending write touches."""
        row = self.targets.get(target) if site == self.site else None
        return None if row is None else dict(row["facts"] or {})

    def _changes_within(self, target: str, key: str, since: datetime) -> int:
        """Status changes of (target, check) since ``since``: the stored ones plus those
        held in memory, without writing the pending rows out first.

        The stored ones come from one query for all the batch's targets, made by the first
        result that asks (most batches have none): one query per failing result cost more
        than the rest of its work. Every result's ``since`` is within the window that
        query covers, and the changes flush writes afterwards join it."""
        stored = self.stored_changes
        if stored is None:
            stored = self.stored_changes = self._load_changes()
        ck = (target, key)
        held = sum(1 for at in self.held_changes.get(ck, ()) if at >= since)
        return sum(1 for at in stored.get(ck, ()) if at >= since) + held

    def _load_changes(self) -> dict[tuple[str, str], list[datetime]]:
        out: dict[tuple[str, str], list[datetime]] = {}
        if self.earliest is None:
            return out
        params = {
            "p_site": self.site,
            "p_names": sorted(self.targets),
            "p_since": self.earliest - self.policy.flap_window,
        }
        for target, key, at in run(self.conn, _LOAD_CHANGES, params).rows:
            out.setdefault((str(target), str(key)), []).append(utc(at))  # type: ignore[arg-type]
        return out

    def _target_row(self, name: str) -> dict[str, Any]:
        if name in self.pending.targets_new:
            return self.pending.targets_new[name]
        if name not in self.pending.targets_upd:
            self.pending.targets_upd[name] = {
                k: self.targets[name][k]
                for k in ("agent", "class", "facts", "last_seen", "cadence", "stale")
            }
        return self.pending.targets_upd[name]

    def _target(self, r: Result) -> dict[str, Any]:
        """Keep the target's identity facts; data arriving again ends a "no data" incident.

        The changed row is held in ``pending``; ``targets`` gets its facts at once (what
        :meth:`_held_facts` answers) and the rest when :meth:`flush` writes it."""
        known = self.targets.get(r.target)
        if known is None:
            new: dict[str, Any] = {
                "site": self.site,
                "target": r.target,
                "agent": self.agent,
                "class": r.target_class,
                "facts": dict(r.facts),
                "first_seen": r.observed_at,
                "last_seen": r.observed_at,
                "cadence": None,
                "stale": False,
            }
            self.pending.targets_new[r.target] = new
            self.targets[r.target] = dict(new)
            self._parents = None
            return dict(r.facts)
        row = self._target_row(r.target)
        row["agent"], row["class"] = self.agent, r.target_class
        last = utc(row["last_seen"])
        if last is None or r.observed_at > last:
            row["last_seen"] = r.observed_at
        if r.facts:
            merged = dict(row["facts"] or {})
            merged.update(r.facts)
            row["facts"] = known["facts"] = merged
            if "parent" in r.facts:
                self._parents = None
        if row["stale"]:
            row["stale"] = False
            self.flush()
            inc = self.ops.open_for(self.site, r.target, STALE_CHECK)
            if inc is not None:
                self.ops.resolve(inc.id, r.observed_at, "results arriving again", self.stats)
        # Read only by the caller (the incident's vendor), so not copied per result.
        facts: dict[str, Any] = row["facts"] or {}
        return facts

    def _inspection(self, r: Result, key: str, status: int, value: str | None) -> None:
        month = self._month(r)
        ik = (month, r.target, key)
        failed = 1 if status in _FAILED else 0
        row = self.inspection.get(ik)
        late = row is not None and r.observed_at < utc(row["observed_at"])  # type: ignore[operator]
        pending = self.pending
        # A new row per result, as in apply: the batch's view and the row to write. A late
        # result counts, but the latest one stays: a row to insert (held, so ``row`` has
        # them) or held with them copies the latest result's columns, any other leaves them
        # as stored.
        new: dict[str, Any]
        if row is None or ik in pending.inspection_new:
            new = {"month": month, "site": self.site, "target": r.target, "check_key": key}
            pending.inspection_new[ik] = new
            copy = late
        else:
            copy = late and ik in pending.inspection_upd and "check" in row
            rowid = row.get("k_rowid")
            if rowid is not None:
                new = {"k_rowid": rowid}
            else:
                new = {"k_month": month, "k_site": self.site, "k_target": r.target, "k_key": key}
            pending.inspection_upd[ik] = new
        if not late:
            new["check"] = r.check
            new["item"] = r.item
            new["status"] = status
            new["value"] = value
            new["unit"] = r.unit
            new["summary"] = r.summary
            new["observed_at"] = r.observed_at
        elif copy:
            for c in _LATEST_COLUMNS:
                new[c] = row[c]  # type: ignore[index]
        else:
            new["observed_at"] = row["observed_at"]  # type: ignore[index]
        if row is None:
            new["worst"], new["samples"], new["failed_samples"] = status, 1, failed
        else:
            new["worst"] = max(int(row["worst"]), status)
            new["samples"] = int(row["samples"]) + 1
            new["failed_samples"] = int(row["failed_samples"]) + failed
        self.inspection[ik] = new

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        p, conn, site = self.pending, self.conn, self.site
        times: TimeTexts = {}
        self.ops.write_events(times)
        if p.empty():
            return
        if p.targets_new:
            execute_many(conn, _INSERT_TARGET, list(p.targets_new.values()), times)
        if p.targets_upd:
            execute_many(
                conn,
                _UPDATE_TARGET,
                [{"k_site": site, "k_target": t, **v} for t, v in p.targets_upd.items()],
                times,
            )
        # What the rows written now hold is what a target's next result starts from.
        for changed in (p.targets_new, p.targets_upd):
            for name, values in changed.items():
                self.targets[name].update(values)
        if p.current_new:
            execute_many(conn, _INSERT_CURRENT, list(p.current_new.values()), times)
        if p.current_upd:
            by_shape: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
            for row in p.current_upd.values():
                by_shape.setdefault(("k_rowid" in row, "since" in row), []).append(row)
            for shape, rows in by_shape.items():
                execute_many(conn, _UPDATE_CURRENT[shape], rows, times)
        if p.transitions:
            execute_many(conn, _INSERT_TRANSITION, p.transitions, times)
            if self.stored_changes is not None:
                for ck, ats in self.held_changes.items():
                    self.stored_changes.setdefault(ck, []).extend(ats)
            self.held_changes = {}
        if p.inspection_new:
            execute_many(conn, _INSERT_INSPECTION, list(p.inspection_new.values()), times)
        if p.inspection_upd:
            by_shape = {}
            for row in p.inspection_upd.values():
                by_shape.setdefault(("k_rowid" in row, "check" in row), []).append(row)
            for shape, rows in by_shape.items():
                execute_many(conn, _UPDATE_INSPECTION[shape], rows, times)
        self.pending = _Pending()
