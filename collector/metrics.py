"""Prometheus metrics: counters for the ingest path, and a custom collector that reads the
current state from the store at scrape time (no gauge object per series kept forever, so a
removed device disappears from /metrics instead of lingering)."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import RowMapping

from checks.status import Status
from checks.wire import RejectReason
from collector.incidents.rules import Rules
from collector.incidents.sla import KINDS, SlaPolicy, deadlines
from collector.store.db import Store, utc
from collector.store.incident_ops import clock_of

#: "Due soon" on the wall display: the hour in which someone can still act.
DUE_SOON = timedelta(hours=1)
#: Checks that say whether a device answers at all, per collection method.
REACHABILITY = ("snmp.reachable", "host.reachable")


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
    """Every sample is computed from the store at scrape time, so nothing outlives its row.

    ``rules`` gives each site's SLA policy (calendar, targets); without it the contract
    defaults apply, which is right only for sites without their own SLA."""

    def __init__(self, store: Store, rules: Rules | None = None) -> None:
        self._store = store
        self._rules = rules

    def status_text(self) -> bytes:
        """The ``fieldmon_check_status`` family in the text exposition format, one sample per
        current row. Written directly rather than through ``GaugeMetricFamily``: at 10,000
        targets × 10 checks, building and formatting 100,000 sample objects per scrape costs
        about 0.6 s, one f-string per row about 50 ms. Nothing is kept between scrapes, so
        a removed device disappears and memory does not grow with past series."""
        head = (
            "# HELP fieldmon_check_status Current status per target and check: "
            "0 OK, 1 WARN, 2 UNKNOWN, 3 CRIT\n# TYPE fieldmon_check_status gauge\n"
        )
        lines = [
            f'fieldmon_check_status{{site="{_esc(site)}",target="{_esc(target)}",'
            f'check="{_esc(check)}",item="{_esc(item)}"}} {float(status)}\n'
            for site, target, check, item, status in self._store.status_tuples()
        ]
        return (head + "".join(lines)).encode()

    def collect(self) -> Iterator[Metric]:
        # fieldmon_check_status comes from status_text(), appended by exposition().
        yield from self._devices(self._store.status_tuples(REACHABILITY))
        yield from self._incidents_sla()
        yield self._notify_failures()
        agents = self._store.agent_rows()
        yield self._outbox_gaps(agents)
        incidents = GaugeMetricFamily(
            "fieldmon_incidents_open",
            "Open incidents per site and fault level",
            labels=["site", "level"],
        )
        counts = {(s, lv): n for s, lv, n in self._store.open_counts()}
        sites = {s for s, _ in counts} | {r["site"] for r in agents}
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
        for row in agents:
            up.add_metric([row["site"], row["agent"]], 1 if row["state"] == "online" else 0)
            seen = utc(row["last_seen"])
            age.add_metric(
                [row["site"], row["agent"]], max(0.0, now - seen.timestamp()) if seen else 0.0
            )
        yield up
        yield age

    def _devices(self, reachability: list[tuple[Any, ...]]) -> Iterator[Metric]:
        """Devices up/down by class and the camera online ratio, from the reachability
        check's current status ((site, target, check, item, status) rows). A stale target
        (no data in time) counts as down: silence from a camera is not evidence that it
        works."""
        reach: dict[tuple[str, str], int] = {}
        for site, target, _check, _item, value in reachability:
            key = (site, target)
            reach[key] = max(reach.get(key, 0), int(value))
        by_class: Tally[tuple[str, str, str]] = Tally()
        cameras: Tally[str] = Tally()
        cameras_online: Tally[str] = Tally()
        for t in self._store.target_overview():
            site, cls = str(t["site"]), str(t["class"])
            status = reach.get((site, str(t["target"])))
            if t["stale"] or status == Status.CRIT:
                state = "down"
            elif status is None or status == Status.UNKNOWN:
                state = "unknown"
            else:
                state = "up"
            by_class[(site, cls, state)] += 1
            if cls == "camera":
                cameras[site] += 1
                if status == Status.OK and not t["stale"]:
                    cameras_online[site] += 1
        devices = GaugeMetricFamily(
            "fieldmon_devices_targets",
            "Monitored devices per site, class and state (up, down, unknown = no reachability "
            "result yet); down includes stale targets",
            labels=["site", "class", "state"],
        )
        for site, cls in sorted({(s, c) for s, c, _ in by_class}):
            for state in ("up", "down", "unknown"):
                devices.add_metric([site, cls, state], by_class[(site, cls, state)])
        yield devices
        ratio = GaugeMetricFamily(
            "fieldmon_cameras_online_ratio",
            "Cameras whose snmp.reachable is OK (and not stale) / all cameras, per site",
            labels=["site"],
        )
        for site in sorted(cameras):
            ratio.add_metric([site], cameras_online[site] / cameras[site])
        yield ratio

    def _incidents_sla(self) -> Iterator[Metric]:
        """Open incidents by level and tier, and SLA deadlines missed or due within the hour,
        computed with each site's own policy and calendar as the clock task would."""
        now = datetime.now(UTC)
        tiers: Tally[tuple[str, int, int]] = Tally()
        breached: Tally[tuple[str, str]] = Tally()
        due_soon: Tally[tuple[str, str]] = Tally()
        sites: set[str] = set()
        for row in self._store.open_incident_rows():
            site = str(row["site"])
            sites.add(site)
            tiers[(site, int(row["level"]), int(row["tier"]))] += 1
            clock = clock_of(row)
            policy = self._rules.sla_for(site) if self._rules else SlaPolicy()
            for kind, due in deadlines(clock, policy, now).items():
                if clock.done_at(kind) is not None:
                    continue  # met (or met late: that is history, not a clock running out)
                if now > due:
                    breached[(site, kind)] += 1
                elif due - now <= DUE_SOON:
                    due_soon[(site, kind)] += 1
        by_tier = GaugeMetricFamily(
            "fieldmon_incidents_open_by_tier",
            "Open incidents per site, fault level (1 worst) and escalation tier",
            labels=["site", "level", "tier"],
        )
        for site in sorted(sites):
            for level in (1, 2, 3, 4):
                for tier in (1, 2, 3):
                    by_tier.add_metric([site, str(level), str(tier)], tiers[(site, level, tier)])
        yield by_tier
        missed = GaugeMetricFamily(
            "fieldmon_sla_deadlines_breached",
            "Deadlines of open incidents passed without being met, per site and deadline",
            labels=["site", "deadline"],
        )
        soon = GaugeMetricFamily(
            "fieldmon_sla_deadlines_due_soon",
            f"Deadlines of open incidents not yet met and due within {int(DUE_SOON.seconds)} s",
            labels=["site", "deadline"],
        )
        for site in sorted(sites):
            for kind in KINDS:
                missed.add_metric([site, kind], breached[(site, kind)])
                soon.add_metric([site, kind], due_soon[(site, kind)])
        yield missed
        yield soon

    def _outbox_gaps(self, agents: list[RowMapping]) -> Metric:
        """Results agents had to drop from a full or aged outbox (their gap records): each one
        is a check the contract paid for and nobody saw."""
        dropped = CounterMetricFamily(
            "fieldmon_agent_dropped_results",
            "Results agents dropped from their outbox (bounded by size or age), from the gap "
            "records they sent",
            labels=["site", "agent"],
        )
        totals = {(s, a): float(n) for s, a, n in self._store.dropped_by_agent()}
        # Every known agent has a series from the start (0): a counter that first appears at
        # 40 would show Prometheus no increase, and the alert would never fire.
        for row in agents:
            totals.setdefault((str(row["site"]), str(row["agent"])), 0.0)
        for (site, agent), n in sorted(totals.items()):
            dropped.add_metric([site, agent], n)
        return dropped

    def _notify_failures(self) -> Metric:
        failed = CounterMetricFamily(
            "fieldmon_notify_failed_notices",
            "Failed notification attempts recorded on incident timelines, per channel "
            "(one per incident in the attempt)",
            labels=["channel"],
        )
        for channel, n in sorted(self._store.failed_notifications()):
            failed.add_metric([channel], n)
        return failed


class MetricsRegistry(CollectorRegistry):
    """A registry that also holds families rendered straight to text (see
    :meth:`StateCollector.status_text`); :func:`exposition` writes both."""

    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self.text_parts: list[Callable[[], bytes]] = []


def exposition(registry: CollectorRegistry) -> bytes:
    """The whole /metrics body: ``generate_latest`` of the registry's collectors, then the
    families a :class:`MetricsRegistry` renders itself."""
    body = generate_latest(registry)
    if isinstance(registry, MetricsRegistry):
        body += b"".join(part() for part in registry.text_parts)
    return body


def _esc(value: str) -> str:
    """A label value escaped as the text format requires (backslash, quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def build_registry(
    store: Store, rules: Rules | None = None
) -> tuple[MetricsRegistry, IngestCounters]:
    registry = MetricsRegistry()
    counters = IngestCounters.create(registry)
    state = StateCollector(store, rules)
    registry.register(state)
    registry.text_parts.append(state.status_text)
    return registry, counters
