"""``fieldmon collector run``: MQTT ingest and the HTTP server in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import uvicorn
from sqlalchemy.exc import OperationalError

from checks.catalogue import DeviceClass, load_catalogue
from collector.config import CollectorConfig
from collector.http.app import create_app
from collector.http.auth import TokenBook
from collector.incidents.rules import Rules
from collector.ingest import Ingestor
from collector.metrics import build_registry
from collector.mqtt_source import SourceState, consume
from collector.notify.notifier import Notifier
from collector.notify_bridge import Bridge
from collector.peers import watch_peers
from collector.store.db import Store
from collector.web import WebConsole, WebUser
from collector.web.ratelimit import LoginLimiter
from fieldmon.aio import pause

log = logging.getLogger(__name__)

#: How long msg_ids are remembered for deduplication: longer than any agent outbox replay.
DEDUP_HORIZON = timedelta(days=14)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the collector's handlers stop everything in
    order (MQTT first, then HTTP), instead of uvicorn swallowing SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _housekeeping(
    store: Store,
    executor: ThreadPoolExecutor,
    stop: asyncio.Event,
    reports: Callable[[], object] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        n = await loop.run_in_executor(
            executor, store.prune_received, DEDUP_HORIZON, datetime.now(UTC)
        )
        if n:
            log.info("forgot %d msg_ids older than %s", n, DEDUP_HORIZON)
        if reports is not None:
            # Its own thread: typesetting a large report must not hold up ingest's writer.
            try:
                await asyncio.to_thread(reports)
            except Exception:
                log.exception("scheduled reports failed; trying again in an hour")
        await pause(stop, 3600)


def _report_schedule(
    store: Store, cfg: CollectorConfig, classes: Mapping[str, DeviceClass]
) -> Callable[[], object]:
    """Location snapshots and the ``[reports]`` drafts (collector/reports/schedule.py)."""

    def run() -> object:
        from collector.reports.schedule import run_schedule

        return run_schedule(store, cfg, classes, datetime.now(UTC))

    return run


#: How often stale targets, SLA tiers, breaches and maintenance pauses are checked.
CLOCK_TICK = 5.0


async def _clock(
    store: Store, rules: Rules, executor: ThreadPoolExecutor, stop: asyncio.Event, bridge: Bridge
) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            stats = await loop.run_in_executor(executor, store.sweep, rules, datetime.now(UTC))
            for raised in stats.raised:
                log.info("incident %s %s: %s", raised.number, raised.kind, raised.summary)
            bridge.raised(stats)
        except OperationalError as exc:
            # The database restarting, or (PostgreSQL, several collectors) a deadlock with
            # another collector's ingest on the same incidents: the sweep's transaction was
            # rolled back whole, and the next tick does it again.
            first = str(exc.orig or exc).strip().splitlines()[0]
            log.warning("clock sweep: database refused (%s); again in %.0fs", first, CLOCK_TICK)
        except Exception:
            log.exception("clock sweep failed; trying again in %.0fs", CLOCK_TICK)
        if await pause(stop, CLOCK_TICK):
            return


async def run_collector(cfg: CollectorConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Windows has no loop signal handlers; its service wrapper stops us with Ctrl+C.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    classes = load_catalogue(cfg.catalogue_dirs)
    store = Store(cfg.database.url, cfg.tz)
    rules = cfg.rules()
    registry, counters = build_registry(store, rules)
    # One writer thread: SQLite allows one writer anyway, and it keeps batches in order.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    bridge = Bridge(store, executor, loop)
    if cfg.notify is not None:
        bridge.notifier = Notifier(cfg.notify, bridge.outcome, tz=cfg.tz)
    ingestor = Ingestor(store, classes, rules, counters, bridge.raised)
    state = SourceState()
    tokens = TokenBook([t.entry() for t in cfg.tokens])
    web = WebConsole(
        [WebUser(u.principal(), u.password_hash, u.lang) for u in cfg.users],
        store,
        tz=cfg.tz,
        rules=rules,
        on_raised=bridge.raised,
        secret=(
            cfg.http.session_secret.get_secret_value().encode()
            if cfg.http.session_secret is not None
            else None
        ),
        config=cfg,
        classes=classes,
        limiter=LoginLimiter(cfg.http.login_max_failures, cfg.http.login_window_seconds),
    )
    app = create_app(store, registry, lambda: state.connected, tokens, bridge.raised, web)
    server = _Server(
        uvicorn.Config(
            app,
            host=cfg.http.listen,
            port=cfg.http.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    tasks = [
        asyncio.create_task(consume(cfg.mqtt, ingestor, executor, stop, state), name="mqtt"),
        asyncio.create_task(server.serve(), name="http"),
        asyncio.create_task(
            _housekeeping(store, executor, stop, _report_schedule(store, cfg, classes)),
            name="housekeeping",
        ),
        asyncio.create_task(_clock(store, rules, executor, stop, bridge), name="clock"),
    ]
    if bridge.notifier is not None:
        tasks.append(asyncio.create_task(bridge.notifier.run(stop), name="notify"))
    if cfg.inspection is not None:
        from collector.inspections import run_schedule

        tasks.append(asyncio.create_task(run_schedule(cfg, store, stop), name="inspection"))
    if cfg.mqtt.shared and cfg.mqtt.takeover_after_seconds > 0:
        tasks.append(
            asyncio.create_task(watch_peers(cfg.mqtt, ingestor, executor, stop), name="peers")
        )
    log.info(
        "collector starting: database %s, HTTP on http://%s:%d/",
        cfg.database.url,
        cfg.http.listen,
        cfg.http.port,
    )
    try:
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for t in done:
            if t in tasks and t.exception():
                raise t.exception()  # type: ignore[misc]
    finally:
        stop.set()
        web.close()  # end the board's event streams so uvicorn can stop at once
        server.should_exit = True
        await asyncio.wait(tasks, timeout=10)
        for t in tasks:
            t.cancel()
        executor.shutdown(wait=True)
        store.close()
        log.info("collector stopped")
