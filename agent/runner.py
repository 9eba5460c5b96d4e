"""``fieldmon agent run`` and ``fieldmon agent check``: wire config, probes, outbox, publisher."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import signal
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.config import AgentConfig, TargetConfig
from agent.outbox import Outbox
from agent.probes.base import Probe
from agent.scheduler import TargetSchedule, collect_due, run_target
from checks.catalogue import DeviceClass, load_catalogue
from checks.result import Result
from checks.wire import result_to_wire

log = logging.getLogger(__name__)

SEEN_UP_KEY = "snmp.seen_up"
#: The local probe's security baselines (ports, accounts, sudo rules), kept across restarts.
SECURITY_KEY = "security.baselines"


class Probes:
    """Creates each kind of probe on first use, so SNMP libraries load only when needed."""

    def __init__(self, cfg: AgentConfig, outbox: Outbox | None) -> None:
        self._cfg = cfg
        self._outbox = outbox
        self._probes: dict[str, Probe] = {}
        self._saved: dict[str, Any] = {}
        self.seen_up: dict[str, set[str]] = {}
        if outbox is not None:
            stored = outbox.get_state(SEEN_UP_KEY) or {}
            self.seen_up = {k: set(v) for k, v in stored.items()}
        self.security_state: dict[str, Any] = {}
        if outbox is not None:
            self.security_state = dict(outbox.get_state(SECURITY_KEY) or {})

    def for_method(self, method: str) -> Probe:
        if method not in self._probes:
            self._probes[method] = self._create(method)
        return self._probes[method]

    def _create(self, method: str) -> Probe:
        if method == "local":
            from agent.probes.local import LocalProbe

            return LocalProbe(self._cfg.ntp_server, state=self.security_state)
        if method == "snmp":
            from agent.probes.snmp import SnmpProbe

            return SnmpProbe(self.seen_up)
        if method == "ssh":
            from agent.probes.ssh import SshProbe  # paramiko loads only for SSH targets

            return SshProbe(self._cfg.state_dir)
        if method == "net":
            from agent.probes.net import NetProbe  # httpx and icmplib load only for [net]

            return NetProbe()
        raise ValueError(f"no probe polls method {method!r}")

    def save_state(self) -> None:
        """Persist remembered state, but only what changed since the last save: this runs
        after every collection and each write is an fsync."""
        if self._outbox is None:
            return
        for key, value in (
            (SEEN_UP_KEY, {k: sorted(v) for k, v in self.seen_up.items()}),
            (SECURITY_KEY, self.security_state),
        ):
            if value and self._saved.get(key) != value:
                self._outbox.set_state(key, value)
                self._saved[key] = copy.deepcopy(value)

    async def close(self) -> None:
        for probe in self._probes.values():
            await probe.close()


class Holding:
    """Results the outbox could not take (disk full, I/O error) wait here, in memory and
    bounded, and go in first at the next write that succeeds: the agent keeps checking,
    says so once a minute, and loses nothing unless the problem outlasts the bound."""

    LIMIT = 50_000

    def __init__(self) -> None:
        self.waiting: list[dict[str, Any]] = []
        self.dropped = 0
        self._last_log = -1e9

    def store(self, outbox: Outbox, new: list[dict[str, Any]]) -> bool:
        batch = self.waiting + new
        try:
            outbox.put(batch)
        except sqlite3.Error as exc:
            self.waiting = batch[-self.LIMIT :]
            self.dropped += len(batch) - len(self.waiting)
            now = time.monotonic()
            if now - self._last_log >= 60:
                self._last_log = now
                log.error(
                    "cannot write the outbox %s (%s): holding %d results in memory "
                    "(%d dropped so far); retrying with every new result",
                    outbox.path,
                    exc,
                    len(self.waiting),
                    self.dropped,
                )
            return False
        if self.waiting:
            log.warning("outbox writable again: %d held results stored", len(self.waiting))
        self.waiting = []
        return True


class OutboxSink:
    """Where collections hand their results: one outbox transaction per event-loop turn.

    Why batched: every poll used to commit its own transaction, in the event loop, so a busy
    agent spent more time in SQLite than in SNMP. Results handed over while the loop runs are
    kept in a list and written together by a callback scheduled with ``call_soon``: it runs
    as soon as the task that produced them waits for I/O (typically: has sent its next
    request), in the same loop turn, so nothing outside the process can have seen or
    acknowledged them before they are in the file. A result counts as enqueued once that
    transaction has committed; a ``kill -9`` between hand-over and commit loses it exactly as
    it would lose a collection still running, and what was committed and not acknowledged is
    replayed. :meth:`store_now` writes at once, for callers that answer a device afterwards
    (an SNMP inform's acknowledgement must follow the write).

    Writes go through :class:`Holding`, so a full disk keeps results in memory (bounded)
    instead of losing them. ``after_write`` runs after every successful write (probe state,
    waking the publisher).
    """

    def __init__(self, outbox: Outbox, after_write: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self.holding = Holding()
        self._after_write = after_write
        self._pending: list[Result] = []
        self._scheduled: asyncio.Handle | None = None
        #: Results handed to :meth:`Holding.store` so far (for benchmarks and logs).
        self.handed = 0

    def __call__(self, results: Sequence[Result]) -> None:
        self._pending.extend(results)
        if self._scheduled is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): write now
            self.flush()
            return
        self._scheduled = loop.call_soon(self.flush)

    def store_now(self, results: Sequence[Result]) -> None:
        """Write ``results`` (and anything still waiting) before returning."""
        self._pending.extend(results)
        self.flush()

    def flush(self) -> None:
        """Write everything handed over so far in one transaction."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.handed += len(batch)
        stored = self.holding.store(self.outbox, [result_to_wire(r) for r in batch])
        if stored and self._after_write is not None:
            self._after_write()


def _classes(cfg: AgentConfig) -> dict[str, DeviceClass]:
    return load_catalogue(cfg.catalogue_dirs)


async def run_agent(cfg: AgentConfig, stop: asyncio.Event | None = None) -> None:
    from agent.publisher import Publisher

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Windows has no loop signal handlers; its service wrapper stops us with Ctrl+C.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    classes = _classes(cfg)
    outbox = Outbox(
        cfg.state_dir / "outbox.sqlite",
        cfg.outbox.max_results,
        max_bytes=int(cfg.outbox.max_mib * 2**20),
        max_age=cfg.outbox.max_age_hours * 3600,
    )
    probes = Probes(cfg, outbox)
    publisher = Publisher(cfg, outbox)

    def after_write() -> None:
        try:
            probes.save_state()
        except sqlite3.Error as exc:
            log.warning("could not save probe state (%s); will try again", exc)
        publisher.notify()

    sink = OutboxSink(outbox, after_write)
    from agent.commands import Commands

    # store_now: an inspection's results are in the file before it is marked carried out.
    publisher.commands = Commands(cfg, outbox, sink.store_now)

    log.info(
        "agent %s/%s starting: %d targets, outbox %s (%d pending)",
        cfg.site,
        cfg.agent,
        len(cfg.targets),
        outbox.path,
        outbox.pending(),
    )
    traps = None
    if cfg.traps is not None:
        # Imported here so that agents without [traps] never load pysnmp.
        from agent.traps import TrapReceiver

        traps = TrapReceiver(cfg.traps, cfg.targets, classes, sink.store_now)
        try:
            await traps.start()
        except BaseException:
            outbox.close()
            raise
    limiter = asyncio.Semaphore(cfg.max_concurrent_collections)
    tasks = [
        asyncio.create_task(
            run_target(
                cfg,
                t,
                classes[t.device_class],
                probes.for_method,
                sink,
                stop,
                limiter,
                start_after=i / cfg.start_rate,
            ),
            name=f"target:{t.name}",
        )
        for i, t in enumerate(cfg.targets)
    ]
    # The publisher stops after the targets: a collection still running at ``stop`` ends
    # within the wait below, its results are written, and the publisher delivers them before
    # it says "stopped" (a fast outbox can otherwise be empty, the publisher gone, and the
    # last results left for the next start).
    publishing_done = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(publishing_done), name="publisher")
    try:
        await stop.wait()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        sink.flush()
        publishing_done.set()
        await asyncio.wait([publishing], timeout=10)
    finally:
        if traps is not None:
            await traps.stop()
        await publisher.commands.close()
        for t in [*tasks, publishing]:
            t.cancel()
        await probes.close()
        sink.flush()
        outbox.close()
        log.info("agent stopped")


async def check_all(cfg: AgentConfig) -> list[Result]:
    """Every enabled check of every target, once, concurrently (``fieldmon agent check``)."""
    classes = _classes(cfg)
    probes = Probes(cfg, None)

    async def one(target: TargetConfig) -> list[Result]:
        dc = classes[target.device_class]
        schedule = TargetSchedule(target, dc, cfg.inspection_interval)
        groups = schedule.by_method(set(schedule.intervals))
        return await collect_due(probes.for_method, target, dc, groups)

    try:
        per_target = await asyncio.gather(*(one(t) for t in cfg.targets))
    finally:
        await probes.close()
    return [r for rs in per_target for r in rs]
