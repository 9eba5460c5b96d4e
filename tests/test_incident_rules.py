"""The incident rules of the contracts against a real SQLite store, on a clock moved by hand:
one root incident per outage, flapping, stale data, maintenance windows, SLA escalation,
people's actions and the tamper-evident timeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from collector.incidents.engine import Policy
from collector.incidents.rules import Rules, Window
from collector.incidents.sla import SlaPolicy
from collector.store.db import ActionError, Store
from collector.store.schema import incident_events

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
CLASSES = load_catalogue()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url, ZoneInfo("Asia/Shanghai"))
    yield s
    s.close()


def res(
    target: str,
    status: Status,
    at: datetime,
    check: str = "snmp.reachable",
    parent: str | None = None,
) -> Result:
    facts = {"parent": parent} if parent else {}
    return Result(
        target=target,
        target_class="snmp-device",
        check=check,
        status=status,
        value="up" if status == Status.OK else "down",
        observed_at=at,
        facts=facts,
    )


def feed(store: Store, *results: Result, rules: Rules | None = None) -> object:
    # Received a moment after the newest observation, as on a live system.
    received = max(r.observed_at for r in results) + timedelta(seconds=1)
    return store.ingest("s1", "a1", list(results), CLASSES, rules or Rules(), received)


def open_incidents(store: Store) -> list[str]:
    return sorted(f"{r['target']}:{r['check']}" for r in store.incidents(state="open"))


def test_switch_down_is_one_incident_with_500_cameras_affected(store: Store) -> None:
    cams = [f"cam-{i:03d}" for i in range(500)]
    feed(
        store,
        res("sw-core", Status.OK, T0),
        *[res(c, Status.OK, T0, parent="sw-core") for c in cams],
    )
    feed(store, res("sw-core", Status.CRIT, T0 + M))
    stats = feed(store, *[res(c, Status.CRIT, T0 + M + timedelta(seconds=5)) for c in cams])
    assert open_incidents(store) == ["sw-core:snmp.reachable"]
    assert stats.attached == 500 and stats.opened == []  # type: ignore[attr-defined]
    [root] = store.incidents(state="open")
    assert root["impact_count"] == 500
    assert len(store.impacts(int(root["id"]))) == 500
    # Repeated failures do not add anything.
    feed(store, *[res(c, Status.CRIT, T0 + 2 * M) for c in cams[:10]])
    assert len(store.incidents()) == 1
    # The switch comes back; 498 cameras with it, two stay dark and get their own incidents.
    feed(store, *[res(c, Status.OK, T0 + 3 * M) for c in cams[2:]])
    stats = feed(store, res("sw-core", Status.OK, T0 + 3 * M + timedelta(seconds=1)))
    assert sorted(stats.opened) == sorted(  # type: ignore[attr-defined]
        r["number"] for r in store.incidents(state="open")
    )
    assert open_incidents(store) == ["cam-000:snmp.reachable", "cam-001:snmp.reachable"]


def test_children_that_failed_first_are_folded_into_the_parent(store: Store) -> None:
    feed(
        store,
        res("sw-a", Status.OK, T0),
        res("cam-1", Status.OK, T0, parent="sw-a"),
        res("cam-2", Status.OK, T0, parent="sw-a"),
        res("cam-9", Status.OK, T0),
    )
    feed(
        store,
        res("cam-1", Status.CRIT, T0 + M),
        res("cam-2", Status.CRIT, T0 + M),
        res("cam-9", Status.CRIT, T0 + M),
    )
    assert len(store.incidents(state="open")) == 3
    feed(store, res("sw-a", Status.CRIT, T0 + 2 * M))
    # cam-9 is not behind sw-a: it keeps its own incident.
    assert open_incidents(store) == ["cam-9:snmp.reachable", "sw-a:snmp.reachable"]
    merged = [r for r in store.incidents() if r["state"] == "merged"]
    assert sorted(r["target"] for r in merged) == ["cam-1", "cam-2"]
    root = next(r for r in store.incidents(state="open") if r["target"] == "sw-a")
    assert root["impact_count"] == 2
    assert all(r["merged_into"] == root["id"] for r in merged)


def test_grandchildren_attach_to_the_topmost_down_device(store: Store) -> None:
    feed(
        store,
        res("core", Status.OK, T0),
        res("access", Status.OK, T0, parent="core"),
        res("cam", Status.OK, T0, parent="access"),
    )
    feed(store, res("core", Status.CRIT, T0 + M))
    feed(store, res("access", Status.CRIT, T0 + M), res("cam", Status.CRIT, T0 + M))
    assert open_incidents(store) == ["core:snmp.reachable"]
    assert store.incidents(state="open")[0]["impact_count"] == 2


def test_flapping_keeps_one_incident_open(store: Store) -> None:
    rules = Rules(policy=Policy(flap_threshold=4, flap_window=timedelta(minutes=30)))
    feed(store, res("cam", Status.OK, T0), rules=rules)
    for i in range(1, 9):
        feed(store, res("cam", Status.CRIT if i % 2 else Status.OK, T0 + i * M), rules=rules)
    incs = store.incidents()
    assert len(incs) <= 2, "flapping must stop the open/close cycle"
    assert incs[0]["state"] == "open" and incs[0]["flapping"]
    # Quiet for longer than the window: it resolves.
    feed(store, res("cam", Status.OK, T0 + 45 * M), rules=rules)
    assert store.incidents(state="open") == []


def test_stale_target_opens_one_incident_unless_agent_offline(store: Store) -> None:
    feed(store, res("cam", Status.OK, T0), res("cam", Status.OK, T0 + M))
    feed(store, res("nvr", Status.OK, T0), res("nvr", Status.OK, T0 + M))
    # The agent itself is alive: another of its targets keeps reporting.
    feed(store, res("sw", Status.OK, T0), res("sw", Status.OK, T0 + M))
    rules = Rules()
    # Three intervals (60 s each) without data → stale.
    assert store.sweep(rules, T0 + 3 * M).opened == []
    feed(store, res("sw", Status.OK, T0 + 4 * M))
    stats = store.sweep(rules, T0 + 5 * M)
    assert sorted(stats.opened) == sorted(r["number"] for r in store.incidents(state="open"))
    assert open_incidents(store) == ["cam:data.stale", "nvr:data.stale"]
    quiet = {r["target"]: r["status"] for r in store.current_rows() if r["target"] != "sw"}
    assert quiet == {"cam": int(Status.UNKNOWN), "nvr": int(Status.UNKNOWN)}
    assert store.sweep(rules, T0 + 6 * M).opened == []  # once, not every sweep
    feed(store, res("cam", Status.OK, T0 + 7 * M))
    assert open_incidents(store) == ["nvr:data.stale"]
    # An agent that is offline has its own incident; its targets do not open more.
    store.set_agent_state("s1", "a2", "offline", T0, "", rules, T0 + 7 * M)
    store.ingest("s1", "a2", [res("ups", Status.OK, T0)], CLASSES, rules, T0)
    store.sweep(rules, T0 + 20 * M)
    assert "ups:data.stale" not in open_incidents(store)


def test_silent_agent_gets_one_incident_after_its_grace(store: Store) -> None:
    """An agent that said "online" and then fell silent without a last will (killed while the
    broker was away) is one agent incident, not a "no data" incident per target; the broker's
    retained "online" replayed later is old news, a real reconnect resolves it."""
    rules = Rules(policy=Policy(agent_offline_grace=timedelta(minutes=2)))
    store.set_agent_state("s1", "a1", "online", T0, "", rules, T0)
    feed(store, res("cam", Status.OK, T0), res("nvr", Status.OK, T0), rules=rules)
    feed(store, res("cam", Status.OK, T0 + M), res("nvr", Status.OK, T0 + M), rules=rules)
    store.sweep(rules, T0 + 5 * M)
    assert {r["agent"]: r["state"] for r in store.agent_rows()} == {"a1": "silent"}
    assert open_incidents(store) == [], "no incident before the grace, none per target"
    store.sweep(rules, T0 + 8 * M)
    assert open_incidents(store) == ["a1:agent.online"]
    store.sweep(rules, T0 + 9 * M)
    assert open_incidents(store) == ["a1:agent.online"], "opened once"
    store.set_agent_state("s1", "a1", "online", T0, "", rules, T0 + 10 * M)  # retained replay
    assert open_incidents(store) == ["a1:agent.online"]
    store.set_agent_state("s1", "a1", "online", T0 + 11 * M, "", rules, T0 + 11 * M)
    assert open_incidents(store) == []


def test_last_will_waits_for_the_grace(store: Store) -> None:
    rules = Rules(policy=Policy(agent_offline_grace=timedelta(seconds=90)))
    store.set_agent_state("s1", "a1", "online", T0, "", rules, T0)
    store.set_agent_state("s1", "a1", "offline", T0, "", rules, T0 + M)
    store.sweep(rules, T0 + 2 * M)
    assert open_incidents(store) == [], "still inside the grace"
    store.set_agent_state("s1", "a1", "online", T0 + 2 * M, "", rules, T0 + 2 * M)
    store.sweep(rules, T0 + 10 * M)
    assert open_incidents(store) == [], "back within the grace: nobody paged"
    store.set_agent_state("s1", "a1", "offline", T0, "", rules, T0 + 11 * M)
    store.sweep(rules, T0 + 13 * M)
    assert open_incidents(store) == ["a1:agent.online"]


def test_maintenance_window_suppresses_and_pauses(store: Store) -> None:
    window = Window(site="s1", targets=frozenset({"sw"}), start=T0 + 10 * M, end=T0 + 40 * M)
    rules = Rules(windows=[window])
    feed(store, res("sw", Status.OK, T0), rules=rules)
    stats = feed(store, res("sw", Status.CRIT, T0 + 15 * M), rules=rules)
    assert stats.suppressed == 1 and store.incidents() == []  # type: ignore[attr-defined]
    # After the window a failure opens normally.
    feed(store, res("sw", Status.CRIT, T0 + 45 * M), rules=rules)
    assert open_incidents(store) == ["sw:snmp.reachable"]
    # A one-off window entered by an engineer pauses the SLA clock of the open incident.
    store.add_window("s1", "sw", T0 + 50 * M, T0 + 80 * M, "firmware upgrade", "li.wei")
    store.sweep(rules, T0 + 55 * M)
    store.sweep(rules, T0 + 85 * M)
    [inc] = store.incidents(state="open")
    assert inc["pauses"][0][2] == "maintenance window" and inc["pauses"][0][1] is not None
    _, events = store.incident(inc["number"])  # type: ignore[misc]
    kinds = [e["kind"] for e in events]
    assert kinds.index("paused") < kinds.index("resumed") == len(kinds) - 1


def test_weekly_window_crosses_midnight() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    w = Window(site="s1", days=frozenset({"sat"}), at=time(23, 0), length=timedelta(hours=3), tz=sh)
    assert w.covers("s1", "x", datetime(2026, 11, 28, 23, 30, tzinfo=sh))
    assert w.covers("s1", "x", datetime(2026, 11, 29, 1, 30, tzinfo=sh))  # Sunday 01:30
    assert not w.covers("s1", "x", datetime(2026, 11, 29, 2, 30, tzinfo=sh))
    assert not w.covers("s2", "x", datetime(2026, 11, 28, 23, 30, tzinfo=sh))


def test_escalation_tiers_and_breaches(store: Store) -> None:
    rules = Rules(sla=SlaPolicy(), policy=Policy(stale_intervals=500))
    feed(store, res("nvr", Status.CRIT, T0), rules=rules)  # level 2: resolve in 4 h
    [inc] = store.incidents(state="open")
    assert inc["level"] == 2 and inc["tier"] == 1
    s = store.sweep(rules, T0 + 6 * M)
    assert [(r.kind, r.summary) for r in s.raised] == [("breached", "respond deadline passed")]
    s = store.sweep(rules, T0 + 61 * M)  # 25 % of 4 h
    assert [(r.kind, r.tier) for r in s.raised] == [("escalated", 2)]
    s = store.sweep(rules, T0 + 121 * M)  # on site due at 2 h; tier 3 at 45 % (108 min)
    assert sorted((r.kind, r.tier) for r in s.raised) == [("breached", 3), ("escalated", 3)]
    assert store.sweep(rules, T0 + 122 * M).raised == []  # each raised once
    _, events = store.incident(inc["number"])  # type: ignore[misc]
    kinds = [e["kind"] for e in events]
    assert kinds == ["opened", "breached", "escalated", "escalated", "breached"]


def test_people_actions_and_their_rules(store: Store) -> None:
    number, _ = store.open_manual(
        site="s1",
        target="nvr-2",
        level=2,
        title="NVR channel 5 shows no picture",
        description="customer called",
        caller={"name": "Wang Fang", "phone": "13800000000", "company": "East Gate PSB"},
        author="desk",
        now=T0,
    )
    assert number.startswith("FM-202611-")
    store.act(number, "ack", "desk", T0 + 3 * M)
    store.act(number, "assign", "desk", T0 + 4 * M, to="li.wei")
    store.act(number, "note", "customer:east-gate", T0 + 5 * M, text="picture black since 9am")
    store.act(number, "activity", "li.wei", T0 + 6 * M, kind="call", text="called the guard")
    store.act(number, "level", "li.wei", T0 + 7 * M, level=3, text="one channel only")
    store.act(number, "pause", "li.wei", T0 + 8 * M, text="waiting for site access")
    with pytest.raises(ActionError, match="already paused"):
        store.act(number, "pause", "li.wei", T0 + 9 * M)
    store.act(number, "resume", "li.wei", T0 + 30 * M)
    with pytest.raises(ActionError, match="needs resolved or closed"):
        store.act(number, "analysis", "li.wei", T0 + 31 * M, symptoms="x")
    with pytest.raises(ActionError, match="description"):
        store.act(number, "resolve", "li.wei", T0 + 40 * M)
    store.act(number, "resolve", "li.wei", T0 + 40 * M, text="replaced the PoE injector")
    with pytest.raises(ActionError, match=r"needs (symptoms|handling)"):
        store.act(number, "analysis", "li.wei", T0 + 41 * M, symptoms="black picture")
    store.act(
        number,
        "analysis",
        "li.wei",
        T0 + 42 * M,
        symptoms="black picture",
        handling="PoE injector swapped",
        result="picture back",
        prevention="spare injectors on site",
    )
    with pytest.raises(ActionError, match="1-5"):
        store.act(number, "close", "desk", T0 + 50 * M, score=9)
    store.act(number, "close", "desk", T0 + 50 * M, score=5, comment="quick")
    row, events = store.incident(number)  # type: ignore[misc]
    assert row["state"] == "closed" and row["satisfaction"] == 5 and row["level"] == 3
    assert row["assignee"] == "li.wei" and row["caller"]["name"] == "Wang Fang"
    assert row["analysis"]["prevention"] == "spare injectors on site"
    assert [e["kind"] for e in events] == [
        "opened",
        "acknowledged",
        "assigned",
        "note",
        "activity:call",
        "level",
        "paused",
        "resumed",
        "resolved",
        "analysis",
        "closed",
    ]
    assert events[3]["author"] == "customer:east-gate"
    with pytest.raises(ActionError, match="no incident"):
        store.act("FM-209901-9999", "note", "x", T0, text="y")
    assert store.verify_all() == []
    # Someone edits the database behind fieldmon's back: verify names the entry.
    with store.engine.begin() as conn:
        conn.execute(
            update(incident_events)
            .where(incident_events.c.kind == "note")
            .values(text="nothing to see")
        )
    [(bad_number, bad_entry)] = store.verify_all()
    assert bad_number == number and bad_entry == events[3]["id"]


def test_fault_analysis_report_overdue_is_raised_once(store: Store) -> None:
    rules = Rules(policy=Policy(stale_intervals=100_000))
    feed(store, res("nvr", Status.CRIT, T0), rules=rules)
    feed(store, res("nvr", Status.OK, T0 + M), rules=rules)
    [inc] = store.incidents()
    assert store.sweep(rules, T0 + timedelta(days=2)).raised == []
    s = store.sweep(rules, T0 + timedelta(days=3, minutes=2))
    assert [(r.kind, r.number) for r in s.raised] == [("reminder", inc["number"])]
    assert store.sweep(rules, T0 + timedelta(days=4)).raised == []
    # Filing it in time for the next one: nothing raised.
    feed(store, res("nvr", Status.CRIT, T0 + timedelta(days=5)), rules=rules)
    feed(store, res("nvr", Status.OK, T0 + timedelta(days=5, minutes=1)), rules=rules)
    newer = store.incidents()[0]["number"]
    store.act(
        newer,
        "analysis",
        "li.wei",
        T0 + timedelta(days=6),
        symptoms="a",
        handling="b",
        result="c",
        prevention="d",
    )
    assert store.sweep(rules, T0 + timedelta(days=9)).raised == []
