"""Turn a probe's observations into results, applying catalogue thresholds and overrides."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from agent.config import TargetConfig
from agent.probes.base import Observation
from checks.catalogue import DeviceClass
from checks.result import Result
from checks.status import Status
from checks.thresholds import evaluate

log = logging.getLogger(__name__)


def _fmt(value: object, unit: str) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text}{unit}" if unit in ("%", "s") else f"{text} {unit}".strip()


def to_results(
    target: TargetConfig,
    device_class: DeviceClass,
    observations: Iterable[Observation],
    now: datetime | None = None,
) -> list[Result]:
    observed_at = now or datetime.now(UTC)
    meta = {
        "address": target.address or "",
        "location": target.location,
        "parent": target.parent or "",
    }
    meta = {k: v for k, v in meta.items() if v}
    out: list[Result] = []
    for obs in observations:
        item = device_class.item(obs.check)
        if item is None:
            log.error(
                "probe produced %r, which class %s does not define; dropped",
                obs.check,
                device_class.name,
            )
            continue
        threshold = target.threshold_for(obs.check, item.threshold)
        status = obs.status if obs.status is not None else evaluate(obs.value, threshold)
        unit = obs.unit if obs.unit is not None else item.unit
        summary = obs.summary
        if obs.value is not None and status in (Status.WARN, Status.CRIT) and threshold:
            summary = f"{_fmt(obs.value, unit)} (threshold {threshold.describe()})" + (
                f"; {summary}" if summary else ""
            )
        facts = dict(obs.facts)
        if item.id.endswith(".reachable") or item.id.startswith("inventory."):
            facts.update(meta)
        out.append(
            Result(
                target=target.name,
                target_class=device_class.name,
                check=obs.check,
                item=obs.item,
                status=status,
                value=obs.value,
                unit=unit,
                summary=summary[:1024],
                observed_at=observed_at,
                facts=facts,
            )
        )
    return out
