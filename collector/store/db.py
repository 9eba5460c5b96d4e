"""The collector's database: one :class:`Store` over SQLAlchemy Core, SQLite or PostgreSQL.

Everything a batch of results changes (deduplication key, current state, transitions, the
month's inspection record, incidents and their timeline) is written in one transaction, and
the MQTT message is acknowledged only after it commits: a crash can redeliver, never lose.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from checks.wire import WireGap
from collector.incidents.engine import (
    Policy,
    is_stale,
    offline_too_long,
    on_agent_state,
)
from collector.incidents.rules import Rules
from collector.store.batch import BatchWriter
from collector.store.fastsql import execute_many, run
from collector.store.incident_ops import (
    GENESIS,
    SYSTEM,
    IncidentOps,
    IngestStats,
    Raised,
    event_hash,
)
from collector.store.migrate import upgrade
from collector.store.schema import (
    agents,
    gaps,
    incident_events,
    incident_impacts,
    incidents,
    inspection,
    maintenance,
    received,
    report_reviews,
    targets,
)
from collector.store.schema import current as current_t
from collector.store.times import utc

__all__ = ["AgentBatches", "IngestStats", "Store", "utc"]

log = logging.getLogger(__name__)

AGENT_CHECK = "agent.online"
#: Agent state set by the collector, not the agent: "online" by its retained status, yet no
#: target of it has reported for its stale time (it died where no last will could follow).
SILENT = "silent"
STALE_CHECK = "data.stale"


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AgentBatches:
    """Consecutive result batches of one agent, for :meth:`Store.ingest_groups`."""

    site: str
    agent: str
    batches: Sequence[Sequence[Result]]
    gaps: Sequence[WireGap] = ()


#: How far ahead of the collector's clock a result may be stamped before it is distrusted.
MAX_CLOCK_AHEAD = timedelta(minutes=5)


_INSERT_RECEIVED = insert(received)
_SEEN = select(received.c.msg_id).where(received.c.msg_id.in_(bindparam("p_ids", expanding=True)))

#: Built once, like the following: every stored batch runs them.
_TOUCH_AGENT = (
    update(agents)
    .where(and_(agents.c.site == bindparam("p_site"), agents.c.agent == bindparam("p_agent")))
    .values(last_seen=bindparam("p_now"))
)

#: Built once (the ingest path asks it for every result that opens an incident).
_IN_MAINTENANCE = (
    select(maintenance.c.id)
    .where(
        and_(
            maintenance.c.site == bindparam("p_site"),
            or_(maintenance.c.target == "", maintenance.c.target == bindparam("p_target")),
            maintenance.c.starts_at <= bindparam("p_at"),
            maintenance.c.ends_at > bindparam("p_at"),
        )
    )
    .limit(1)
)


def _bound_future(results: list[Result], now: datetime, site: str, agent: str) -> list[Result]:
    """A result stamped in the future (an agent whose clock jumped) would stay "current"
    until that date and freeze its check. It is taken as observed now, and flagged."""
    out: list[Result] = []
    worst = timedelta(0)
    for r in results:
        ahead = r.observed_at - now
        if ahead > MAX_CLOCK_AHEAD:
            worst = max(worst, ahead)
            r = replace(
                r,
                observed_at=now,
                summary=f"[agent clock ahead by {int(ahead.total_seconds())}s] {r.summary}"[:1024],
                facts={**r.facts, "clock_ahead_s": str(int(ahead.total_seconds()))},
            )
        out.append(r)
    if worst:
        log.warning(
            "agent %s/%s stamps results in the future (up to %s ahead of this collector); "
            "taken as received now, flagged in their summary",
            site,
            agent,
            worst,
        )
    return out


#: The order results of one batch are applied in: a target's in observation order (in C, not
#: a Python call per result).
_target_then_time = attrgetter("target", "observed_at")


def _retryable(exc: Exception) -> bool:
    """Unique violations (a concurrent twin), deadlocks, serialisation failures, busy SQLite."""
    text = str(exc).lower()
    return isinstance(exc, IntegrityError) or any(
        word in text for word in ("deadlock", "could not serialize", "database is locked")
    )


class ActionError(ValueError):
    """A person's action that cannot be applied: missing or invalid input."""


class StateConflict(ActionError):
    """The action does not fit the incident's current state (closing an open incident)."""


class NotFound(ActionError):
    """No such incident."""


def _value_text(value: float | str | None) -> str | None:
    if value is None:
        return None
    return f"{value:g}" if isinstance(value, float) else value


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
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- writing

    def ingest(
        self,
        site: str,
        agent: str,
        results: Sequence[Result],
        classes: Mapping[str, DeviceClass],
        rules: Rules | Policy,
        now: datetime,
        gaps: Sequence[WireGap] = (),
    ) -> IngestStats:
        """Store a batch in one transaction. When another collector sharing the database
        opened the same incident a moment earlier, the unique index refuses ours: the whole
        batch is retried and then sees (and updates) theirs."""
        (stats,) = self.ingest_groups(
            [AgentBatches(site, agent, [results], gaps)], classes, rules, now
        )
        return stats

    def _retrying(self, work: Callable[[], _T], attempts: int = 5) -> _T:
        for attempt in range(attempts):
            try:
                return work()
            except (IntegrityError, OperationalError) as exc:
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                log.info("concurrent write (%s); retrying the batch", type(exc).__name__)
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def ingest_groups(
        self,
        groups: Sequence[AgentBatches],
        classes: Mapping[str, DeviceClass],
        rules: Rules | Policy,
        now: datetime,
    ) -> list[IngestStats]:
        """Batches of several agents (consecutive messages, in order) in one transaction:
        each agent's batches applied in turn exactly as :meth:`ingest` applies one, one
        commit for all. Thousands of agents each sending one message per cycle would
        otherwise cost one transaction (and its fixed reads and fsync) per message."""
        rules = rules if isinstance(rules, Rules) else Rules(policy=rules)

        def work() -> list[IngestStats]:
            with self.engine.begin() as conn:
                return [
                    self._ingest_in(conn, g.site, g.agent, g.batches, classes, rules, now, g.gaps)
                    for g in groups
                ]

        return self._retrying(work)

    def _ingest_in(
        self,
        conn: Connection,
        site: str,
        agent: str,
        batches: Sequence[Sequence[Result]],
        classes: Mapping[str, DeviceClass],
        rules: Rules,
        now: datetime,
        gap_records: Sequence[WireGap] = (),
    ) -> IngestStats:
        """One agent's batches inside the caller's transaction."""
        stats = IngestStats()
        self._store_gaps(conn, site, agent, gap_records, now)
        ids = [r.msg_id for results in batches for r in results]
        seen = {row[0] for row in run(conn, _SEEN, {"p_ids": ids}).rows} if ids else set()
        fresh_batches: list[list[Result]] = []
        batch_ids: set[str] = set()
        for results in batches:
            fresh: list[Result] = []
            for r in results:
                if r.msg_id in seen or r.msg_id in batch_ids:
                    stats.duplicates += 1
                else:
                    batch_ids.add(r.msg_id)
                    fresh.append(r)
            if fresh:
                fresh = _bound_future(fresh, now, site, agent)
                # Results of one target in observation order, so transitions are in
                # order too.
                fresh.sort(key=_target_then_time)
                fresh_batches.append(fresh)
        if not fresh_batches:
            return stats
        execute_many(conn, _INSERT_RECEIVED, [{"msg_id": m, "received_at": now} for m in batch_ids])
        self._touch_agent(conn, site, agent, now)
        writer = BatchWriter(
            conn, site, agent, classes, rules, self.tz, self._in_maintenance, stats
        )
        writer.load([r for fresh in fresh_batches for r in fresh])
        # Batch after batch, as if each were its own transaction.
        for fresh in fresh_batches:
            for r in fresh:
                writer.apply(r)
            stats.accepted += len(fresh)
        writer.flush()
        return stats

    def _store_gaps(
        self, conn: Connection, site: str, agent: str, records: Sequence[WireGap], now: datetime
    ) -> None:
        for g in records:
            known = conn.execute(
                select(gaps.c.id).where(
                    and_(gaps.c.site == site, gaps.c.agent == agent, gaps.c.gap_id == g.gap_id)
                )
            ).first()
            if known is None:
                conn.execute(
                    insert(gaps).values(
                        site=site,
                        agent=agent,
                        gap_id=g.gap_id,
                        dropped=g.dropped,
                        first_observed=g.first_observed,
                        last_observed=g.last_observed,
                        recorded_at=g.recorded_at,
                    )
                )
                log.warning(
                    "agent %s/%s dropped %d results (%s .. %s)",
                    site,
                    agent,
                    g.dropped,
                    g.first_observed,
                    g.last_observed,
                )

    def _touch_agent(self, conn: Connection, site: str, agent: str, now: datetime) -> None:
        done = run(conn, _TOUCH_AGENT, {"p_site": site, "p_agent": agent, "p_now": now})
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

    def _in_maintenance(
        self, conn: Connection, rules: Rules, site: str, target: str, at: datetime
    ) -> bool:
        if rules.configured_window(site, target, at) is not None:
            return True
        row = conn.execute(
            _IN_MAINTENANCE, {"p_site": site, "p_target": target, "p_at": at}
        ).first()
        return row is not None

    def set_agent_state(
        self,
        site: str,
        agent: str,
        state: str,
        at: datetime,
        version: str,
        rules: Rules | Policy,
        now: datetime,
    ) -> IngestStats:
        rules = rules if isinstance(rules, Rules) else Rules(policy=rules)
        return self._retrying(
            lambda: self._agent_state(site, agent, state, at, version, rules, now)
        )

    def _agent_state(
        self,
        site: str,
        agent: str,
        state: str,
        at: datetime,
        version: str,
        rules: Rules,
        now: datetime,
    ) -> IngestStats:
        policy = rules.policy_for(site)
        stats = IngestStats()
        with self.engine.begin() as conn:
            where = and_(agents.c.site == site, agents.c.agent == agent)
            row = conn.execute(select(agents.c.state, agents.c.state_since).where(where)).first()
            if row is not None and row[0] == SILENT and state == "online":
                since = utc(row[1])
                if since is not None and at < since:
                    # The broker's retained "online" from before the agent went silent, seen
                    # again after a collector restart: old news, not a reconnect.
                    return stats
            if row is None:
                conn.execute(
                    insert(agents).values(
                        site=site,
                        agent=agent,
                        state=state,
                        state_since=now,
                        last_seen=now,
                        version=version,
                    )
                )
            elif row[0] != state:
                conn.execute(
                    update(agents)
                    .where(where)
                    .values(state=state, state_since=now, last_seen=now, version=version)
                )
            ops = IncidentOps(conn)
            open_inc = ops.open_for(site, agent, AGENT_CHECK)
            decision = on_agent_state(open_inc, state, policy.agent_offline_grace)
            if decision.action == "open":
                self._open_agent_incident(
                    ops, site, agent, policy, now, stats, "the broker lost its connection"
                )
            elif decision.action == "resolve" and open_inc is not None:
                ops.resolve(open_inc.id, now, "agent back online", stats, data={"state": state})
        return stats

    @staticmethod
    def _open_agent_incident(
        ops: IncidentOps,
        site: str,
        agent: str,
        policy: Policy,
        now: datetime,
        stats: IngestStats,
        why: str,
    ) -> None:
        ops.open(
            site=site,
            target=agent,
            key=AGENT_CHECK,
            check=AGENT_CHECK,
            item="",
            level=policy.agent_offline_level,
            title=f"{agent}: agent offline",
            summary=f"agent {agent} went offline: {why}",
            at=now,
            stats=stats,
            source="agent",
            data={"state": "offline"},
        )

    def prune_received(self, older_than: timedelta, now: datetime) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    received.delete().where(received.c.received_at < now - older_than)
                ).rowcount
            )

    # ----------------------------------------------------------------- the clock

    def sweep(self, rules: Rules, now: datetime) -> IngestStats:
        """Time-driven duties, run every few seconds: targets gone quiet, SLA tiers and
        breaches, SLA pauses following maintenance windows."""
        stats = IngestStats()
        with self.engine.begin() as conn:
            ops = IncidentOps(conn)
            self._sweep_silent_agents(conn, rules, now)
            self._sweep_stale(conn, ops, rules, now, stats)
            self._sweep_offline_agents(conn, ops, rules, now, stats)
            # Stored windows open now, read once: asking per open incident cost one query
            # each, every tick, with thousands of incidents open.
            active = {
                (str(site), str(target))
                for site, target in conn.execute(
                    select(maintenance.c.site, maintenance.c.target).where(
                        and_(maintenance.c.starts_at <= now, maintenance.c.ends_at > now)
                    )
                )
            }
            rows = conn.execute(select(incidents).where(incidents.c.state == "open")).mappings()
            for row in list(rows):
                site, target = row["site"], row["target"]
                in_window = (
                    (site, "") in active
                    or (site, target) in active
                    or rules.configured_window(site, target, now) is not None
                )
                pauses = row["pauses"] or []
                running = bool(pauses) and pauses[-1][1] is None
                changed = False
                if in_window and not running:
                    changed = ops.pause(int(row["id"]), now, "maintenance window", SYSTEM)
                elif running and not in_window and pauses[-1][2] == "maintenance window":
                    changed = ops.resume(int(row["id"]), now, SYSTEM, "maintenance window ended")
                # Read again only when a pause changed it.
                current_row = ops.row(int(row["id"])) if changed else row
                ops.escalate(current_row, rules.sla_for(site), now, stats)
            self._sweep_analysis(conn, ops, now, stats)
        return stats

    def _sweep_analysis(
        self, conn: Connection, ops: IncidentOps, now: datetime, stats: IngestStats
    ) -> None:
        """The fault analysis report (故障分析说明) is due within 3 days of resolution: an
        overdue one is raised once, like a missed deadline. Merged incidents need none."""
        due = conn.execute(
            select(incidents).where(
                and_(
                    incidents.c.state.in_(("resolved", "closed")),
                    incidents.c.analysis.is_(None),
                    incidents.c.analysis_due < now,
                    incidents.c.source != "agent",
                )
            )
        ).mappings()
        for row in list(due):
            if "analysis" in (row["breaches"] or []):
                continue
            conn.execute(
                update(incidents)
                .where(incidents.c.id == row["id"])
                .values(breaches=sorted({*(row["breaches"] or []), "analysis"}))
            )
            ops.event(
                int(row["id"]),
                now,
                "breached",
                SYSTEM,
                "fault analysis report overdue (due within 3 days of resolution)",
                {"deadline": "analysis"},
            )
            stats.raised.append(
                Raised(
                    str(row["number"]),
                    "reminder",
                    row["site"],
                    row["target"],
                    int(row["level"]),
                    int(row["tier"]),
                    row["title"],
                    "fault analysis report overdue",
                    now,
                    utc(row["analysis_due"]),
                )
            )

    def _sweep_silent_agents(self, conn: Connection, rules: Rules, now: datetime) -> None:
        """An agent that says it is online but from which no target has sent anything for its
        stale time is taken as offline: it died while the broker could not see it go (killed
        during a broker restart, a host frozen), so no last will will ever come. One agent
        incident then covers its targets instead of one "no data" incident per target."""
        newest: dict[tuple[str, str], list[bool]] = {}
        for t in conn.execute(
            select(targets.c.site, targets.c.agent, targets.c.last_seen, targets.c.cadence)
        ).mappings():
            last = utc(t["last_seen"])
            if last is None:
                continue
            quiet = is_stale(last, t["cadence"], now, rules.policy_for(t["site"]))
            newest.setdefault((t["site"], t["agent"]), []).append(quiet)
        for a in conn.execute(select(agents).where(agents.c.state == "online")).mappings():
            key = (a["site"], a["agent"])
            if key in newest and all(newest[key]):
                conn.execute(
                    update(agents)
                    .where(and_(agents.c.site == key[0], agents.c.agent == key[1]))
                    .values(state=SILENT, state_since=now)
                )

    def _sweep_offline_agents(
        self, conn: Connection, ops: IncidentOps, rules: Rules, now: datetime, stats: IngestStats
    ) -> None:
        """Agents offline past their grace get their one incident (see ``on_agent_state``)."""
        gone = agents.c.state.in_(("offline", SILENT))
        for a in conn.execute(select(agents).where(gone)).mappings():
            site, agent = str(a["site"]), str(a["agent"])
            policy = rules.policy_for(site)
            since = utc(a["state_since"]) or now
            if not offline_too_long(str(a["state"]), since, now, policy):
                continue
            if ops.open_for(site, agent, AGENT_CHECK) is not None:
                continue
            quiet = int((now - since).total_seconds())
            self._open_agent_incident(
                ops, site, agent, policy, now, stats, f"no contact for {quiet} s"
            )

    def _sweep_stale(
        self, conn: Connection, ops: IncidentOps, rules: Rules, now: datetime, stats: IngestStats
    ) -> None:
        """A target whose results stopped arriving goes UNKNOWN and gets one incident, unless
        its agent is offline (the agent's incident already covers every target it watches)."""
        agent_state = {
            (a["site"], a["agent"]): a["state"] for a in conn.execute(select(agents)).mappings()
        }
        # Only what the staleness test needs: the facts (JSON) of thousands of targets were
        # decoded every tick for the few that go stale; those are read on their own below.
        rows = (
            conn.execute(
                select(
                    targets.c.site,
                    targets.c.target,
                    targets.c.agent,
                    targets.c.last_seen,
                    targets.c.cadence,
                ).where(targets.c.stale.is_(False))
            )
            .mappings()
            .all()
        )
        for t in rows:
            site, target = t["site"], t["target"]
            policy = rules.policy_for(site)
            last = utc(t["last_seen"])
            if last is None or not is_stale(last, t["cadence"], now, policy):
                continue
            if agent_state.get((site, t["agent"])) != "online":
                continue
            conn.execute(
                update(targets)
                .where(and_(targets.c.site == site, targets.c.target == target))
                .values(stale=True)
            )
            quiet = f"no results since {last.isoformat()}"
            conn.execute(
                update(current_t)
                .where(
                    and_(
                        current_t.c.site == site,
                        current_t.c.target == target,
                        current_t.c.status != int(Status.UNKNOWN),
                    )
                )
                .values(status=int(Status.UNKNOWN), summary=quiet, since=now, ok_streak=0)
            )
            if self._in_maintenance(conn, rules, site, target, now):
                continue
            if ops.open_for(site, target, STALE_CHECK) is None:
                full = (
                    conn.execute(
                        select(targets.c["class"], targets.c.facts).where(
                            and_(targets.c.site == site, targets.c.target == target)
                        )
                    )
                    .mappings()
                    .one()
                )
                ops.open(
                    site=site,
                    target=target,
                    key=STALE_CHECK,
                    check=STALE_CHECK,
                    item="",
                    level=policy.stale_level,
                    title=f"{target}: no data",
                    summary=quiet,
                    at=now,
                    stats=stats,
                    source="stale",
                    device_class=str(full["class"]),
                    vendor=str((full["facts"] or {}).get("vendor", "")),
                )

    # ----------------------------------------------------------------- people's actions

    def _by_number(self, conn: Connection, number: str) -> RowMapping:
        row = conn.execute(select(incidents).where(incidents.c.number == number)).mappings().first()
        if row is None:
            raise NotFound(f"no incident {number}")
        return row

    def act(self, number: str, action: str, author: str, now: datetime, **args: Any) -> IngestStats:
        """Apply one person's action to an incident, recorded on its timeline.

        Actions: ack, assign (to), note (text), activity (kind, text), level (level, reason),
        pause (reason), resume, onsite, restore, resolve (text), close (score, comment),
        analysis (symptoms, handling, result, prevention).
        """
        stats = IngestStats()
        with self.engine.begin() as conn:
            ops = IncidentOps(conn)
            row = self._by_number(conn, number)
            inc_id, state = int(row["id"]), str(row["state"])
            text = str(args.get("text", "")).strip()

            def need(*states: str) -> None:
                if state not in states:
                    raise StateConflict(
                        f"{number} is {state}; {action} needs {' or '.join(states)}"
                    )

            def set_(**values: Any) -> None:
                conn.execute(update(incidents).where(incidents.c.id == inc_id).values(**values))

            if action == "ack":
                need("open")
                if row["responded_at"] is None:
                    set_(responded_at=now)
                ops.event(inc_id, now, "acknowledged", author, text or "acknowledged")
            elif action == "assign":
                need("open", "resolved")
                to = str(args.get("to", "")).strip()
                if not to:
                    raise ActionError("assign needs the engineer's name")
                set_(assignee=to, **({"responded_at": now} if row["responded_at"] is None else {}))
                ops.event(inc_id, now, "assigned", author, f"taken over by {to}", {"to": to})
            elif action == "note":
                if not text:
                    raise ActionError("a note needs text")
                ops.event(inc_id, now, "note", author, text)
            elif action == "activity":
                kind = str(args.get("kind", ""))
                if kind not in ("call", "remote", "visit", "part", "other"):
                    raise ActionError("activity kind is one of call, remote, visit, part, other")
                if not text:
                    raise ActionError("an activity needs a description")
                ops.event(inc_id, now, f"activity:{kind}", author, text, {"kind": kind})
            elif action == "level":
                need("open")
                level = int(args.get("level", 0))
                if not 1 <= level <= 4:
                    raise ActionError("level must be 1-4")
                reason = text or str(args.get("reason", "")).strip()
                if not reason:
                    raise ActionError("changing the level needs a reason")
                set_(level=level)
                ops.event(
                    inc_id,
                    now,
                    "level",
                    author,
                    f"level {row['level']} -> {level}: {reason}",
                    {"from": int(row["level"]), "to": level},
                )
            elif action == "pause":
                need("open")
                if not ops.pause(inc_id, now, text or "waiting on the customer", author):
                    raise StateConflict(f"{number} is already paused")
            elif action == "resume":
                need("open")
                if not ops.resume(inc_id, now, author, text):
                    raise StateConflict(f"{number} is not paused")
            elif action in ("onsite", "restore"):
                need("open")
                column = "onsite_at" if action == "onsite" else "restored_at"
                set_(**{column: now})
                ops.event(
                    inc_id,
                    now,
                    action,
                    author,
                    text or ("engineer on site" if action == "onsite" else "service restored"),
                )
            elif action == "resolve":
                need("open")
                if not text:
                    raise ActionError("resolving needs a description of what was done")
                ops.resolve(inc_id, now, text, stats, author=author)
            elif action == "close":
                need("resolved")
                score = args.get("score")
                if score is not None and not 1 <= int(score) <= 5:
                    raise ActionError("satisfaction score is 1-5")
                comment = str(args.get("comment", ""))
                set_(
                    state="closed",
                    closed_at=now,
                    satisfaction=int(score) if score is not None else None,
                    satisfaction_comment=comment,
                )
                ops.event(
                    inc_id,
                    now,
                    "closed",
                    author,
                    "closed" + (f"; satisfaction {score}/5" if score is not None else ""),
                    {"score": score, "comment": comment},
                )
            elif action == "analysis":
                need("resolved", "closed")
                fields = ("symptoms", "handling", "result", "prevention")
                report = {f: str(args.get(f, "")).strip() for f in fields}
                missing = [f for f in fields if not report[f]]
                if missing:
                    raise ActionError(f"fault analysis needs {', '.join(missing)}")
                set_(analysis={**report, "author": author, "at": now.isoformat()})
                ops.event(inc_id, now, "analysis", author, "fault analysis report filed", report)
            else:
                raise ActionError(f"unknown action {action!r}")
        return stats

    def open_manual(
        self,
        *,
        site: str,
        target: str,
        level: int,
        title: str,
        description: str,
        caller: Mapping[str, str],
        author: str,
        now: datetime,
    ) -> tuple[str, IngestStats]:
        """An incident opened by hand: a customer's phone call, an engineer's finding. The
        device's class and vendor come from its stored facts, as for an automatic incident,
        so the board's class and vendor filters find it too."""
        if not 1 <= level <= 4:
            raise ActionError("level must be 1-4")
        if not title.strip():
            raise ActionError("a title is required")
        stats = IngestStats()
        with self.engine.begin() as conn:
            ops = IncidentOps(conn)
            trow = (
                conn.execute(
                    select(targets.c["class"], targets.c.facts).where(
                        and_(targets.c.site == site, targets.c.target == target)
                    )
                ).first()
                if target
                else None
            )
            facts = trow[1] if trow and isinstance(trow[1], dict) else {}
            key = f"manual.{int(now.timestamp() * 1000)}"
            inc = ops.open(
                site=site,
                target=target or site,
                key=key,
                check="manual",
                item="",
                level=level,
                title=title.strip(),
                summary=description.strip(),
                at=now,
                stats=stats,
                source="manual",
                author=author,
                caller=caller,
                device_class=str(trow[0] or "") if trow else "",
                vendor=str(facts.get("vendor") or ""),
            )
        return inc.number, stats

    def record_notification(
        self,
        numbers: Sequence[str],
        channel: str,
        ok: bool,
        detail: str,
        attempts: int,
        final: bool,
        at: datetime,
    ) -> None:
        """Every send is on the timeline with its outcome (the contracts' point 6)."""
        with self.engine.begin() as conn:
            ops = IncidentOps(conn)
            rows = conn.execute(
                select(incidents.c.id).where(incidents.c.number.in_(list(numbers)))
            ).all()
            verdict = "sent" if ok else ("failed, giving up" if final else "failed, will retry")
            for (inc_id,) in rows:
                ops.event(
                    int(inc_id),
                    at,
                    "notified",
                    SYSTEM,
                    f"{channel}: {verdict}: {detail}"[:1000],
                    {"channel": channel, "ok": ok, "attempts": attempts, "final": final},
                )

    def add_window(
        self, site: str, target: str, start: datetime, end: datetime, reason: str, author: str
    ) -> int:
        """A one-off window. Times are stored in UTC: SQLite keeps only a datetime's wall-clock
        part, so a +08:00 time stored as given would be compared eight hours off."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ActionError("a maintenance window needs times with a UTC offset")
        if end <= start:
            raise ActionError("a maintenance window must end after it starts")
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(maintenance).values(
                        site=site,
                        target=target,
                        starts_at=start.astimezone(UTC),
                        ends_at=end.astimezone(UTC),
                        reason=reason,
                        author=author,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    # ----------------------------------------------------------------- reading

    def incidents(
        self,
        *,
        site: str | None = None,
        sites: Sequence[str] | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        level: int | None = None,
        vendor: str | None = None,
        device_class: str | None = None,
        check: str | None = None,
        target: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[RowMapping]:
        """Search the tracking record (point 9: by vendor, type and time range, and more)."""
        q = (
            select(incidents)
            .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if site:
            q = q.where(incidents.c.site == site)
        if sites is not None:
            q = q.where(incidents.c.site.in_(list(sites)))
        for column, value in (
            (incidents.c.level, level),
            (incidents.c.vendor, vendor),
            (incidents.c.device_class, device_class),
            (incidents.c.check, check),
            (incidents.c.target, target),
        ):
            if value is not None and value != "":
                q = q.where(column == value)
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

    def impacts(self, incident_id: int) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(incident_impacts)
                    .where(incident_impacts.c.incident_id == incident_id)
                    .order_by(incident_impacts.c.target)
                ).mappings()
            )

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

    def status_tuples(self, checks: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
        """(site, target, check, item, status) of every current row (only ``checks``, when
        given), as plain tuples in no particular order: what a metrics scrape needs of
        100,000 rows, without the summary text and timestamps it would fetch and convert."""
        q = select(
            current_t.c.site,
            current_t.c.target,
            current_t.c.check,
            current_t.c.item,
            current_t.c.status,
        )
        if checks is not None:
            q = q.where(current_t.c.check.in_(list(checks)))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

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
        return self.first_broken(incident_id) is None

    def first_broken(self, incident_id: int) -> int | None:
        """Id of the first timeline entry whose hash does not match, or None if intact."""
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
                    return int(ev["id"])
                prev = ev["hash"]
        return None

    def verify_all(self) -> list[tuple[str, int]]:
        """(incident number, first broken entry id) for every incident whose chain is broken."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(incidents.c.id, incidents.c.number)).all()
        out: list[tuple[str, int]] = []
        for inc_id, number in rows:
            broken = self.first_broken(int(inc_id))
            if broken is not None:
                out.append((str(number), broken))
        return out

    # Read-only views for the metrics collector (collector/metrics.py): each is one query,
    # so a scrape costs a fixed number of round trips however many sites there are.

    def open_incident_rows(self) -> list[RowMapping]:
        """Open incidents with what their SLA clock needs (clock_of) plus site and tier."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(
                        incidents.c.site,
                        incidents.c.level,
                        incidents.c.tier,
                        incidents.c.opened_at,
                        incidents.c.pauses,
                        incidents.c.responded_at,
                        incidents.c.onsite_at,
                        incidents.c.restored_at,
                        incidents.c.resolved_at,
                    ).where(incidents.c.state == "open")
                ).mappings()
            )

    def target_overview(self) -> list[RowMapping]:
        """(site, target, class, stale) of every known target, all sites."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(targets.c.site, targets.c.target, targets.c["class"], targets.c.stale)
                ).mappings()
            )

    def failed_notifications(self) -> list[tuple[str, int]]:
        """(channel, count) of failed sends on incident timelines: append-only, so the counts
        only grow and can be exposed as counters that survive a collector restart."""
        channel = incident_events.c.data["channel"].as_string()
        q = (
            select(channel, func.count())
            .where(
                and_(
                    incident_events.c.kind == "notified",
                    incident_events.c.data["ok"].as_boolean().is_(False),
                )
            )
            .group_by(channel)
        )
        with self.engine.connect() as conn:
            return [(str(c or ""), int(n)) for c, n in conn.execute(q)]

    def dropped_by_agent(self) -> list[tuple[str, str, int]]:
        """(site, agent, results dropped) summed over the gap records agents sent: like the
        failed sends, they only grow, so they can be exposed as counters."""
        q = select(gaps.c.site, gaps.c.agent, func.sum(gaps.c.dropped)).group_by(
            gaps.c.site, gaps.c.agent
        )
        with self.engine.connect() as conn:
            return [(str(s), str(a), int(n or 0)) for s, a, n in conn.execute(q)]

    # ----------------------------------------------------------------- report reviews

    def report_review(self, kind: str, site: str, period: str, lang: str) -> RowMapping | None:
        """The latest version of a report's review record, or None if never reviewed."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(report_reviews)
                    .where(
                        and_(
                            report_reviews.c.kind == kind,
                            report_reviews.c.site == site,
                            report_reviews.c.period == period,
                            report_reviews.c.lang == lang,
                        )
                    )
                    .order_by(report_reviews.c.version.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )

    def save_report_draft(
        self,
        kind: str,
        site: str,
        period: str,
        lang: str,
        remarks: Mapping[str, str],
        now: datetime,
    ) -> RowMapping:
        """Keep ``remarks`` on the report's draft: the latest version while it is a draft,
        otherwise a new version. An approved version is never edited, so what a reviewer
        signed stays as signed."""
        where = and_(
            report_reviews.c.kind == kind,
            report_reviews.c.site == site,
            report_reviews.c.period == period,
            report_reviews.c.lang == lang,
        )
        with self.engine.begin() as conn:
            latest = (
                conn.execute(
                    select(report_reviews)
                    .where(where)
                    .order_by(report_reviews.c.version.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if latest is not None and latest["state"] == "draft":
                conn.execute(
                    update(report_reviews)
                    .where(report_reviews.c.id == latest["id"])
                    .values(remarks=dict(remarks))
                )
                review_id = int(latest["id"])
            else:
                review_id = int(
                    conn.execute(
                        insert(report_reviews).values(
                            kind=kind,
                            site=site,
                            period=period,
                            lang=lang,
                            version=(int(latest["version"]) + 1) if latest else 1,
                            state="draft",
                            remarks=dict(remarks),
                            reviewer="",
                            created_at=now,
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]
                )
            row = (
                conn.execute(select(report_reviews).where(report_reviews.c.id == review_id))
                .mappings()
                .one()
            )
        return row

    def approve_report(
        self, review_id: int, reviewer: str, content_hash: str, now: datetime
    ) -> None:
        """Freeze a draft version: who approved it, when, and the hash of the data approved."""
        if not reviewer.strip():
            raise ActionError("approving a report needs the reviewer's name")
        with self.engine.begin() as conn:
            done = conn.execute(
                update(report_reviews)
                .where(and_(report_reviews.c.id == review_id, report_reviews.c.state == "draft"))
                .values(
                    state="approved",
                    reviewer=reviewer.strip(),
                    approved_at=now,
                    content_hash=content_hash,
                )
            )
            if done.rowcount == 0:
                raise StateConflict("only a draft report can be approved")

    # ------------------------------------------------------------ web console reads

    def change_mark(self, sites: Sequence[str] | None = None) -> tuple[int, int, int]:
        """A cheap "has anything changed" mark for the live board: the newest incident id,
        the newest timeline entry id and the number of open incidents (within ``sites``)."""
        ev = select(func.max(incident_events.c.id)).join(
            incidents, incidents.c.id == incident_events.c.incident_id
        )
        inc = select(func.max(incidents.c.id), func.count().filter(incidents.c.state == "open"))
        if sites is not None:
            ev = ev.where(incidents.c.site.in_(list(sites)))
            inc = inc.where(incidents.c.site.in_(list(sites)))
        with self.engine.connect() as conn:
            last_event = conn.execute(ev).scalar()
            last_inc, open_n = conn.execute(inc).one()
        return int(last_inc or 0), int(last_event or 0), int(open_n or 0)

    def site_names(self) -> list[str]:
        """Every site the store knows of, from its devices and its incidents."""
        q = select(targets.c.site).union(select(incidents.c.site))
        with self.engine.connect() as conn:
            return sorted(str(s) for s in conn.execute(q).scalars())

    def target_row(self, site: str, target: str) -> RowMapping | None:
        q = select(targets).where(and_(targets.c.site == site, targets.c.target == target))
        with self.engine.connect() as conn:
            return conn.execute(q).mappings().first()

    def device_inspection_rows(self, site: str, target: str, month: str) -> list[RowMapping]:
        q = (
            select(inspection)
            .where(
                and_(
                    inspection.c.site == site,
                    inspection.c.target == target,
                    inspection.c.month == month,
                )
            )
            .order_by(inspection.c.check_key)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(q).mappings())

    def inspection_months(self, site: str) -> list[str]:
        """The months (``YYYY-MM``, newest first) with inspection records for ``site``: the
        periods a monthly report can be written for."""
        q = (
            select(inspection.c.month)
            .where(inspection.c.site == site)
            .distinct()
            .order_by(inspection.c.month.desc())
        )
        with self.engine.connect() as conn:
            return [str(m) for m in conn.execute(q).scalars()]

    def incident_choices(self, sites: Sequence[str] | None = None) -> dict[str, list[str]]:
        """The device classes and vendors incidents (within ``sites``) carry: the choices of
        the board's filters, so nobody has to guess how a vendor is spelt."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            columns = (("class", incidents.c.device_class), ("vendor", incidents.c.vendor))
            for name, column in columns:
                q = select(column).where(column.is_not(None), column != "").distinct()
                if sites is not None:
                    q = q.where(incidents.c.site.in_(list(sites)))
                out[name] = sorted(str(v) for v in conn.execute(q).scalars())
        return out
