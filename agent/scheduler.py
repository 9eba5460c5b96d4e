"""Runs every target's checks on their own intervals, one asyncio task per target.

Per-target tasks mean one slow or dead device only ever delays itself; every collection has a
deadline, after which its checks report UNKNOWN with the reason instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from agent.config import AgentConfig, TargetConfig
from agent.evaluate import to_results
from agent.probes.base import Observation, Probe, unknown
from checks.catalogue import DeviceClass
from checks.result import Result
from fieldmon.aio import pause

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Result]], None]


class TargetSchedule:
    """Which of a target's checks are due, by catalogue interval and target overrides."""

    def __init__(self, target: TargetConfig, dc: DeviceClass, inspection_interval: int) -> None:
        self.intervals: dict[str, float] = {}
        self.method: dict[str, str] = {}
        methods = target.methods()
        for item in dc.items:
            if item.id in target.disabled or item.method not in methods:
                continue
            self.method[item.id] = item.method
            default = item.interval if item.interval is not None else inspection_interval
            self.intervals[item.id] = float(target.intervals.get(item.id, default))
        self.next_due: dict[str, float] = dict.fromkeys(self.intervals, 0.0)

    def due(self, now: float) -> set[str]:
        return {c for c, t in self.next_due.items() if t <= now}

    def done(self, checks: set[str], started: float) -> None:
        for c in checks:
            self.next_due[c] = started + self.intervals[c]

    def sleep_for(self, now: float) -> float:
        return max(0.0, min(self.next_due.values(), default=now + 3600) - now)

    def by_method(self, checks: set[str]) -> dict[str, set[str]]:
        groups: dict[str, set[str]] = {}
        for c in checks:
            groups.setdefault(self.method[c], set()).add(c)
        return groups


def collect_deadline(target: TargetConfig) -> float:
    """Longest a collection may take: enough for every SNMP retry, never unbounded."""
    # An SSH session (login, paging off, a whole configuration) keeps its own budget and
    # reports its own reason; this outer deadline only has to be a little longer.
    ssh = target.ssh.session_budget + 5 if target.ssh is not None else 0.0
    if target.snmp is not None:
        return max(30.0, ssh, target.snmp.timeout * (target.snmp.retries + 1) * 6)
    return max(30.0, ssh)


ProbeFor = Callable[[str], Probe]


async def collect_due(
    probe_for: ProbeFor, target: TargetConfig, dc: DeviceClass, groups: dict[str, set[str]]
) -> list[Result]:
    """Each method's probe collects its checks; methods of one target run concurrently."""
    parts = await asyncio.gather(
        *(collect_once(probe_for(method), target, dc, checks) for method, checks in groups.items())
    )
    return [r for part in parts for r in part]


async def collect_once(
    probe: Probe, target: TargetConfig, dc: DeviceClass, checks: set[str]
) -> list[Result]:
    deadline = collect_deadline(target)
    try:
        observations: list[Observation] = await asyncio.wait_for(
            probe.collect(target, checks), deadline
        )
    except TimeoutError:
        reason = f"collection did not finish within {deadline:g}s"
        observations = [unknown(c, reason) for c in sorted(checks)]
    except Exception as exc:  # a probe bug must not kill the target's loop
        log.exception("probe for %s failed", target.name)
        reason = f"probe error: {type(exc).__name__}: {exc}"
        observations = [unknown(c, reason[:500]) for c in sorted(checks)]
    return to_results(target, dc, observations)


async def run_target(
    cfg: AgentConfig,
    target: TargetConfig,
    dc: DeviceClass,
    probe_for: ProbeFor,
    sink: Sink,
    stop: asyncio.Event,
    limiter: asyncio.Semaphore | None = None,
    start_after: float = 0.0,
) -> None:
    """``limiter`` bounds the collections running at once over all targets (waiting for a
    slot does not count against a collection's deadline); ``start_after`` staggers the
    targets' first collections, and so their rhythm afterwards."""
    schedule = TargetSchedule(target, dc, cfg.inspection_interval)
    if start_after > 0 and await pause(stop, start_after):
        return
    while not stop.is_set():
        started = time.monotonic()
        due = schedule.due(started)
        if due:
            if limiter is None:
                results = await collect_due(probe_for, target, dc, schedule.by_method(due))
            else:
                async with limiter:
                    results = await collect_due(probe_for, target, dc, schedule.by_method(due))
            sink(results)
            schedule.done(due, started)
            log.debug(
                "%s: %d checks, %d results in %.2fs",
                target.name,
                len(due),
                len(results),
                time.monotonic() - started,
            )
        await pause(stop, schedule.sleep_for(time.monotonic()))
