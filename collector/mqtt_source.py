"""Receives agents' messages from the broker and acknowledges each only once it is stored.

aiomqtt acknowledges QoS 1 messages as soon as they are queued, which would lose results a
crash catches in memory. So the underlying paho client is switched to manual
acknowledgement (paho's documented ``manual_ack_set``/``ack``; aiomqtt 2.5 exposes no
wrapper for it): the PUBACK goes out after the database transaction commits. With a
persistent session the broker keeps everything unacknowledged for the next connection.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiomqtt
from sqlalchemy.exc import OperationalError

from checks import topics
from collector.config import MqttConfig
from collector.ingest import Ingestor, Message
from fieldmon.aio import pause

log = logging.getLogger(__name__)

MAX_BATCH = 200

#: Allocations between two young-generation collections while consuming (CPython's default
#: is 700). See :func:`tune_gc`.
GC_YOUNG_THRESHOLD = 10_000
_GC_TUNED = False


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for ingest, once per process.

    Storing a batch builds tens of thousands of short-lived dicts and tuples (rows read,
    rows to write) that survive a young collection or two while the batch is in flight, so
    with CPython's defaults the collector ran full collections over the whole heap —
    SQLAlchemy, pydantic and FastAPI included — every few batches: 15–20 % of ingest CPU
    (measured with ``bench.ingest``'s workload). Freezing what start-up built (it lives
    for the whole process anyway) takes it out of every later scan, and a larger young
    generation means fewer collections; cycles are still collected, only less often."""
    global _GC_TUNED
    if _GC_TUNED:
        return
    _GC_TUNED = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


@dataclass
class SourceState:
    connected: bool = False


def _client(cfg: MqttConfig) -> aiomqtt.Client:
    client = aiomqtt.Client(
        **cfg.connection(), identifier=cfg.client_id, clean_session=False, timeout=30
    )
    client._client.manual_ack_set(True)
    return client


async def consume(
    cfg: MqttConfig,
    ingestor: Ingestor,
    executor: ThreadPoolExecutor,
    stop: asyncio.Event,
    state: SourceState,
) -> None:
    backoff = 1.0
    loop = asyncio.get_running_loop()
    tune_gc()
    while not stop.is_set():
        try:
            client = _client(cfg)
            async with client:
                await client.subscribe(
                    [
                        (topics.subscription("results", shared=cfg.shared), 1),
                        (topics.subscription("inspection", shared=cfg.shared), 1),
                        # Status is retained and idempotent: every collector reads all of it.
                        (topics.subscription("status", shared=False), 1),
                    ]
                )
                state.connected = True
                backoff = 1.0
                log.info("subscribed at broker %s:%d as %s", cfg.host, cfg.port, cfg.client_id)
                await _pump(client, ingestor, executor, loop, stop)
                return
        except aiomqtt.MqttError as exc:
            state.connected = False
            delay = min(backoff, cfg.max_backoff) * random.uniform(0.8, 1.2)
            log.warning("broker %s:%d: %s; reconnecting in %.1fs", cfg.host, cfg.port, exc, delay)
            backoff = min(backoff * 2, cfg.max_backoff)
            await pause(stop, delay)
    state.connected = False


async def _pump(
    client: aiomqtt.Client,
    ingestor: Ingestor,
    executor: ThreadPoolExecutor,
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
) -> None:
    inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def read() -> None:
        async for message in client.messages:
            inbox.put_nowait(message)

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(stop.wait())
    try:
        while True:
            getter = asyncio.create_task(inbox.get())
            done, _ = await asyncio.wait(
                {getter, reader, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                if reader in done:
                    reader.result()  # re-raise the connection error
                return
            batch = [getter.result()]
            while len(batch) < MAX_BATCH and not inbox.empty():
                batch.append(inbox.get_nowait())
            msgs = [Message(str(m.topic), _payload_bytes(m.payload)) for m in batch]
            await _store_with_retry(ingestor, executor, loop, msgs, stop)
            for m in batch:
                if m.qos > 0:
                    client._client.ack(m.mid, m.qos)
    finally:
        reader.cancel()
        stopper.cancel()


async def _store_with_retry(
    ingestor: Ingestor,
    executor: ThreadPoolExecutor,
    loop: asyncio.AbstractEventLoop,
    msgs: list[Message],
    stop: asyncio.Event,
) -> None:
    """Store a batch; on a database error keep retrying (unacknowledged) until it works."""
    delay = 1.0
    while True:
        try:
            await loop.run_in_executor(executor, _handle_all, ingestor, msgs)
            return
        except Exception as exc:
            if isinstance(exc, OperationalError):
                # The database is away (restart, failover): expected, said in one line.
                log.error(
                    "database unavailable (%s): %d messages not acknowledged; retrying in %.0fs",
                    str(exc.orig or exc).strip().splitlines()[0],
                    len(msgs),
                    delay,
                )
            else:
                log.exception(
                    "storing %d messages failed; retrying in %.0fs (not acknowledged)",
                    len(msgs),
                    delay,
                )
            if stop.is_set():
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def _handle_all(ingestor: Ingestor, msgs: list[Message]) -> None:
    # In order; consecutive results of one agent share a transaction (Ingestor.handle_all).
    ingestor.handle_all(msgs)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
