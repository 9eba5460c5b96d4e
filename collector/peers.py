"""Collectors in one shared subscription watch each other and adopt a dead peer's session.

Why: with ``mqtt.shared = true`` Mosquitto keeps a member whose persistent session is offline
in the group's round-robin and queues its share of the results in that session. A collector
killed for good would strand those results (measured: 3,200 of 8,000 in
``tests/test_faults_scaleout.py`` before this existed); they arrive only when a process with
that client id connects again. So every collector announces itself with a retained
``online`` on ``fieldmon/collectors/<client_id>/status`` (last will: ``offline``), and when a
peer has been gone for ``mqtt.takeover_after_seconds`` the surviving collector with the
lowest client id connects *as that peer* (same client id, same session) and consumes its
queue through its own ingest. It keeps holding the session, so the group's round-robin keeps
landing on a live consumer, until the real peer announces itself again; then it lets go.

The holder writes ``held:<holder>`` on the peer's status topic, so that if the holder dies
too, the next survivor sees the peer's session is orphaned again and adopts both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiomqtt

from checks.topics import COLLECTORS_ROOT as ROOT
from collector.config import MqttConfig
from collector.ingest import Ingestor
from collector.mqtt_source import SourceState, consume
from fieldmon.aio import pause

log = logging.getLogger(__name__)

ONLINE, OFFLINE, HELD = "online", "offline", "held:"


def status_topic(client_id: str) -> str:
    return f"{ROOT}/{client_id}/status"


@dataclass
class _Peer:
    status: str
    #: monotonic time the status was last seen to change
    since: float


@dataclass
class PeerTable:
    """What this collector knows of the group, and which sessions it should hold.

    Pure bookkeeping (no I/O) so the adoption rule is testable on its own: a peer is
    orphaned when it is offline, or held by a collector that is itself not online, for at
    least ``after`` seconds; the orphan goes to the lowest client id among the online ones.
    """

    me: str
    after: float
    peers: dict[str, _Peer] = field(default_factory=dict)

    def seen(self, client_id: str, status: str, now: float) -> None:
        old = self.peers.get(client_id)
        if old is None or old.status != status:
            self.peers[client_id] = _Peer(status, now)

    def online(self) -> set[str]:
        return {c for c, p in self.peers.items() if p.status == ONLINE} | {self.me}

    def _gone_since(self, client_id: str) -> float | None:
        p = self.peers[client_id]
        if p.status == ONLINE:
            return None
        if p.status.startswith(HELD):
            holder = p.status.removeprefix(HELD)
            if holder in self.online():
                return None
            h = self.peers.get(holder)
            return max(p.since, h.since) if h is not None else p.since
        return p.since

    def orphans(self, now: float) -> set[str]:
        """Peers whose sessions this collector should hold now."""
        if min(self.online()) != self.me:
            return set()
        out = set()
        for client_id in self.peers:
            if client_id == self.me:
                continue
            since = self._gone_since(client_id)
            if since is not None and now - since >= self.after:
                out.add(client_id)
        return out

    def returned(self, client_id: str) -> bool:
        p = self.peers.get(client_id)
        return p is not None and p.status == ONLINE


@dataclass
class _Held:
    task: asyncio.Task[None]
    stop: asyncio.Event


async def watch_peers(
    cfg: MqttConfig,
    ingestor: Ingestor,
    executor: ThreadPoolExecutor,
    stop: asyncio.Event,
) -> None:
    """Announce this collector, follow the others, adopt and release orphaned sessions."""
    table = PeerTable(cfg.client_id, cfg.takeover_after_seconds)
    held: dict[str, _Held] = {}
    backoff = 1.0
    try:
        while not stop.is_set():
            try:
                async with _presence_client(cfg) as client:
                    await client.publish(status_topic(cfg.client_id), ONLINE, qos=1, retain=True)
                    await client.subscribe(f"{ROOT}/+/status", qos=1)
                    backoff = 1.0
                    await _follow(client, cfg, table, held, ingestor, executor, stop)
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(
                            status_topic(cfg.client_id), OFFLINE, qos=1, retain=True
                        )
                    return
            except aiomqtt.MqttError as exc:
                log.warning("peer watch: broker %s:%d: %s", cfg.host, cfg.port, exc)
                await pause(stop, backoff)
                backoff = min(backoff * 2, cfg.max_backoff)
    finally:
        for h in held.values():
            h.stop.set()
        if held:
            await asyncio.wait([h.task for h in held.values()], timeout=10)


def _presence_client(cfg: MqttConfig) -> aiomqtt.Client:
    return aiomqtt.Client(
        **cfg.connection(),
        identifier=f"{cfg.client_id}-presence",
        clean_session=True,
        timeout=30,
        will=aiomqtt.Will(status_topic(cfg.client_id), OFFLINE, qos=1, retain=True),
    )


async def _follow(
    client: aiomqtt.Client,
    cfg: MqttConfig,
    table: PeerTable,
    held: dict[str, _Held],
    ingestor: Ingestor,
    executor: ThreadPoolExecutor,
    stop: asyncio.Event,
) -> None:
    messages = client.messages
    while not stop.is_set():
        try:
            msg = await asyncio.wait_for(anext(messages), timeout=1.0)
        except TimeoutError:
            msg = None
        now = time.monotonic()
        if msg is not None:
            parts = str(msg.topic).split("/")
            if len(parts) == 4 and parts[3] == "status" and isinstance(msg.payload, bytes):
                table.seen(parts[2], msg.payload.decode("utf-8", "replace"), now)
        for client_id in list(held):
            h = held[client_id]
            if table.returned(client_id):
                log.info("collector %s is back: letting its session go", client_id)
                h.stop.set()
                await asyncio.wait([h.task], timeout=10)
                del held[client_id]
            elif h.task.done():
                # Failed while held: say so and put the session up for adoption again.
                log.error("holding collector %s's session failed: %r", client_id, h.task)
                del held[client_id]
                await client.publish(status_topic(client_id), OFFLINE, qos=1, retain=True)
        for client_id in table.orphans(now) - set(held):
            log.warning(
                "collector %s gone for %.0fs: taking over its session so its share of the "
                "results is stored",
                client_id,
                cfg.takeover_after_seconds,
            )
            await client.publish(status_topic(client_id), HELD + cfg.client_id, qos=1, retain=True)
            own_stop = asyncio.Event()
            peer_cfg = cfg.model_copy(update={"client_id": client_id})
            task = asyncio.create_task(
                consume(peer_cfg, ingestor, executor, own_stop, SourceState()),
                name=f"held-{client_id}",
            )
            held[client_id] = _Held(task, own_stop)
