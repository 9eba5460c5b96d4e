"""The store on SQLite and PostgreSQL: deduplication, incidents, order, timeline hashes."""

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import Policy
from collector.store.db import Store
from collector.store.schema import incident_events

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CLASSES = load_catalogue()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url, ZoneInfo("Asia/Shanghai"))
    yield s
    s.close()


def _r(status: Status, at: datetime, **kw: object) -> Result:
    base: dict[str, object] = dict(
        target="cam-01",
        target_class="snmp-device",
        check="snmp.reachable",
        status=status,
        value="up" if status == Status.OK else "down",
        observed_at=at,
    )
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def _ingest(store: Store, *results: Result, policy: Policy | None = None) -> object:
    # Received a moment after the newest observation, as on a live system.
    received = max(r.observed_at for r in results) + timedelta(seconds=1)
    return store.ingest("s1", "a1", list(results), CLASSES, policy or Policy(), received)


def test_open_repeat_resolve(store: Store) -> None:
    _ingest(store, _r(Status.OK, T0))
    s = _ingest(store, _r(Status.CRIT, T0 + timedelta(minutes=1)))
    assert len(s.opened) == 1  # type: ignore[attr-defined]
    _ingest(store, _r(Status.CRIT, T0 + timedelta(minutes=2)))
    [inc] = store.incidents(state="open")
    assert inc["level"] == 2  # snmp.reachable is a level-2 item in the catalogue
    assert inc["occurrences"] == 2
    assert inc["number"].startswith("FM-202611-")
    s = _ingest(store, _r(Status.OK, T0 + timedelta(minutes=3)))
    assert s.resolved == [inc["number"]]  # type: ignore[attr-defined]
    assert store.incidents(state="open") == []
    row, events = store.incident(inc["number"])  # type: ignore[misc]
    assert [e["kind"] for e in events] == ["opened", "resolved"]
    assert row["resolved_at"] is not None
    assert store.verify_timeline(int(row["id"]))


def test_duplicates_are_ignored(store: Store) -> None:
    r = _r(Status.CRIT, T0)
    first = _ingest(store, r)
    again = _ingest(store, r, r)
    assert first.accepted == 1 and len(first.opened) == 1  # type: ignore[attr-defined]
    assert again.accepted == 0 and again.duplicates == 2  # type: ignore[attr-defined]
    [inc] = store.incidents()
    assert inc["occurrences"] == 1


def test_late_result_does_not_move_state_back(store: Store) -> None:
    _ingest(store, _r(Status.CRIT, T0 + timedelta(minutes=5)))
    _ingest(store, _r(Status.OK, T0))  # replayed from an outbox, older than what we have
    [row] = store.current_rows()
    assert row["status"] == Status.CRIT
    assert len(store.incidents(state="open")) == 1


def test_one_open_incident_per_check_and_item(store: Store) -> None:
    _ingest(
        store,
        *[
            _r(Status.CRIT, T0, check="if.oper_status", item=f"Gi0/{i}", value="down")
            for i in (1, 2)
        ],
    )
    _ingest(
        store,
        _r(
            Status.CRIT,
            T0 + timedelta(minutes=1),
            check="if.oper_status",
            item="Gi0/1",
            value="down",
        ),
    )
    assert sorted(i["item"] for i in store.incidents(state="open")) == ["Gi0/1", "Gi0/2"]
    assert all(i["level"] == 3 for i in store.incidents())


def test_hysteresis(store: Store) -> None:
    p = Policy(resolve_after_ok=2)
    _ingest(store, _r(Status.CRIT, T0), policy=p)
    _ingest(store, _r(Status.OK, T0 + timedelta(minutes=1)), policy=p)
    assert len(store.incidents(state="open")) == 1
    _ingest(store, _r(Status.OK, T0 + timedelta(minutes=2)), policy=p)
    assert store.incidents(state="open") == []


def test_agent_offline_incident(store: Store) -> None:
    p = Policy(agent_offline_level=3, agent_offline_grace=timedelta(0))
    s = store.set_agent_state("s1", "a1", "offline", T0, "", p, T0)
    assert len(s.opened) == 1
    store.set_agent_state("s1", "a1", "offline", T0, "", p, T0)
    assert len(store.incidents(state="open")) == 1
    s = store.set_agent_state("s1", "a1", "online", T0, "", p, T0 + timedelta(minutes=1))
    assert len(s.resolved) == 1
    [inc] = store.incidents()
    assert inc["level"] == 3 and inc["check"] == "agent.online"


def test_inspection_month_uses_contract_time_zone(store: Store) -> None:
    # 2026-11-30 17:00 UTC is already 2026-12-01 01:00 in Shanghai.
    _ingest(store, _r(Status.OK, datetime(2026, 11, 30, 17, 0, tzinfo=UTC)))
    assert store.inspection_rows("s1", "2026-11") == []
    [row] = store.inspection_rows("s1", "2026-12")
    assert row["samples"] == 1


def test_inspection_keeps_worst_and_latest(store: Store) -> None:
    _ingest(store, _r(Status.OK, T0))
    _ingest(store, _r(Status.CRIT, T0 + timedelta(minutes=1)))
    _ingest(store, _r(Status.OK, T0 + timedelta(minutes=2)))
    [row] = store.inspection_rows("s1", "2026-11")
    assert (row["status"], row["worst"], row["samples"], row["failed_samples"]) == (
        Status.OK,
        Status.CRIT,
        3,
        1,
    )


def test_tampered_timeline_is_detected(store: Store) -> None:
    _ingest(store, _r(Status.CRIT, T0))
    _ingest(store, _r(Status.OK, T0 + timedelta(minutes=1)))
    [inc] = store.incidents()
    assert store.verify_timeline(int(inc["id"]))
    with store.engine.begin() as conn:
        conn.execute(
            update(incident_events)
            .where(incident_events.c.kind == "opened")
            .values(text="nothing happened")
        )
    assert not store.verify_timeline(int(inc["id"]))


def test_target_facts_merge(store: Store) -> None:
    _ingest(
        store,
        _r(
            Status.OK,
            T0,
            check="inventory.entity",
            value="SN1",
            facts={"serial": "SN1", "firmware": "1.0"},
        ),
    )
    _ingest(store, _r(Status.OK, T0 + timedelta(minutes=1), facts={"location": "gate"}))
    [t] = store.target_rows("s1")
    assert t["facts"] == {"serial": "SN1", "firmware": "1.0", "location": "gate"}


def test_two_collectors_open_exactly_one_incident(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two collectors (two engines) on one PostgreSQL storing failures of the same check at
    the same moment: the unique index, not luck, leaves exactly one open incident."""
    caplog.set_level(logging.INFO, logger="collector.store.db")
    stores = [Store(pg_url, ZoneInfo("Asia/Shanghai")) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        try:
            for i in range(15):
                barrier.wait()
                # Same target, same moment, different msg_id: a genuine race to open.
                r = _r(Status.CRIT, T0 + timedelta(seconds=i), target=f"cam-{i}")
                s.ingest("s1", "a1", [r], CLASSES, Policy(), datetime.now(UTC))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    rows = stores[0].incidents(state="open")
    assert sorted(r["target"] for r in rows) == sorted(f"cam-{i}" for i in range(15))
    assert all(r["occurrences"] == 2 for r in rows)
    # The race really happened: some batches lost it and were retried.
    assert any("retrying the batch" in m for m in caplog.messages)
    for s in stores:
        s.close()


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from collector.store.migrate import current_revision, head_revision
    from collector.store.schema import metadata

    s = Store(db_url)
    Store(db_url).close()  # a second start finds nothing to do
    assert current_revision(s.engine) == head_revision() == "0007"
    with s.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    s.close()


def test_migration_0007_repairs_from_status(db_url: str) -> None:
    """Transitions stored with from_status == to_status (collectors before revision 0007)
    get the previous transition's to_status back; a row without a predecessor is kept."""
    from alembic import command
    from sqlalchemy import insert, select

    from collector.store.migrate import alembic_config, upgrade
    from collector.store.schema import transitions

    s = Store(db_url)
    cfg = alembic_config()
    with s.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    ok, crit, warn = int(Status.OK), int(Status.CRIT), int(Status.WARN)
    stored = [
        # (check, from, to, minutes): as the faulty collectors wrote them
        ("cpu.usage", None, ok, 0),
        ("cpu.usage", crit, crit, 5),
        ("cpu.usage", ok, ok, 9),
        ("cpu.usage", warn, warn, 9),  # same instant: the id orders them
        ("mem.usage", crit, crit, 3),  # its first row is gone: nothing to repair from
        ("disk.usage", ok, crit, 4),  # already right: untouched
    ]
    with s.engine.begin() as conn:
        conn.execute(
            insert(transitions),
            [
                {
                    "site": "s1",
                    "target": "srv-1",
                    "check_key": check,
                    "from_status": before,
                    "to_status": after,
                    "at": t0 + timedelta(minutes=minutes),
                }
                for check, before, after, minutes in stored
            ],
        )
    upgrade(s.engine)
    with s.engine.connect() as conn:
        got = conn.execute(
            select(
                transitions.c.check_key, transitions.c.from_status, transitions.c.to_status
            ).order_by(transitions.c.id)
        ).all()
    assert [tuple(r) for r in got] == [
        ("cpu.usage", None, ok),
        ("cpu.usage", ok, crit),
        ("cpu.usage", crit, ok),
        ("cpu.usage", ok, warn),
        ("mem.usage", crit, crit),
        ("disk.usage", ok, crit),
    ]
    s.close()
