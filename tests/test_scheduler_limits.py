"""The agent's scheduler on many targets: a bound on collections running at once, and first
collections staggered so that polls do not all fall due in the same instant afterwards.

The probe here is a stand-in that only counts how many collections overlap and when each
began; what is under test is the scheduler's arithmetic, not any device."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Set
from pathlib import Path

from agent.config import AgentConfig, TargetConfig
from agent.probes.base import Observation
from agent.scheduler import run_target
from checks.catalogue import load_catalogue


class CountingProbe:
    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: dict[str, float] = {}
        self.all_began = asyncio.Event()
        self.expected = 0

    async def collect(self, target: TargetConfig, checks: Set[str]) -> list[Observation]:
        self.started.setdefault(target.name, time.monotonic())
        if len(self.started) == self.expected:
            self.all_began.set()
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return []

    async def close(self) -> None:
        return None


async def test_collections_are_bounded_and_first_ones_staggered(tmp_path: Path) -> None:
    names = [f"h{i:02d}" for i in range(20)]
    cfg = AgentConfig.from_dict(
        {
            "site": "s1",
            "agent": "a1",
            "state_dir": str(tmp_path),
            "max_concurrent_collections": 3,
            "start_rate": 100.0,
            "targets": [{"name": n, "class": "linux-server"} for n in names],
        }
    )
    dc = load_catalogue()["linux-server"]
    probe = CountingProbe()
    probe.expected = len(names)
    stop = asyncio.Event()
    limiter = asyncio.Semaphore(cfg.max_concurrent_collections)
    began = time.monotonic()
    tasks = [
        asyncio.create_task(
            run_target(cfg, t, dc, lambda _m: probe, lambda _r: None, stop, limiter, i / 100.0)
        )
        for i, t in enumerate(cfg.targets)
    ]
    await asyncio.wait_for(probe.all_began.wait(), 10)
    stop.set()
    await asyncio.wait(tasks, timeout=5)
    assert len(probe.started) == len(names)
    assert probe.most <= 3, "more collections at once than the bound"
    assert probe.most >= 2, "the bound was never reached: the test proves nothing"
    # Target i does not begin before i / start_rate seconds.
    for i, name in enumerate(names):
        assert probe.started[name] - began >= i / 100.0 - 0.005, name
