"""``fieldmon agent inspect``: the monthly inspection run, on demand, straight to the collector.

An engineer on site runs it while doing the contract's inspection: every item of the chosen
targets (monitored and inspection-only) is measured now, like ``agent check``, and published
as one batch on the ``inspection`` topic so that the month's inspection record (巡检记录表)
holds exactly what was measured during the visit. It bypasses the outbox on purpose: the
engineer is there and must see at once whether the record reached the collector, so an
unreachable broker is reported (exit 1) rather than queued for later.

The MQTT client identifier differs from the running agent's, so that a resident ``agent run``
on the same host is not disconnected; no last will is set, since this session says nothing
about the agent's liveness.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aiomqtt
import msgspec

from agent.config import AgentConfig
from agent.runner import check_all
from checks import topics
from checks.result import Result
from checks.wire import MAX_PAYLOAD_BYTES, MAX_RESULTS_PER_BATCH, encode_batch, result_to_wire
from fieldmon.configfile import ConfigError

#: Seconds for connecting and for each PUBACK; an engineer is waiting at the terminal.
PUBLISH_TIMEOUT = 15.0


def select_targets(cfg: AgentConfig, names: Sequence[str] | None) -> AgentConfig:
    """``cfg`` limited to ``names`` (all targets when none are given); unknown names are a
    usage error, reported before anything is measured."""
    if not names:
        return cfg
    known = {t.name for t in cfg.targets}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(
            f"--target: no such target {', '.join(map(repr, missing))}"
            f" (targets: {', '.join(sorted(known))})"
        )
    chosen = [t for t in cfg.targets if t.name in set(names)]
    return msgspec.structs.replace(cfg, targets=chosen)


def batches(cfg: AgentConfig, results: Sequence[Result]) -> list[bytes]:
    """One payload for the run; split only where the wire schema's limits force it."""
    wire = [result_to_wire(r) for r in results]
    out: list[bytes] = []
    size = min(len(wire), MAX_RESULTS_PER_BATCH) or 1
    start = 0
    while start < len(wire) or not out:
        chunk = wire[start : start + size]
        payload = encode_batch(cfg.site, cfg.agent, chunk)
        if len(payload) > MAX_PAYLOAD_BYTES and size > 1:
            size = max(1, size // 2)
            continue
        out.append(payload)
        start += len(chunk)
    return out


async def publish(cfg: AgentConfig, payloads: Sequence[bytes]) -> None:
    """Publish ``payloads`` with QoS 1 on one connection; returns after the last PUBACK.

    Raises :class:`aiomqtt.MqttError` (or TimeoutError) when the broker cannot be reached or
    does not acknowledge.
    """
    m = cfg.mqtt
    client = aiomqtt.Client(
        **m.connection(),
        identifier=f"fieldmon-inspect-{cfg.site}-{cfg.agent}-{uuid.uuid4().hex[:8]}",
        keepalive=m.keepalive,
        timeout=PUBLISH_TIMEOUT,
    )
    async with client:
        for payload in payloads:
            await client.publish(
                topics.topic(cfg.site, cfg.agent, "inspection"),
                payload,
                qos=1,
                timeout=PUBLISH_TIMEOUT,
            )


async def inspect(cfg: AgentConfig) -> tuple[list[Result], str | None]:
    """Measure every item of ``cfg``'s targets and publish them; (results, failure or None)."""
    results = await check_all(cfg)
    try:
        await asyncio.wait_for(publish(cfg, batches(cfg, results)), PUBLISH_TIMEOUT * 2)
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return results, (
            f"broker {cfg.mqtt.host}:{cfg.mqtt.port} unreachable: {reason};"
            f" the {len(results)} inspection results were NOT published"
        )
    return results, None


def run_inspection(
    cfg: AgentConfig, targets: Sequence[str] | None
) -> tuple[list[Result], str | None]:
    """The command's body: choose targets (usage errors first), inspect, publish."""
    return asyncio.run(inspect(select_targets(cfg, targets)))
