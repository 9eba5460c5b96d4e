"""The collector's database: one :class:`Store` over SQLAlchemy Core, SQLite or PostgreSQL.

Everything a batch of results changes (deduplication key, current state, transitions, the
month's inspection record, incidents and their timeline) is written in one transaction, and
the MQTT message is acknowledged only after it commits: a crash can redeliver, never lose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import (
    Decision,
    OpenIncident,
    Policy,
    incident_number,
    on_agent_state,
    on_result,
)
from collector.store.schema import (
    agents,
    gaps,
    incident_events,
    incidents,
    inspection,
    metadata,
    received,
    targets,
    transitions,
)
from collector.store.schema import current as current_t

AGENT_CHECK = "agent.online"
GENESIS = "0" * 64


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything in fieldmon is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _value_text(value: float | str | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}" if isinstance(value, float) else value


@dataclass(slots=True)
class IngestStats:
    accepted: int = 0
    duplicates: int = 0
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    """``tz`` is the contract's time zone: it decides which month a result belongs to."""

    def __init__(self, url: str, tz: tzinfo = UTC) -> None:
        self.engine = make_engine(url)
        self.tz = tz
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- writing

    def ingest(
        self,
        site: str,
        agent: str,
        results: Sequence[Result],
        classes: Mapping[str, DeviceClass],
        policy: Policy,
        now: datetime,
    ) -> IngestStats:
        stats = IngestStats()
        with self.engine.begin() as conn:
            ids = [r.msg_id for r in results]
            seen = {
                row[0]
                for row in conn.execute(select(received.c.msg_id).where(received.c.msg_id.in_(ids)))
            }
            fresh: list[Result] = []
            batch_ids: set[str] = set()
            for r in results:
                if r.msg_id in seen or r.msg_id in batch_ids:
                    stats.duplicates += 1
                else:
                    batch_ids.add(r.msg_id)
                    fresh.append(r)
            if not fresh:
                return stats
            conn.execute(insert(received), [{"msg_id": m, "received_at": now} for m in batch_ids])
            # Results of one target in observation order, so transitions are in order too.
            fresh.sort(key=lambda r: (r.target, r.observed_at))
            self._touch_agent(conn, site, agent, now)
            for r in fresh:
                self._apply(conn, site, agent, r, classes, policy, now, stats)
            stats.accepted = len(fresh)
        return stats

    def _touch_agent(self, conn: Connection, site: str, agent: str, now: datetime) -> None:
        done = conn.execute(
            update(agents)
            .where(and_(agents.c.site == site, agents.c.agent == agent))
            .values(last_seen=now)
        )
        if done.rowcount == 0:
            conn.execute(
                insert(agents).values(
                    site=site,
                    agent=agent,
                    state="online",
                    state_since=now,
                    last_seen=now,
                    version="",
                )
            )

    def _apply(
        self,
        conn: Connection,
        site: str,
        agent: str,
        r: Result,
        classes: Mapping[str, DeviceClass],
        policy: Policy,
        now: datetime,
        stats: IngestStats,
    ) -> None:
        key = r.key
        self._upsert_target(conn, site, agent, r)
        where = and_(
            current_t.c.site == site, current_t.c.target == r.target, current_t.c.check_key == key
        )
        prev = conn.execute(select(current_t).where(where)).mappings().first()
        prev_observed = utc(prev["observed_at"]) if prev else None
        if prev is not None and prev_observed is not None and r.observed_at < prev_observed:
            # An older result arriving late (outbox replay): keep it in the month's record
            # but never let it overwrite newer state or move incidents backwards.
            self._record_inspection(conn, site, r)
            return
        ok_streak = ((prev["ok_streak"] if prev else 0) + 1) if r.status == Status.OK else 0
        values = {
            "check": r.check,
            "item": r.item,
            "status": int(r.status),
            "value": _value_text(r.value),
            "unit": r.unit,
            "summary": r.summary,
            "observed_at": r.observed_at,
            "ok_streak": ok_streak,
        }
        if prev is None:
            conn.execute(
                insert(current_t).values(
                    site=site, target=r.target, check_key=key, since=r.observed_at, **values
                )
            )
        else:
            if prev["status"] != int(r.status):
                values["since"] = r.observed_at
            conn.execute(update(current_t).where(where).values(**values))
        if prev is None or prev["status"] != int(r.status):
            conn.execute(
                insert(transitions).values(
                    site=site,
                    target=r.target,
                    check_key=key,
                    from_status=prev["status"] if prev else None,
                    to_status=int(r.status),
                    at=r.observed_at,
                )
            )
        self._record_inspection(conn, site, r)
        open_inc = self._open_incident(conn, site, r.target, key)
        decision = on_result(open_inc, r.status, ok_streak, policy)
        dc = classes.get(r.target_class)
        item = dc.item(r.check) if dc else None
        level = item.level if item else 3
        title = f"{r.target}: {item.title_in('en') if item else r.check}"
        if r.item:
            title += f" ({r.item})"
        self._act(
            conn,
            decision,
            open_inc,
            site,
            r.target,
            key,
            r.check,
            r.item,
            level,
            title,
            r.summary,
            r.observed_at,
            now,
            stats,
            data={"status": r.status.name, "value": _value_text(r.value)},
        )

    def _act(
        self,
        conn: Connection,
        decision: Decision,
        open_inc: OpenIncident | None,
        site: str,
        target: str,
        key: str,
        check: str,
        item: str,
        level: int,
        title: str,
        summary: str,
        at: datetime,
        now: datetime,
        stats: IngestStats,
        data: dict[str, Any],
    ) -> None:
        if decision.action == "open":
            inc_id = conn.execute(
                insert(incidents).values(
                    site=site,
                    target=target,
                    check_key=key,
                    check=check,
                    item=item,
                    level=level,
                    state="open",
                    title=title,
                    summary=summary,
                    opened_at=at,
                    last_seen_at=at,
                    occurrences=1,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            number = incident_number(int(inc_id), at)
            conn.execute(update(incidents).where(incidents.c.id == inc_id).values(number=number))
            self._event(
                conn,
                int(inc_id),
                at,
                "opened",
                "fieldmon",
                f"opened at level {level}: {summary or decision.reason}",
                {**data, "level": level},
            )
            stats.opened.append(number)
        elif decision.action == "repeat" and open_inc is not None:
            conn.execute(
                update(incidents)
                .where(incidents.c.id == open_inc.id)
                .values(last_seen_at=at, occurrences=incidents.c.occurrences + 1, summary=summary)
            )
        elif decision.action == "resolve" and open_inc is not None:
            conn.execute(
                update(incidents)
                .where(incidents.c.id == open_inc.id)
                .values(state="resolved", resolved_at=at, last_seen_at=at)
            )
            self._event(
                conn,
                open_inc.id,
                at,
                "resolved",
                "fieldmon",
                f"resolved automatically: {decision.reason}",
                data,
            )
            number = conn.execute(
                select(incidents.c.number).where(incidents.c.id == open_inc.id)
            ).scalar_one()
            stats.resolved.append(str(number))

    def _record_inspection(self, conn: Connection, site: str, r: Result) -> None:
        month = f"{r.observed_at.astimezone(self.tz):%Y-%m}"
        where = and_(
            inspection.c.month == month,
            inspection.c.site == site,
            inspection.c.target == r.target,
            inspection.c.check_key == r.key,
        )
        row = conn.execute(
            select(inspection.c.worst, inspection.c.observed_at).where(where)
        ).first()
        failed = 1 if r.status in (Status.WARN, Status.CRIT) else 0
        latest = {
            "status": int(r.status),
            "value": _value_text(r.value),
            "unit": r.unit,
            "summary": r.summary,
            "observed_at": r.observed_at,
        }
        if row is None:
            conn.execute(
                insert(inspection).values(
                    month=month,
                    site=site,
                    target=r.target,
                    check_key=r.key,
                    check=r.check,
                    item=r.item,
                    worst=int(r.status),
                    samples=1,
                    failed_samples=failed,
                    **latest,
                )
            )
            return
        values: dict[str, Any] = {
            "worst": max(int(row[0]), int(r.status)),
            "samples": inspection.c.samples + 1,
            "failed_samples": inspection.c.failed_samples + failed,
        }
        last = utc(row[1])
        if last is None or r.observed_at >= last:
            values.update(latest)
        conn.execute(update(inspection).where(where).values(**values))

    def _upsert_target(self, conn: Connection, site: str, agent: str, r: Result) -> None:
        where = and_(targets.c.site == site, targets.c.target == r.target)
        row = conn.execute(select(targets.c.facts, targets.c.last_seen).where(where)).first()
        if row is None:
            conn.execute(
                insert(targets).values(
                    site=site,
                    target=r.target,
                    agent=agent,
                    **{"class": r.target_class},
                    facts=dict(r.facts),
                    first_seen=r.observed_at,
                    last_seen=r.observed_at,
                )
            )
            return
        values: dict[str, Any] = {"agent": agent, "class": r.target_class}
        last = utc(row[1])
        if last is None or r.observed_at > last:
            values["last_seen"] = r.observed_at
        if r.facts:
            merged = dict(row[0] or {})
            merged.update(r.facts)
            if merged != row[0]:
                values["facts"] = merged
        conn.execute(update(targets).where(where).values(**values))

    def _open_incident(
        self, conn: Connection, site: str, target: str, key: str
    ) -> OpenIncident | None:
        row = conn.execute(
            select(incidents.c.id, incidents.c.level, incidents.c.occurrences).where(
                and_(
                    incidents.c.site == site,
                    incidents.c.target == target,
                    incidents.c.check_key == key,
                    incidents.c.state == "open",
                )
            )
        ).first()
        return OpenIncident(int(row[0]), int(row[1]), int(row[2])) if row else None

    def _event(
        self,
        conn: Connection,
        incident_id: int,
        at: datetime,
        kind: str,
        author: str,
        text: str,
        data: dict[str, Any],
    ) -> None:
        prev = conn.execute(
            select(incident_events.c.hash)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.id.desc())
            .limit(1)
        ).scalar()
        prev_hash = prev or GENESIS
        digest = event_hash(prev_hash, incident_id, at, kind, author, text, data)
        conn.execute(
            insert(incident_events).values(
                incident_id=incident_id,
                at=at,
                kind=kind,
                author=author,
                text=text,
                data=data,
                prev_hash=prev_hash,
                hash=digest,
            )
        )

    def set_agent_state(
        self,
        site: str,
        agent: str,
        state: str,
        at: datetime,
        version: str,
        policy: Policy,
        now: datetime,
    ) -> IngestStats:
        stats = IngestStats()
        with self.engine.begin() as conn:
            where = and_(agents.c.site == site, agents.c.agent == agent)
            row = conn.execute(select(agents.c.state).where(where)).first()
            if row is None:
                conn.execute(
                    insert(agents).values(
                        site=site,
                        agent=agent,
                        state=state,
                        state_since=at,
                        last_seen=now,
                        version=version,
                    )
                )
            elif row[0] != state:
                conn.execute(
                    update(agents)
                    .where(where)
                    .values(state=state, state_since=at, last_seen=now, version=version)
                )
            open_inc = self._open_incident(conn, site, agent, AGENT_CHECK)
            decision = on_agent_state(open_inc, state)
            if decision.action == "repeat":
                return stats
            self._act(
                conn,
                decision,
                open_inc,
                site,
                agent,
                AGENT_CHECK,
                AGENT_CHECK,
                "",
                policy.agent_offline_level,
                f"{agent}: agent offline",
                f"agent {agent} is {state}",
                at,
                now,
                stats,
                data={"state": state},
            )
        return stats

    def record_gap(
        self,
        site: str,
        agent: str,
        dropped: int,
        first: datetime | None,
        last: datetime | None,
        now: datetime,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(gaps).values(
                    site=site,
                    agent=agent,
                    dropped=dropped,
                    first_observed=first,
                    last_observed=last,
                    recorded_at=now,
                )
            )

    def prune_received(self, older_than: timedelta, now: datetime) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    received.delete().where(received.c.received_at < now - older_than)
                ).rowcount
            )

    # ----------------------------------------------------------------- reading

    def incidents(
        self,
        *,
        site: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[RowMapping]:
        q = select(incidents).order_by(incidents.c.opened_at.desc()).limit(limit)
        if site:
            q = q.where(incidents.c.site == site)
        if state:
            q = q.where(incidents.c.state == state)
        if since:
            q = q.where(incidents.c.opened_at >= since)
        if until:
            q = q.where(incidents.c.opened_at < until)
        with self.engine.connect() as conn:
            return list(conn.execute(q).mappings())

    def incident(self, number: str) -> tuple[RowMapping, list[RowMapping]] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(incidents).where(incidents.c.number == number))
                .mappings()
                .first()
            )
            if row is None:
                return None
            events = list(
                conn.execute(
                    select(incident_events)
                    .where(incident_events.c.incident_id == row["id"])
                    .order_by(incident_events.c.id)
                ).mappings()
            )
        return row, events

    def open_counts(self) -> list[tuple[str, int, int]]:
        """(site, level, count) of open incidents."""
        q = (
            select(incidents.c.site, incidents.c.level, func.count())
            .where(incidents.c.state == "open")
            .group_by(incidents.c.site, incidents.c.level)
        )
        with self.engine.connect() as conn:
            return [(str(s), int(lv), int(n)) for s, lv, n in conn.execute(q)]

    def current_rows(self, site: str | None = None) -> list[RowMapping]:
        q = select(current_t)
        if site:
            q = q.where(current_t.c.site == site)
        with self.engine.connect() as conn:
            return list(conn.execute(q).mappings())

    def agent_rows(self) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(agents)).mappings())

    def target_rows(self, site: str) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(targets).where(targets.c.site == site).order_by(targets.c.target)
                ).mappings()
            )

    def inspection_rows(self, site: str, month: str) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(inspection)
                    .where(and_(inspection.c.site == site, inspection.c.month == month))
                    .order_by(inspection.c.target, inspection.c.check_key)
                ).mappings()
            )

    def gap_rows(self, site: str, since: datetime, until: datetime) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(gaps).where(
                        and_(
                            gaps.c.site == site,
                            gaps.c.recorded_at >= since,
                            gaps.c.recorded_at < until,
                        )
                    )
                ).mappings()
            )

    def verify_timeline(self, incident_id: int) -> bool:
        """Recompute the hash chain of an incident's timeline; False if any entry changed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(incident_events)
                .where(incident_events.c.incident_id == incident_id)
                .order_by(incident_events.c.id)
            ).mappings()
            prev = GENESIS
            for ev in rows:
                expect = event_hash(
                    prev,
                    incident_id,
                    utc(ev["at"]),
                    ev["kind"],
                    ev["author"],
                    ev["text"],
                    ev["data"],
                )
                if ev["prev_hash"] != prev or ev["hash"] != expect:
                    return False
                prev = ev["hash"]
        return True


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
