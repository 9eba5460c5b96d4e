"""Interface rates over SNMP: errors, discards and utilisation from two counter samples.

Why the probe keeps samples: SNMP counters only ever count up since the device (or the
interface) started, so a rate needs the previous reading of the same counter. The probe keeps
it in memory, per target, interface and counter (:class:`CounterMemory`); an agent restart
starts over.

Decisions, and why:

* **First sample: no result.** Nothing has been measured yet. An OK "baseline taken" would be
  a false statement in the inspection record, and an UNKNOWN would look like a fault on every
  agent restart. The next collection (every 5 minutes by default) reports.
* **Counter wrap.** Counters wrap at 2^32 (Counter32: ifInErrors, ifInOctets) or 2^64
  (Counter64: ifHCInOctets). A lower reading is taken as one wrap when the increase it implies
  is under half the counter's range; otherwise the counter went backwards (reset by an
  operator, module swapped): UNKNOWN with the reason, and the reading becomes the new baseline.
* **Device restart** (sysUpTime lower than at the previous collection): every counter restarted
  from zero, so the target's baselines are dropped and taken again, with no result.
* **Only interfaces that are up** are reported (a down port carries nothing and would add
  dozens of zero items), and utilisation only where the device reports a speed. Utilisation is
  the higher of the two directions, from the 64-bit counters and ifHighSpeed; devices without
  ifXTable fall back to the 32-bit ifInOctets/ifOutOctets and ifSpeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.probes.base import Observation, unknown
from agent.probes.snmp_values import as_int, index_key, text
from agent.snmp_client import SnmpValue

ERRORS = "if.errors"
DISCARDS = "if.discards"
UTILISATION = "if.utilisation"
#: The catalogue ids this module measures.
CHECKS = frozenset({ERRORS, DISCARDS, UTILISATION})

IF_TABLE = "1.3.6.1.2.1.2.2.1"
IF_X_TABLE = "1.3.6.1.2.1.31.1.1.1"


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter column: its name in facts, its OID and its width in bits."""

    name: str
    oid: str
    bits: int


IN_ERRORS = Counter("in", f"{IF_TABLE}.14", 32)
OUT_ERRORS = Counter("out", f"{IF_TABLE}.20", 32)
IN_DISCARDS = Counter("in", f"{IF_TABLE}.13", 32)
OUT_DISCARDS = Counter("out", f"{IF_TABLE}.19", 32)
IN_OCTETS_HC = Counter("in", f"{IF_X_TABLE}.6", 64)
OUT_OCTETS_HC = Counter("out", f"{IF_X_TABLE}.10", 64)
IN_OCTETS = Counter("in", f"{IF_TABLE}.10", 32)
OUT_OCTETS = Counter("out", f"{IF_TABLE}.16", 32)
IF_HIGH_SPEED = f"{IF_X_TABLE}.15"  # Mb/s
IF_SPEED = f"{IF_TABLE}.5"  # b/s, saturates at 4 294 967 295


@dataclass(frozen=True, slots=True)
class Octets:
    """Counters and speed column for utilisation, with the speed's unit in bit/s."""

    inbound: Counter
    outbound: Counter
    speed_oid: str
    speed_unit: float


HC_OCTETS = Octets(IN_OCTETS_HC, OUT_OCTETS_HC, IF_HIGH_SPEED, 1e6)
OCTETS_32 = Octets(IN_OCTETS, OUT_OCTETS, IF_SPEED, 1.0)

#: Counter pairs of the packet-rate checks.
PACKET_COUNTERS = {ERRORS: (IN_ERRORS, OUT_ERRORS), DISCARDS: (IN_DISCARDS, OUT_DISCARDS)}
#: Utilisation above this share of the interface speed means counters or speed are wrong.
IMPLAUSIBLE_UTILISATION = 110.0
#: Two samples closer than this are too close for a meaningful rate; the older one is kept.
MIN_INTERVAL = 1.0


def counter_delta(previous: int, current: int, bits: int) -> int | None:
    """Increase of a counter between two readings, allowing one wrap at 2**bits; ``None`` when
    the counter went backwards (a wrap would imply more than half the counter's range)."""
    if current >= previous:
        return current - previous
    wrapped = current + (1 << bits) - previous
    return wrapped if wrapped < (1 << (bits - 1)) else None


@dataclass(frozen=True, slots=True)
class Rate:
    """Outcome for one counter: a rate per second, a baseline (both ``None``), or a problem."""

    per_second: float | None = None
    problem: str | None = None


class CounterMemory:
    """The previous reading of every counter, per (target, interface, counter OID), and each
    target's last sysUpTime to tell a device restart from a counter reset."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._uptime: dict[str, int] = {}

    def device_restarted(self, target: str, uptime_ticks: int | None) -> bool:
        """Record sysUpTime; if it went down since last time, drop the target's baselines."""
        if uptime_ticks is None:
            return False
        previous = self._uptime.get(target)
        self._uptime[target] = uptime_ticks
        if previous is None or uptime_ticks >= previous:
            return False
        for key in [k for k in self._samples if k[0] == target]:
            del self._samples[key]
        return True

    def set_baseline(
        self, target: str, index: str, counter: Counter, value: int, at: float
    ) -> None:
        """Store a reading as if it had been taken at ``at`` (restoring saved state, tests)."""
        self._samples[(target, index, counter.oid)] = (value, at)

    def rate(self, target: str, index: str, counter: Counter, value: int, at: float) -> Rate:
        """Per-second increase since the previous reading; stores ``value`` as the new one."""
        key = (target, index, counter.oid)
        previous = self._samples.get(key)
        if previous is not None and at - previous[1] < MIN_INTERVAL:
            return Rate()  # keep the older baseline: the next collection gets a real interval
        self._samples[key] = (value, at)
        if previous is None:
            return Rate()
        delta = counter_delta(previous[0], value, counter.bits)
        if delta is None:
            return Rate(
                problem=f"{counter.name} counter went backwards ({previous[0]} → {value}) "
                "without a device restart; baseline taken again"
            )
        return Rate(per_second=delta / (at - previous[1]))


@dataclass(frozen=True, slots=True)
class InterfaceView:
    """What the probe walked for one collection: item names of the interfaces that are up
    (by ifIndex) and the counter/speed columns (OID → ifIndex → value)."""

    items: Mapping[str, str]
    columns: Mapping[str, Mapping[str, SnmpValue]]


def _readings(
    view: InterfaceView, index: str, counters: Sequence[Counter]
) -> list[int | None] | None:
    """The counters of one interface (``None`` inside for a value that is not a counter), or
    ``None`` when the interface is missing from a column: not counted there, so skipped."""
    raws = [view.columns.get(c.oid, {}).get(index) for c in counters]
    if any(raw is None for raw in raws):
        return None
    return [as_int(raw) for raw in raws]


def _rates(
    memory: CounterMemory,
    target: str,
    index: str,
    counters: Sequence[Counter],
    values: Sequence[int],
    at: float,
) -> list[Rate]:
    return [memory.rate(target, index, c, v, at) for c, v in zip(counters, values, strict=True)]


def packet_rates(
    check: str, target: str, view: InterfaceView, memory: CounterMemory, at: float
) -> list[Observation]:
    """``if.errors`` / ``if.discards``: in + out packets per second, per interface. A direction
    the device does not count at all (vivotek has ifOutDiscards but no ifInDiscards) is left
    out of the sum and shown as such; an interface missing from the columns is skipped."""
    counters = [c for c in PACKET_COUNTERS[check] if view.columns.get(c.oid)]
    if not counters:
        if not view.items:
            return []
        names = " / ".join(c.oid for c in PACKET_COUNTERS[check])
        return [unknown(check, f"device exposes no {check.split('.')[1]} counters ({names})")]
    out: list[Observation] = []
    for index in sorted(view.items, key=index_key):
        item = view.items[index]
        values = _readings(view, index, counters)
        if values is None:
            continue
        if any(v is None or v < 0 for v in values):
            raw = [text(view.columns.get(c.oid, {}).get(index)) for c in counters]
            out.append(unknown(check, f"unreadable counters {raw}", item=item))
            continue
        found = _rates(memory, target, index, counters, [v for v in values if v is not None], at)
        problem = next((r.problem for r in found if r.problem), None)
        if problem:
            out.append(unknown(check, problem, item=item))
            continue
        if any(r.per_second is None for r in found):
            continue  # baseline taken
        per_direction = {c.name: r.per_second or 0.0 for c, r in zip(counters, found, strict=True)}
        shown = [
            f"{per_direction[d]:.3g}/s {d}" if d in per_direction else f"{d} not counted"
            for d in ("in", "out")
        ]
        facts = {f"{d}_per_s": f"{v:.3f}" for d, v in per_direction.items()}
        out.append(
            Observation(
                check,
                round(sum(per_direction.values()), 3),
                item=item,
                summary=", ".join(shown),
                facts=facts,
            )
        )
    return out


def utilisation(
    target: str, view: InterfaceView, memory: CounterMemory, at: float
) -> list[Observation]:
    """``if.utilisation``: the busier direction as % of the interface speed."""
    octets = HC_OCTETS if view.columns.get(HC_OCTETS.inbound.oid) else OCTETS_32
    counters = (octets.inbound, octets.outbound)
    speeds = view.columns.get(octets.speed_oid, {})
    out: list[Observation] = []
    seen = with_speed = False
    for index in sorted(view.items, key=index_key):
        item = view.items[index]
        values = _readings(view, index, counters)
        if values is None:
            continue
        seen = True
        speed = as_int(speeds.get(index))
        if not speed or speed < 0:
            continue  # no speed (virtual interfaces): nothing to compare with
        with_speed = True
        if any(v is None or v < 0 for v in values):
            raw = [text(view.columns.get(c.oid, {}).get(index)) for c in counters]
            out.append(unknown(UTILISATION, f"unreadable octet counters {raw}", item=item))
            continue
        rates = _rates(memory, target, index, counters, [v for v in values if v is not None], at)
        problem = next((r.problem for r in rates if r.problem), None)
        if problem:
            out.append(unknown(UTILISATION, problem, item=item))
            continue
        if any(r.per_second is None for r in rates):
            continue  # baseline taken
        bits_per_s = [8 * (r.per_second or 0.0) for r in rates]
        capacity = speed * octets.speed_unit
        in_pct, out_pct = (100 * b / capacity for b in bits_per_s)
        value = max(in_pct, out_pct)
        facts = {
            "in_bps": f"{bits_per_s[0]:.0f}",
            "out_bps": f"{bits_per_s[1]:.0f}",
            "speed_bps": f"{capacity:.0f}",
            "counters": "64-bit" if octets is HC_OCTETS else "32-bit",
        }
        if value > IMPLAUSIBLE_UTILISATION:
            reason = f"{value:.0f}% of the interface speed: counters or speed are wrong"
            out.append(unknown(UTILISATION, reason, item=item))
            continue
        summary = f"in {in_pct:.1f}%, out {out_pct:.1f}% of {_speed(capacity)}"
        out.append(
            Observation(UTILISATION, round(value, 2), item=item, summary=summary, facts=facts)
        )
    if view.items and not seen:
        return [unknown(UTILISATION, "device exposes no octet counters (ifXTable, ifTable)")]
    if seen and not with_speed:
        return [unknown(UTILISATION, "no interface that is up reports its speed")]
    return out


def _speed(bits_per_s: float) -> str:
    for unit, size in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits_per_s >= size:
            return f"{bits_per_s / size:g} {unit}"
    return f"{bits_per_s:g} b/s"


def columns_for(checks: set[str], hc_available: bool | None = None) -> list[str]:
    """Counter and speed columns the due rate checks need (for the probe to walk)."""
    oids: list[str] = []
    for check in sorted(checks & set(PACKET_COUNTERS)):
        oids += [c.oid for c in PACKET_COUNTERS[check]]
    if UTILISATION in checks:
        octets = OCTETS_32 if hc_available is False else HC_OCTETS
        oids += [octets.inbound.oid, octets.outbound.oid, octets.speed_oid]
    return oids
