"""Moves results from the outbox to the broker, the only module that talks MQTT.

Results leave the outbox only after the broker's PUBACK (QoS 1), so a crash or a broker
outage at any moment loses nothing; the collector deduplicates the redeliveries on msg_id.
The agent's online/offline status is retained, with "offline" as the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from typing import TYPE_CHECKING

import aiomqtt

from agent.config import AgentConfig
from agent.outbox import Outbox
from checks import topics
from checks.commands import command_topic
from checks.wire import MAX_PAYLOAD_BYTES, encode_batch, encode_status
from fieldmon import __version__
from fieldmon.aio import pause

if TYPE_CHECKING:
    from agent.commands import Commands

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, cfg: AgentConfig, outbox: Outbox, commands: Commands | None = None) -> None:
        self._cfg = cfg
        self._outbox = outbox
        #: Where the collector's requests go (set by the runner once its sink exists).
        self.commands = commands
        self._wakeup = asyncio.Event()
        self.connected = False
        self._status_topic = topics.topic(cfg.site, cfg.agent, "status")
        self._results_topic = topics.topic(cfg.site, cfg.agent, "results")

    def notify(self) -> None:
        """New results are in the outbox."""
        self._wakeup.set()

    def _client(self) -> aiomqtt.Client:
        m = self._cfg.mqtt
        return aiomqtt.Client(
            **m.connection(),
            identifier=f"fieldmon-agent-{self._cfg.site}-{self._cfg.agent}",
            keepalive=m.keepalive,
            timeout=30,
            will=aiomqtt.Will(
                self._status_topic,
                encode_status(self._cfg.site, self._cfg.agent, "offline", __version__),
                qos=1,
                retain=True,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        m = self._cfg.mqtt
        backoff = 1.0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.publish(
                        self._status_topic,
                        encode_status(self._cfg.site, self._cfg.agent, "online", __version__),
                        qos=1,
                        retain=True,
                    )
                    self.connected = True
                    log.info(
                        "connected to broker %s:%d; %d results waiting in the outbox",
                        m.host,
                        m.port,
                        self._outbox.pending(),
                    )
                    backoff = 1.0
                    listening = await self._listen(client)
                    try:
                        await self._drain(client, stop)
                    finally:
                        if listening is not None:
                            listening.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await listening
                    await client.publish(
                        self._status_topic,
                        encode_status(self._cfg.site, self._cfg.agent, "stopped", __version__),
                        qos=1,
                        retain=True,
                    )
                    return
            except sqlite3.Error as exc:
                # The outbox itself failed (disk full, I/O): nothing was acknowledged that
                # was not sent; try again shortly.
                self.connected = False
                log.error(
                    "outbox %s unreadable or unwritable (%s); retrying in 5s",
                    self._outbox.path,
                    exc,
                )
                await pause(stop, 5.0)
            except aiomqtt.MqttError as exc:
                was = self.connected
                self.connected = False
                delay = min(backoff, m.max_backoff) * random.uniform(0.8, 1.2)
                log.warning(
                    "%s broker %s:%d: %s; %d results kept in the outbox, retrying in %.1fs",
                    "lost" if was else "cannot reach",
                    m.host,
                    m.port,
                    exc,
                    self._outbox.pending(),
                    delay,
                )
                backoff = min(backoff * 2, m.max_backoff)
                await pause(stop, delay)

    async def _listen(self, client: aiomqtt.Client) -> asyncio.Task[None] | None:
        """Subscribe to the collector's requests (retained: one waiting is delivered now)."""
        commands = self.commands
        if commands is None:
            return None
        await client.subscribe(command_topic(self._cfg.site, self._cfg.agent), qos=1)

        async def read() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for message in client.messages:
                    if isinstance(message.payload, bytes) and message.payload:
                        commands.received(message.payload)

        return asyncio.create_task(read(), name="commands")

    async def _drain(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        size = self._cfg.outbox.batch_size
        while True:
            batch = self._outbox.peek(size)
            gaps = [g.to_wire() for g in self._outbox.gaps(unpublished=True)][:100]
            if not batch and gaps:
                await client.publish(
                    self._results_topic,
                    encode_batch(self._cfg.site, self._cfg.agent, [], gaps=gaps),
                    qos=1,
                )
                self._outbox.gaps_published([g["gap_id"] for g in gaps])
                continue
            if not batch:
                if stop.is_set():
                    return
                self._wakeup.clear()
                stopper = asyncio.create_task(stop.wait())
                waker = asyncio.create_task(self._wakeup.wait())
                await asyncio.wait({stopper, waker}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                waker.cancel()
                continue
            payload = encode_batch(
                self._cfg.site, self._cfg.agent, [r for _, r in batch], gaps=gaps
            )
            while len(payload) > MAX_PAYLOAD_BYTES and len(batch) > 1:
                batch = batch[: len(batch) // 2]
                payload = encode_batch(
                    self._cfg.site, self._cfg.agent, [r for _, r in batch], gaps=gaps
                )
            await client.publish(self._results_topic, payload, qos=1)
            self._outbox.ack(batch[-1][0])
            if gaps:
                self._outbox.gaps_published([g["gap_id"] for g in gaps])
