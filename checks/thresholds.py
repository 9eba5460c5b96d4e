"""Thresholds are data; :func:`evaluate` is the only code that interprets them.

Three kinds cover the inspection checklist:

* ``upper`` — the value must stay below ``warn``/``crit`` (disk used %, load, clock offset).
* ``lower`` — the value must stay above ``warn``/``crit`` (free inodes, uptime after reboot).
* ``match`` — the value must be one of ``ok`` (interface "up"); anything else is ``otherwise``.

In TOML they read ``threshold = { upper = [80, 90] }``, ``{ lower = [600, 0] }`` or
``{ match = ["up"], otherwise = "CRIT" }``. Either bound of ``upper``/``lower`` may be omitted
by giving only one number (it is the crit bound when it is the only one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from checks.status import Status

ThresholdKind = Literal["upper", "lower", "match"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """One rule turning a measured value into a status."""

    kind: ThresholdKind
    warn: float | None = None
    crit: float | None = None
    ok: tuple[str, ...] = ()
    otherwise: Status = Status.CRIT

    def describe(self) -> str:
        """Human-readable form for reports ("warn ≥ 80, crit ≥ 90", "= up")."""
        if self.kind == "match":
            return "= " + " | ".join(self.ok)
        sign = "≥" if self.kind == "upper" else "≤"
        parts = [
            f"{name} {sign} {_num(bound)}"
            for name, bound in (("warn", self.warn), ("crit", self.crit))
            if bound is not None
        ]
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def evaluate(value: float | str | None, threshold: Threshold | None) -> Status:
    """Status of ``value`` under ``threshold``.

    No value means the item could not be measured: UNKNOWN, whatever the threshold. No
    threshold means the item is informational (inventory facts): OK.
    """
    if value is None:
        return Status.UNKNOWN
    if threshold is None:
        return Status.OK
    if threshold.kind == "match":
        return Status.OK if str(value) in threshold.ok else threshold.otherwise
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return Status.UNKNOWN
    if threshold.kind == "upper":
        if threshold.crit is not None and value >= threshold.crit:
            return Status.CRIT
        if threshold.warn is not None and value >= threshold.warn:
            return Status.WARN
        return Status.OK
    if threshold.crit is not None and value <= threshold.crit:
        return Status.CRIT
    if threshold.warn is not None and value <= threshold.warn:
        return Status.WARN
    return Status.OK


def parse_threshold(data: Mapping[str, Any]) -> Threshold:
    """Build a :class:`Threshold` from its TOML table; raises ValueError naming the problem."""
    kinds = [k for k in ("upper", "lower", "match") if k in data]
    if len(kinds) != 1:
        raise ValueError("a threshold needs exactly one of 'upper', 'lower' or 'match'")
    kind: ThresholdKind = kinds[0]  # type: ignore[assignment]
    unknown = set(data) - {"upper", "lower", "match", "otherwise"}
    if unknown:
        raise ValueError(f"unknown threshold key(s): {', '.join(sorted(unknown))}")
    raw = data[kind]
    if kind == "match":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
            raise ValueError("'match' must be a non-empty list of strings")
        otherwise = Status.parse(str(data.get("otherwise", "CRIT")))
        return Threshold(kind="match", ok=tuple(raw), otherwise=otherwise)
    if "otherwise" in data:
        raise ValueError("'otherwise' only applies to 'match' thresholds")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = [raw]
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
    ):
        raise ValueError(f"'{kind}' must be [warn, crit] or [crit] (numbers)")
    if len(raw) == 1:
        return Threshold(kind=kind, crit=float(raw[0]))
    warn, crit = float(raw[0]), float(raw[1])
    if (kind == "upper" and warn > crit) or (kind == "lower" and warn < crit):
        raise ValueError(f"'{kind}' warn bound {raw[0]} is beyond its crit bound {raw[1]}")
    return Threshold(kind=kind, warn=warn, crit=crit)
