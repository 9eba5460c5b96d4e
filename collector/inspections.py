"""The collector asks agents to run the inspection: on a schedule, or when an engineer says so.

The request is a retained message per agent (checks/commands.py), so an agent that is offline
at that moment runs it when it reconnects. The scheduled request of a month has a fixed id
(``monthly-YYYY-MM``): publishing it again — after a collector restart, or for an agent that
appeared later in the month — never makes an agent inspect twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import aiomqtt

from checks.commands import InspectRequest, command_topic, encode_inspect
from collector.config import CollectorConfig, MqttConfig
from collector.store.db import Store
from fieldmon.aio import pause

log = logging.getLogger(__name__)


def known_agents(store: Store, sites: Sequence[str] | None) -> list[tuple[str, str]]:
    """(site, agent) of every agent that has spoken to this collector, limited to ``sites``."""
    return sorted(
        (str(r["site"]), str(r["agent"]))
        for r in store.agent_rows()
        if sites is None or r["site"] in sites
    )


async def publish_requests(
    cfg: MqttConfig, agents: Sequence[tuple[str, str]], req: InspectRequest
) -> None:
    """Publish ``req`` retained to each agent; returns after the broker acknowledged all."""
    client = aiomqtt.Client(
        **cfg.connection(),
        identifier=f"{cfg.client_id}-request-{secrets.token_hex(4)}",
        clean_session=True,
        timeout=30,
    )
    payload = encode_inspect(req)
    async with client:
        for site, agent in agents:
            await client.publish(command_topic(site, agent), payload, qos=1, retain=True)


def manual_request(targets: Sequence[str], by: str, now: datetime | None = None) -> InspectRequest:
    at = now or datetime.now(UTC)
    rid = f"manual-{at:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    return InspectRequest(rid, tuple(targets), by, at)


def monthly_due(cfg: CollectorConfig, now: datetime) -> str | None:
    """The month (YYYY-MM) whose scheduled inspection is due at ``now``, if any."""
    sched = cfg.inspection
    if sched is None:
        return None
    local = now.astimezone(cfg.tz)
    if (local.day, local.time()) < (sched.monthly_day, sched.at):
        return None
    return f"{local:%Y-%m}"


async def run_schedule(cfg: CollectorConfig, store: Store, stop: asyncio.Event) -> None:
    """Every 30 s: once the month's inspection day has come, ask every agent not yet asked."""
    sent: set[tuple[str, str, str]] = set()
    sites = cfg.inspection.sites if cfg.inspection else None
    while not stop.is_set():
        now = datetime.now(UTC)
        month = monthly_due(cfg, now)
        if month is not None:
            todo = [
                a
                for a in await asyncio.to_thread(known_agents, store, sites)
                if (month, *a) not in sent
            ]
            if todo:
                req = InspectRequest(f"monthly-{month}", (), "schedule", now)
                try:
                    await publish_requests(cfg.mqtt, todo, req)
                except (aiomqtt.MqttError, OSError) as exc:
                    log.warning("monthly inspection request not sent (%s); retrying", exc)
                else:
                    sent.update((month, *a) for a in todo)
                    log.info(
                        "asked %d agents for the %s inspection: %s",
                        len(todo),
                        month,
                        ", ".join(f"{s}/{a}" for s, a in todo),
                    )
        await pause(stop, 30)
