"""Prometheus metrics: counters for the ingest path, and a custom collector that reads the
current state from the store at scrape time (no gauge object per series kept forever, so a
removed device disappears from /metrics instead of lingering)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from checks.wire import RejectReason
from collector.store.db import Store, utc


@dataclass(frozen=True)
class IngestCounters:
    results: Counter
    duplicates: Counter
    rejected: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestCounters:
        rejected = Counter(
            "fieldmon_ingest_rejected_messages",
            "MQTT messages refused by the collector, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in RejectReason:  # every reason visible from the start, at 0
            rejected.labels(reason=reason.value)
        return cls(
            results=Counter(
                "fieldmon_ingest_results", "Results accepted and stored", registry=registry
            ),
            duplicates=Counter(
                "fieldmon_ingest_duplicate_results",
                "Results received again (QoS 1 redelivery, outbox replay) and ignored",
                registry=registry,
            ),
            rejected=rejected,
        )


class StateCollector(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "fieldmon_check_status",
            "Current status per target and check: 0 OK, 1 WARN, 2 UNKNOWN, 3 CRIT",
            labels=["site", "target", "check", "item"],
        )
        for row in self._store.current_rows():
            status.add_metric(
                [row["site"], row["target"], row["check"], row["item"]], row["status"]
            )
        yield status
        incidents = GaugeMetricFamily(
            "fieldmon_incidents_open",
            "Open incidents per site and fault level",
            labels=["site", "level"],
        )
        counts = {(s, lv): n for s, lv, n in self._store.open_counts()}
        sites = {s for s, _ in counts} | {r["site"] for r in self._store.agent_rows()}
        for site in sorted(sites):
            for level in (1, 2, 3, 4):
                incidents.add_metric([site, str(level)], counts.get((site, level), 0))
        yield incidents
        up = GaugeMetricFamily(
            "fieldmon_agent_up",
            "1 if the agent's retained status is online",
            labels=["site", "agent"],
        )
        age = GaugeMetricFamily(
            "fieldmon_agent_last_seen_age_seconds",
            "Seconds since the agent last sent anything",
            labels=["site", "agent"],
        )
        now = time.time()
        for row in self._store.agent_rows():
            up.add_metric([row["site"], row["agent"]], 1 if row["state"] == "online" else 0)
            seen = utc(row["last_seen"])
            age.add_metric(
                [row["site"], row["agent"]], max(0.0, now - seen.timestamp()) if seen else 0.0
            )
        yield up
        yield age


def build_registry(store: Store) -> tuple[CollectorRegistry, IngestCounters]:
    registry = CollectorRegistry(auto_describe=False)
    counters = IngestCounters.create(registry)
    registry.register(StateCollector(store))
    return registry, counters
