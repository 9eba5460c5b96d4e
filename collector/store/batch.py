"""Storing a batch of results with a handful of statements instead of several per result.

The state a batch touches (its targets, their current check states, this month's inspection
records, their open incidents) is read once, changed in memory, and written back with one
executemany per table. Only results that fail, or belong to an open incident, take the slow
path through :class:`IncidentOps`; before that path reads targets, current or transitions
(:attr:`IncidentOps.before_read`), pending writes are flushed so the incident rules see the
same state they would see result by result. Lookups of incidents and maintenance windows,
which pending writes never touch, and repeats of an open incident do not flush.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    insert,
    select,
    update,
)

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import REACHABILITY, Context, is_flapping, on_result
from collector.incidents.rules import Rules
from collector.store.fastsql import run
from collector.store.incident_ops import IncidentOps, IngestStats
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
_UPDATE_CURRENT = (
    update(current)
    .where(
        and_(
            current.c.site == bindparam("k_site"),
            current.c.target == bindparam("k_target"),
            current.c.check_key == bindparam("k_key"),
        )
    )
    .values({c: bindparam(c) for c in _CURRENT_COLUMNS})
)
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
_UPDATE_INSPECTION = (
    update(inspection)
    .where(
        and_(
            inspection.c.month == bindparam("k_month"),
            inspection.c.site == bindparam("k_site"),
            inspection.c.target == bindparam("k_target"),
            inspection.c.check_key == bindparam("k_key"),
        )
    )
    .values({c: bindparam(c) for c in _INSPECTION_COLUMNS})
)
_NAMES: BindParameter[str] = bindparam("p_names", expanding=True)
_LOAD_TARGETS = select(targets).where(
    and_(targets.c.site == bindparam("p_site"), targets.c.target.in_(_NAMES))
)
_LOAD_CURRENT = select(current).where(
    and_(current.c.site == bindparam("p_site"), current.c.target.in_(_NAMES))
)
_LOAD_INSPECTION = select(inspection).where(
    and_(
        inspection.c.site == bindparam("p_site"),
        inspection.c.month.in_(bindparam("p_months", expanding=True)),
        inspection.c.target.in_(_NAMES),
    )
)
_LOAD_OPEN_KEYS = select(incidents.c.target, incidents.c.check_key).where(
    and_(
        incidents.c.site == bindparam("p_site"),
        incidents.c.state == "open",
        incidents.c.target.in_(_NAMES),
    )
)
#: Uncleared impacts of the site's open incidents, for the batch's own targets only: a parent
#: down with 1,000 devices behind it would otherwise have all 1,000 read for every message.
_LOAD_IMPACTED = select(incident_impacts.c.target, incident_impacts.c.check_key).where(
    and_(
        incident_impacts.c.incident_id.in_(
            select(incidents.c.id).where(
                and_(incidents.c.site == bindparam("p_site"), incidents.c.state == "open")
            )
        ),
        incident_impacts.c.target.in_(_NAMES),
        incident_impacts.c.cleared_at.is_(None),
    )
)
#: Column names of the rows the loading statements return, by statement.
_KEYS: dict[int, tuple[str, ...]] = {
    id(stmt): tuple(str(c.key) for c in stmt.selected_columns)
    for stmt in (_LOAD_TARGETS, _LOAD_CURRENT, _LOAD_INSPECTION)
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


#: (statement, dialect name, parameter names) -> (SQL text, getter of the positional values,
#: (position, bind processor) of the values that need one)
_COMPILED: dict[
    tuple[int, str, tuple[str, ...]],
    tuple[str, Callable[[dict[str, Any]], Any], list[tuple[int, Callable[[Any], Any]]]],
] = {}


def execute_many(conn: Connection, stmt: Insert | Update, rows: list[dict[str, Any]]) -> None:
    """``conn.execute(stmt, rows)``, cheaper for thousands of rows on SQLite.

    SQLAlchemy builds and processes every parameter set through its general machinery,
    which at a batch's 2,000 rows per table costs more than SQLite's own ``executemany``.
    On SQLite the statement is compiled once per set of keys (cached), each value goes
    through the column type's own bind processor (so stored values are exactly what
    SQLAlchemy would store: its DATETIME text, JSON text, booleans as integers), and the
    DBAPI cursor of the same connection (same transaction) runs them. Other dialects, and
    statements with parameters the compiled form does not take positionally, take the
    ordinary path."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    keys = tuple(rows[0])
    cache_key = (id(stmt), dialect.name, keys)
    entry = _COMPILED.get(cache_key)
    if entry is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = compiled.positiontup
        if not compiled.positional or not names or set(names) - set(keys):
            conn.execute(stmt, rows)
            return
        found: list[tuple[int, Callable[[Any], Any]]] = []
        for i, n in enumerate(names):
            f = compiled.binds[n].type._cached_bind_processor(dialect)
            if f is not None:
                found.append((i, f))
        first = names[0]
        getter: Callable[[dict[str, Any]], Any] = (
            itemgetter(*names) if len(names) > 1 else (lambda row: (row[first],))
        )
        entry = (compiled.string, getter, found)
        _COMPILED[cache_key] = entry
    sql, get, processors = entry
    params: list[Any] = [get(row) for row in rows]
    if processors:
        for j, values in enumerate(params):
            out = list(values)
            for i, convert in processors:
                out[i] = convert(out[i])
            params[j] = out
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def value_text(value: float | str | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}" if isinstance(value, float) else value


@dataclass(slots=True)
class _Pending:
    """Rows changed in memory and not yet written."""

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
        self.tz = tz
        self.in_maintenance = in_maintenance
        self.stats = stats
        self.ops = IncidentOps(
            conn,
            before_read=self.flush,
            held_facts=self._held_facts,
            held_parents=self._held_parents,
            open_changed=self._open_changed,
        )
        self.pending = _Pending()
        #: Observation times of the status changes (from a known status) held in
        #: ``pending.transitions``, per (target, check): counted without scanning the list.
        self.held_changes: dict[tuple[str, str], list[datetime]] = {}
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
            for row in _dicts(self.conn, _LOAD_CURRENT, by_names)
        }
        self.inspection: dict[tuple[str, str, str], dict[str, Any]] = {
            (row["month"], row["target"], row["check_key"]): row
            for row in _dicts(self.conn, _LOAD_INSPECTION, {**by_names, "p_months": months})
        }
        self.open_keys: set[tuple[str, str]] = {
            (str(t), str(k)) for t, k in run(self.conn, _LOAD_OPEN_KEYS, by_names).rows
        }
        if results:
            first = min(r.observed_at for r in results)
            last = max(r.observed_at for r in results)
            self.windows = [
                (str(name), start, end)
                for name, start, end in (
                    (w[0], utc(w[1]), utc(w[2]))
                    for w in self.conn.execute(
                        select(
                            maintenance.c.target, maintenance.c.starts_at, maintenance.c.ends_at
                        ).where(
                            and_(
                                maintenance.c.site == site,
                                maintenance.c.starts_at <= last,
                                maintenance.c.ends_at > first,
                            )
                        )
                    )
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
        key = r.key
        facts = self._target(r)
        prev = self.current.get((r.target, key))
        prev_observed = utc(prev["observed_at"]) if prev else None
        self._inspection(r)
        if prev_observed is not None and r.observed_at < prev_observed:
            return  # replayed late: in the month's record, never moving state backwards
        if prev_observed is not None and r.check in REACHABILITY:
            gap = (r.observed_at - prev_observed).total_seconds()
            if gap > 0:
                self._target_row(r.target)["cadence"] = min(max(gap, 5.0), 86_400.0)
        ok_streak = ((prev["ok_streak"] if prev else 0) + 1) if r.status == Status.OK else 0
        changed = prev is None or prev["status"] != int(r.status)
        row = {
            "check": r.check,
            "item": r.item,
            "status": int(r.status),
            "value": value_text(r.value),
            "unit": r.unit,
            "summary": r.summary,
            "observed_at": r.observed_at,
            "since": r.observed_at if changed else prev["since"],  # type: ignore[index]
            "ok_streak": ok_streak,
        }
        ck = (r.target, key)
        if prev is None or ck in self.pending.current_new:
            self.pending.current_new[ck] = row
        else:
            self.pending.current_upd[ck] = row
        if prev is None:
            self.current[ck] = dict(row)
        else:
            prev.update(row)  # our own copy: pending holds ``row`` itself
        if changed:
            if prev is not None:
                self.held_changes.setdefault(ck, []).append(r.observed_at)
            self.pending.transitions.append(
                {
                    "site": self.site,
                    "target": r.target,
                    "check_key": key,
                    "from_status": prev["status"] if prev else None,
                    "to_status": int(r.status),
                    "at": r.observed_at,
                }
            )
        failing = r.status in self.policy.open_on
        if ck not in self.open_keys and not failing:
            if r.status == Status.OK and ck in self.impacted:
                # Touches incident_impacts only, which no pending write changes: no flush.
                self.ops.clear_impact(self.site, r.target, key, r.observed_at)
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
        open_inc = ops.open_for(site, r.target, key) if (r.target, key) in self.open_keys else None
        if open_inc is not None and not changed and r.status in policy.open_on:
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
        held in memory, without writing the pending rows out first."""
        held = sum(1 for at in self.held_changes.get((target, key), ()) if at >= since)
        return self.ops.stored_changes_within(self.site, target, key, since) + held

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
        """Keep the target's identity facts; data arriving again ends a "no data" incident."""
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
            row["facts"] = merged
            if "parent" in r.facts:
                self._parents = None
        if row["stale"]:
            row["stale"] = False
            self.flush()
            inc = self.ops.open_for(self.site, r.target, STALE_CHECK)
            if inc is not None:
                self.ops.resolve(inc.id, r.observed_at, "results arriving again", self.stats)
        self.targets[r.target].update(row)
        # Read only by the caller (the incident's vendor), so not copied per result.
        facts: dict[str, Any] = row["facts"] or {}
        return facts

    def _inspection(self, r: Result) -> None:
        key = (self._month(r), r.target, r.key)
        status = int(r.status)
        failed = 1 if status in _FAILED else 0
        row = self.inspection.get(key)
        last = utc(row["observed_at"]) if row is not None else None
        if last is None or r.observed_at >= last:
            new = {
                "check": r.check,
                "item": r.item,
                "status": status,
                "value": value_text(r.value),
                "unit": r.unit,
                "summary": r.summary,
                "observed_at": r.observed_at,
            }
        else:  # a late result counts, but the latest one stays
            new = {c: row[c] for c in _LATEST_COLUMNS}  # type: ignore[index]
        if row is None:
            new["worst"], new["samples"], new["failed_samples"] = status, 1, failed
            self.pending.inspection_new[key] = new
            self.inspection[key] = dict(new)
            return
        new["worst"] = max(int(row["worst"]), status)
        new["samples"] = int(row["samples"]) + 1
        new["failed_samples"] = int(row["failed_samples"]) + failed
        if key in self.pending.inspection_new:
            self.pending.inspection_new[key] = new
        else:
            self.pending.inspection_upd[key] = new
        row.update(new)  # our own copy: pending holds ``new`` itself

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        p, conn, site = self.pending, self.conn, self.site
        if p.empty():
            return
        if p.targets_new:
            execute_many(conn, _INSERT_TARGET, list(p.targets_new.values()))
        if p.targets_upd:
            execute_many(
                conn,
                _UPDATE_TARGET,
                [{"k_site": site, "k_target": t, **v} for t, v in p.targets_upd.items()],
            )
        if p.current_new:
            execute_many(
                conn,
                _INSERT_CURRENT,
                [
                    {"site": site, "target": t, "check_key": k, **v}
                    for (t, k), v in p.current_new.items()
                ],
            )
        if p.current_upd:
            execute_many(
                conn,
                _UPDATE_CURRENT,
                [
                    {"k_site": site, "k_target": t, "k_key": k, **v}
                    for (t, k), v in p.current_upd.items()
                ],
            )
        if p.transitions:
            execute_many(conn, _INSERT_TRANSITION, p.transitions)
            self.held_changes = {}
        if p.inspection_new:
            execute_many(
                conn,
                _INSERT_INSPECTION,
                [
                    {"month": m, "site": site, "target": t, "check_key": k, **v}
                    for (m, t, k), v in p.inspection_new.items()
                ],
            )
        if p.inspection_upd:
            execute_many(
                conn,
                _UPDATE_INSPECTION,
                [
                    {"k_month": m, "k_site": site, "k_target": t, "k_key": k, **v}
                    for (m, t, k), v in p.inspection_upd.items()
                ],
            )
        self.pending = _Pending()
