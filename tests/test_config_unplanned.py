"""``sec.config_unplanned``: the collector judges every configuration change the agents' SSH
backups find against the maintenance windows it knows.

Results go in as the agent publishes them (wire schema v1 payloads on the results topic)
through the collector's Ingestor into a real database (SQLite and PostgreSQL); what is checked
is what operators see: the stored current state, the incidents, the month's inspection record,
and, at the end, a collector process behind a real Mosquitto answering its HTTP API.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from checks.wire import encode_batch, result_to_wire
from collector.config import CollectorConfig, load_collector_config
from collector.derived import CHECK, WindowHit, derive, derived_msg_id, unplanned_change
from collector.ingest import Ingestor, Message
from collector.metrics import IngestCounters
from collector.reports.monthly import build_monthly
from collector.store.db import Store
from tests.support.broker import Broker
from tests.support.configs import TOKENS, collector_toml
from tests.support.procs import Proc, http_call, http_json, wait_for

pytest_plugins = ["tests.support.databases"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE, AGENT = "s1", "a1"
TOPIC = f"fieldmon/v1/{SITE}/{AGENT}/results"
CLASSES = load_catalogue()

#: The contract's windows as an operator writes them in collector.toml.
MAINTENANCE: list[dict[str, Any]] = [
    {
        "site": SITE,
        "targets": ["sw-core"],
        "start": "2026-11-10T22:00:00+08:00",
        "end": "2026-11-11T02:00:00+08:00",
        "reason": "core switch firmware upgrade, change CR-1107",
    },
    {
        "site": SITE,
        "targets": ["sw-access"],
        "weekly": {"days": ["sat"], "at": "23:00:00", "hours": 4},
        "reason": "weekly Saturday night maintenance",
    },
]


def at(text: str) -> datetime:
    """A Shanghai wall-clock time ("2026-11-10 15:00") as an aware datetime."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)


def config_changed(
    target: str, when: datetime, value: str = "changed", status: Status | None = None
) -> Result:
    """A ``config.changed`` result shaped like the SSH probe's (agent/probes/ssh.py)."""
    before = hashlib.sha256(f"{target} old".encode()).hexdigest()
    after = hashlib.sha256(f"{target} {when.isoformat()}".encode()).hexdigest()
    facts = {"config_hash": after, "backup_path": f"/var/lib/fieldmon/backups/{target}/x.cfg"}
    summary = "same configuration as the backup x.cfg"
    if value == "changed":
        facts.update(
            previous_hash=before,
            diff="--- a.cfg\n+++ b.cfg\n-snmp-server location old\n+snmp-server location new\n"
            "+username backdoor privilege 15 secret ********\n",
            diff_truncated="false",
            lines_added="2",
            lines_removed="1",
        )
        summary = (
            "configuration changed since a.cfg: +2 -1 lines: + snmp-server location new;"
            " + username backdoor privilege 15 secret ********"
        )
    elif value == "unchanged":
        facts["previous_hash"] = after
    default = {"changed": Status.WARN, "unchanged": Status.OK, "baseline": Status.OK}
    return Result(
        target=target,
        target_class="switch",
        check="config.changed",
        status=status if status is not None else default.get(value, Status.UNKNOWN),
        value=None if status == Status.UNKNOWN else value,
        summary=summary,
        observed_at=when,
        facts=facts,
    )


def payload(*results: Result) -> bytes:
    return encode_batch(SITE, AGENT, [result_to_wire(r) for r in results])


def collector_config(**extra: Any) -> CollectorConfig:
    return load_collector_config(None, {"maintenance": MAINTENANCE, **extra})


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url, SHANGHAI)
    yield s
    s.close()


@pytest.fixture
def ingestor(store: Store) -> Ingestor:
    counters = IngestCounters.create(CollectorRegistry())
    return Ingestor(store, CLASSES, collector_config().rules(), counters)


def current(store: Store, target: str, check: str) -> dict[str, Any]:
    rows = [r for r in store.current_rows(SITE) if r["target"] == target and r["check"] == check]
    assert len(rows) == 1, f"{target} {check}: {rows}"
    return dict(rows[0])


def incidents_for(store: Store, target: str) -> list[dict[str, Any]]:
    return [dict(r) for r in store.incidents(site=SITE, target=target)]


# ------------------------------------------------------------------------ through the Ingestor


def test_change_outside_every_window_opens_an_incident(store: Store, ingestor: Ingestor) -> None:
    source = config_changed("sw-core", at("2026-11-10 15:07"))
    stats = ingestor.handle(Message(TOPIC, payload(source)))
    assert stats is not None and stats.accepted == 2  # the agent's result and the derived one

    derived = current(store, "sw-core", CHECK)
    assert Status(derived["status"]) is Status.CRIT and derived["value"] == "unplanned"
    summary = derived["summary"]
    assert "2026-11-10T15:07:00+08:00" in summary  # when, in the contract's time zone
    assert f"sha256 {source.facts['config_hash'][:12]}…" in summary
    assert f"was {source.facts['previous_hash'][:12]}…" in summary
    assert "+2 -1 lines" in summary and "username backdoor" in summary
    assert "outside any maintenance window" in summary
    # The change itself stays a WARN (shown, not paged): the derived item is what pages.
    assert Status(current(store, "sw-core", "config.changed")["status"]) is Status.WARN

    [inc] = incidents_for(store, "sw-core")
    item = CLASSES["switch"].item(CHECK)
    assert item is not None and inc["level"] == item.level == 3
    assert inc["check"] == CHECK and inc["state"] == "open"
    assert inc["title"] == "sw-core: Configuration changed outside a maintenance window"
    assert inc["device_class"] == "switch"


def test_change_inside_a_configured_window_is_planned(store: Store, ingestor: Ingestor) -> None:
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-core", at("2026-11-10 23:30")))))
    derived = current(store, "sw-core", CHECK)
    assert Status(derived["status"]) is Status.OK and derived["value"] == "planned"
    assert "inside the maintenance window" in derived["summary"]
    assert "2026-11-10T22:00:00+08:00 – 2026-11-11T02:00:00+08:00" in derived["summary"]
    assert "core switch firmware upgrade, change CR-1107" in derived["summary"]
    assert incidents_for(store, "sw-core") == []


def test_window_of_another_target_does_not_cover(store: Store, ingestor: Ingestor) -> None:
    """sw-core's window is not sw-dist's: the same moment is unplanned there."""
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-dist", at("2026-11-10 23:30")))))
    assert current(store, "sw-dist", CHECK)["value"] == "unplanned"
    [inc] = incidents_for(store, "sw-dist")
    assert inc["check"] == CHECK


def test_weekly_window_follows_the_contract_time_zone(store: Store, ingestor: Ingestor) -> None:
    # Saturday 2026-11-14 23:00 to Sunday 03:00 Shanghai time; Sunday 01:30 is inside,
    # Sunday 03:30 is not.
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-access", at("2026-11-15 01:30")))))
    assert current(store, "sw-access", CHECK)["value"] == "planned"
    assert "weekly Saturday night maintenance" in current(store, "sw-access", CHECK)["summary"]
    assert incidents_for(store, "sw-access") == []
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-access", at("2026-11-15 03:30")))))
    assert current(store, "sw-access", CHECK)["value"] == "unplanned"
    assert len(incidents_for(store, "sw-access")) == 1


def test_window_entered_in_the_console_counts_too(store: Store, ingestor: Ingestor) -> None:
    """Windows engineers add through the API (stored in the database) cover changes the same
    way, so nobody has to enter a window twice."""
    # Given in UTC: see test_console_window_given_with_an_offset_on_sqlite for other offsets.
    store.add_window(
        SITE,
        "sw-edge",
        at("2026-11-12 09:00").astimezone(UTC),
        at("2026-11-12 11:00").astimezone(UTC),
        "replace uplink optics",
        "engineer",
    )
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-edge", at("2026-11-12 10:15")))))
    derived = current(store, "sw-edge", CHECK)
    assert derived["value"] == "planned"
    assert "(console/API): replace uplink optics" in derived["summary"]
    assert incidents_for(store, "sw-edge") == []
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-edge", at("2026-11-12 11:00")))))
    assert current(store, "sw-edge", CHECK)["value"] == "unplanned"  # the end is exclusive


def test_console_window_given_with_an_offset_on_sqlite(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/collector.db", SHANGHAI)
    try:
        counters = IngestCounters.create(CollectorRegistry())
        ingestor = Ingestor(store, CLASSES, collector_config().rules(), counters)
        store.add_window(
            SITE, "sw-edge", at("2026-11-12 09:00"), at("2026-11-12 11:00"), "optics", "engineer"
        )
        ingestor.handle(Message(TOPIC, payload(config_changed("sw-edge", at("2026-11-12 10:15")))))
        assert current(store, "sw-edge", CHECK)["value"] == "planned"
    finally:
        store.close()


def test_redelivery_is_deduplicated_and_no_change_resolves(
    store: Store, ingestor: Ingestor
) -> None:
    first = payload(config_changed("sw-core", at("2026-11-10 15:07")))
    ingestor.handle(Message(TOPIC, first))
    again = ingestor.handle(Message(TOPIC, first))  # QoS 1 redelivery
    assert again is not None and again.accepted == 0 and again.duplicates == 2
    [inc] = incidents_for(store, "sw-core")
    assert inc["occurrences"] == 1

    # The next backup finds nothing new: the item is measured OK and the incident resolves.
    ingestor.handle(
        Message(TOPIC, payload(config_changed("sw-core", at("2026-11-11 15:07"), "unchanged")))
    )
    derived = current(store, "sw-core", CHECK)
    assert Status(derived["status"]) is Status.OK and derived["value"] == "unchanged"
    [inc] = incidents_for(store, "sw-core")
    assert inc["state"] == "resolved"


def test_failed_backup_derives_nothing_and_agents_cannot_send_it(
    store: Store, ingestor: Ingestor
) -> None:
    failed = config_changed("sw-core", at("2026-11-10 15:07"), status=Status.UNKNOWN)
    forged = Result(
        target="sw-core",
        target_class="switch",
        check=CHECK,
        status=Status.OK,
        value="planned",
        observed_at=at("2026-11-10 15:08"),
    )
    stats = ingestor.handle(Message(TOPIC, payload(failed, forged)))
    assert stats is not None and stats.accepted == 1
    assert [r["check"] for r in store.current_rows(SITE)] == ["config.changed"]


def test_grouped_messages_get_their_derived_results(store: Store, ingestor: Ingestor) -> None:
    """handle_all stores consecutive messages of one agent in one transaction."""
    ingestor.handle_all(
        [
            Message(TOPIC, payload(config_changed("sw-core", at("2026-11-10 15:07")))),
            Message(TOPIC, payload(config_changed("sw-access", at("2026-11-15 01:30")))),
        ]
    )
    assert current(store, "sw-core", CHECK)["value"] == "unplanned"
    assert current(store, "sw-access", CHECK)["value"] == "planned"
    assert [i["target"] for i in store.incidents(site=SITE, check=CHECK)] == ["sw-core"]


def test_contract_level_override_applies(store: Store) -> None:
    cfg = collector_config(
        contracts=[{"name": "c1", "sites": [SITE], "levels": {CHECK: 2}}],
    )
    ingestor = Ingestor(store, CLASSES, cfg.rules(), IngestCounters.create(CollectorRegistry()))
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-core", at("2026-11-10 15:07")))))
    [inc] = incidents_for(store, "sw-core")
    assert inc["level"] == 2


def test_monthly_inspection_record_lists_the_item(store: Store, ingestor: Ingestor) -> None:
    ingestor.handle(Message(TOPIC, payload(config_changed("sw-core", at("2026-11-10 15:07")))))
    report = build_monthly(store, collector_config(), CLASSES, SITE, "2026-11", "zh-CN")
    [device] = report["devices"]
    [row] = [it for it in device["items"] if it["check"] == CHECK]
    assert row["title"] == "维护窗口外的配置变更"
    assert row["category"] == "安全" and row["method"] == "derived"
    assert row["verdict"] == "CRIT" and row["value"] == "unplanned"


# ------------------------------------------------------------------------ the pure function


def test_pure_derivation_rules() -> None:
    source = config_changed("sw-core", datetime(2026, 11, 10, 7, 7, tzinfo=UTC))
    switch = CLASSES["switch"]
    hit = WindowHit("collector.toml", "")
    planned = unplanned_change(source, hit, switch, SHANGHAI)
    assert planned is not None and planned.status is Status.OK
    assert "no reason given" in planned.summary
    assert planned.msg_id == derived_msg_id(source.msg_id, CHECK) != source.msg_id
    assert planned.observed_at == source.observed_at and planned.target == "sw-core"
    # A class without the item (the Linux server checklist) derives nothing.
    assert unplanned_change(source, None, CLASSES["linux-server"], SHANGHAI) is None
    baseline = config_changed("sw-core", source.observed_at, "baseline")
    first = unplanned_change(baseline, None, switch, SHANGHAI)
    assert first is not None and first.value == "baseline" and first.status is Status.OK

    asked: list[tuple[str, str, datetime]] = []

    def window_at(site: str, target: str, when: datetime) -> WindowHit | None:
        asked.append((site, target, when))
        return None

    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    ahead = config_changed("sw-core", now + timedelta(hours=3))  # agent clock jumped ahead
    unchanged = config_changed("sw-core", now, "unchanged")
    out = derive(SITE, [unchanged, ahead], CLASSES, window_at, SHANGHAI, now)
    assert [r.check for r in out] == ["config.changed", CHECK, "config.changed", CHECK]
    # Only the change asked for a window, at the time the store will record it (now).
    assert asked == [(SITE, "sw-core", now)]


# ------------------------------------------------------------------------ the collector process


def _pub(broker: Broker, body: bytes) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", TOPIC, "-s"],
        input=body,
        check=True,
        timeout=10,
    )


def test_collector_process_end_to_end(tmp_path: Path, own_broker: Broker) -> None:
    """collector.toml windows and an API-entered window, results over MQTT, answers over the
    HTTP API."""
    windows = "".join(
        f'[[maintenance]]\nsite = "{SITE}"\ntargets = ["sw-core"]\n'
        f'start = {w["start"]}\nend = {w["end"]}\nreason = "{w["reason"]}"\n'
        for w in MAINTENANCE[:1]
    )
    cfg, port = collector_toml(
        tmp_path, own_broker.port, extra=f'timezone = "Asia/Shanghai"\n{windows}'
    )
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["broker"], 30, what="collector healthy")
        code, body = http_call(
            "POST",
            f"{base}/api/v1/maintenance",
            {
                "site": SITE,
                "target": "sw-edge",
                # UTC (01:00-03:00Z is 09:00-11:00 in Shanghai).
                "starts_at": "2026-11-12T01:00:00Z",
                "ends_at": "2026-11-12T03:00:00Z",
                "reason": "replace uplink optics",
            },
            token=TOKENS["engineer"],
        )
        assert code == 201, body
        _pub(
            own_broker,
            payload(
                config_changed("sw-core", at("2026-11-10 23:30")),  # collector.toml window
                config_changed("sw-edge", at("2026-11-12 10:00")),  # API window
                config_changed("sw-dist", at("2026-11-10 23:30")),  # no window
            ),
        )

        def derived() -> dict[str, dict[str, Any]] | None:
            rows = {
                r["target"]: r for r in http_json(f"{base}/api/v1/status") if r["check"] == CHECK
            }
            return rows if len(rows) == 3 else None

        rows = wait_for(derived, 30, what="three derived results stored")
        assert rows["sw-core"]["status"] == "OK" and rows["sw-core"]["value"] == "planned"
        assert "change CR-1107" in rows["sw-core"]["summary"]
        assert rows["sw-edge"]["status"] == "OK" and "uplink optics" in rows["sw-edge"]["summary"]
        assert rows["sw-dist"]["status"] == "CRIT" and rows["sw-dist"]["value"] == "unplanned"
        [inc] = http_json(f"{base}/api/v1/incidents?state=open")
        assert inc["target"] == "sw-dist" and inc["level"] == 3
        assert inc["check"] == CHECK
    finally:
        assert proc.stop() == 0, proc.output()
    assert "Traceback" not in proc.output()
