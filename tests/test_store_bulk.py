"""The faster ingest and scrape paths store and expose exactly what the plain ones do:
several agents in one transaction, the SQLite bulk writer, and /metrics written as text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import Policy
from collector.metrics import build_registry, exposition
from collector.store.batch import execute_many
from collector.store.db import AgentBatches, Store
from collector.store.schema import current, transitions

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CLASSES = load_catalogue()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def _results(target_prefix: str, cycle: int) -> list[Result]:
    """Ten targets × two checks; target 3 fails in cycle 1 and recovers in cycle 2."""
    out: list[Result] = []
    for n in range(10):
        failing = n == 3 and cycle == 1
        for check in ("snmp.reachable", "cpu.usage"):
            out.append(
                Result(
                    target=f"{target_prefix}-{n}",
                    target_class="snmp-device",
                    check=check,
                    status=Status.CRIT if failing and check == "snmp.reachable" else Status.OK,
                    value=float(cycle * 10 + n),
                    observed_at=T0 + timedelta(minutes=cycle),
                )
            )
    return out


def _state(store: Store, site: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["target"], r["check_key"], r["status"], r["value"], r["since"], r["ok_streak"])
        for r in store.current_rows(site)
    )


def test_groups_of_agents_store_what_one_by_one_stores(store: Store) -> None:
    policy = Policy()
    grouped: list[list[str]] = []
    last: list[Result] = []
    for cycle in range(3):
        now = T0 + timedelta(minutes=cycle, seconds=1)
        last = _results("cam", cycle)
        stats = store.ingest_groups(
            [
                AgentBatches("g1", "a1", [last]),
                AgentBatches("g2", "a2", [_results("cam", cycle)]),
            ],
            CLASSES,
            policy,
            now,
        )
        assert [s.accepted for s in stats] == [20, 20]
        grouped.append([n for s in stats for n in s.opened])
        for site, agent in (("o1", "a1"), ("o2", "a2")):
            store.ingest(site, agent, _results("cam", cycle), CLASSES, policy, now)
    # One incident per site opened in cycle 1, none in the others; each resolved in cycle 2.
    assert [len(o) for o in grouped] == [0, 2, 0]
    for site in ("g1", "g2"):
        assert _state(store, site) == _state(store, "o1")
        [inc] = store.incidents(site=site)
        assert inc["target"] == "cam-3" and inc["state"] == "resolved"
        assert store.verify_timeline(int(inc["id"]))
    # Replayed in one transaction: every result comes back as a duplicate.
    again = store.ingest_groups(
        [AgentBatches("g1", "a1", [last]), AgentBatches("g2", "a2", [])],
        CLASSES,
        policy,
        T0 + timedelta(minutes=5),
    )
    assert again[0].duplicates == 20 and again[0].accepted == 0


def test_bulk_writer_stores_what_sqlalchemy_stores(store: Store) -> None:
    """Aware datetimes, NULLs and integers come back identical through both paths (on
    PostgreSQL the function is the ordinary path; on SQLite it is the DBAPI fast path)."""
    at = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
    rows = [
        {
            "site": "s",
            "target": f"t{i}",
            "check_key": "k",
            "check": "k",
            "item": "",
            "status": i % 4,
            "value": None if i % 2 else f"{i}",
            "unit": "",
            "summary": "x" * i,
            "observed_at": at + timedelta(seconds=i),
            "since": at,
            "ok_streak": i,
        }
        for i in range(6)
    ]
    moves = [
        {"site": "s", "target": f"t{i}", "check_key": "k", "from_status": None, "to_status": 1}
        | {"at": at + timedelta(seconds=i)}
        for i in range(3)
    ]
    with store.engine.begin() as conn:
        execute_many(conn, current.insert(), rows[:3])
        conn.execute(current.insert(), rows[3:])
        execute_many(conn, transitions.insert(), moves)
    got = {r["target"]: dict(r) for r in store.current_rows("s")}
    for row in rows:
        stored = got[str(row["target"])]
        assert stored["value"] == row["value"] and stored["status"] == row["status"]
        assert stored["observed_at"].replace(tzinfo=UTC) == row["observed_at"]
    with store.engine.connect() as conn:
        ats = [r[0].replace(tzinfo=UTC) for r in conn.execute(select(transitions.c.at))]
    assert sorted(ats) == [m["at"] for m in moves]


def test_check_status_text_parses_with_awkward_labels(store: Store) -> None:
    """The hand-written exposition must stay valid for a parser: quotes, backslashes and
    newlines in label values are escaped, and every current row is one sample."""
    item = 'C:\\ "data"\nvolume'
    results = [
        Result(
            target="srv-1",
            target_class="linux-server",
            check="disk.usage",
            item=item,
            status=Status.WARN,
            value=91.0,
            observed_at=T0,
        ),
        Result(
            target="srv-1",
            target_class="linux-server",
            check="host.reachable",
            status=Status.OK,
            value="up",
            observed_at=T0,
        ),
    ]
    store.ingest("s1", "a1", results, CLASSES, Policy(), T0 + timedelta(seconds=1))
    registry, _ = build_registry(store)
    families = {f.name: f for f in text_string_to_metric_families(exposition(registry).decode())}
    samples = {
        (s.labels["check"], s.labels["item"]): s.value
        for s in families["fieldmon_check_status"].samples
    }
    assert samples == {("disk.usage", item): 1.0, ("host.reachable", ""): 0.0}
    devices = families["fieldmon_devices_targets"].samples
    assert [(s.labels["state"], s.value) for s in devices if s.value] == [("up", 1.0)]
