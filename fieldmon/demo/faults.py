"""The demo's fault schedule: what goes wrong on the simulated site, when, and for how long.

The schedule repeats every :data:`CYCLE` seconds so a demo left running keeps showing
incidents open and resolve. ``speed`` compresses it (tests run it at 4-6×); the state at any
moment is a pure function of the time since the demo started, so the runner can recompute it
as often as it likes and rewrite only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fieldmon.demo import site as s

#: One cycle of the schedule, in demo seconds (real seconds at speed 1).
CYCLE = 300.0


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    title: str
    #: seconds into the cycle (at speed 1) the fault starts, and how long it lasts
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


FAULTS = (
    Fault(
        "clock",
        f"{s.DRIFTING_CAMERA}'s clock runs ahead (up to 3 min), then is resynchronised",
        20,
        150,
    ),
    Fault("camera", f"{s.DARK_CAMERA} goes dark (no SNMP answer, its port down)", 30, 120),
    Fault(
        "disk",
        f"{s.LINUX_SERVER}'s {s.FILLING_DISK} fills from 70 % to 97 %, then old footage is purged",
        40,
        180,
    ),
    Fault("ups", f"{s.UPS} runs on battery (mains lost), then mains returns", 60, 90),
    Fault(
        "config",
        f"{s.CORE}'s configuration is changed outside any maintenance window (the video "
        f"server's port {s.EDITED_PORT} moved to VLAN 99), then changed back",
        45,
        120,
    ),
    Fault(
        "switch",
        f"{s.FAILING_SWITCH} goes down with the {s.CAMERAS_PER_SWITCH} cameras behind it, "
        "then reboots",
        90,
        120,
    ),
)
FAULT_NAMES = frozenset(f.name for f in FAULTS)


@dataclass(frozen=True, slots=True)
class Moment:
    """The site at one instant: device state, responder groups that are stopped, and the
    faults in force."""

    state: s.SiteState
    dark_groups: frozenset[str]
    active: frozenset[str]


def _last_end(fault: Fault, cycle: int, t: float) -> float | None:
    """When this fault last ended, in demo seconds since the start (None: never yet)."""
    if t >= fault.end:
        return cycle * CYCLE + fault.end
    if cycle >= 1:
        return (cycle - 1) * CYCLE + fault.end
    return None


def moment(elapsed: float, speed: float = 1.0, started: float = 0.0) -> Moment:
    """The site ``elapsed`` real seconds after the demo started at ``started`` (epoch s)."""
    if speed <= 0:
        raise ValueError(f"demo speed must be positive, got {speed}")
    demo_t = max(0.0, elapsed) * speed
    cycle, t = int(demo_t // CYCLE), demo_t % CYCLE
    state = s.SiteState(video_disk_used=0.70)
    dark: set[str] = set()
    active: set[str] = set()
    by_name = {f.name: f for f in FAULTS}

    def running(name: str) -> tuple[bool, float]:
        f = by_name[name]
        on = f.start <= t < f.end
        if on:
            active.add(name)
        return on, (t - f.start)

    on, into = running("clock")
    if on:
        state.clock_offsets[s.DRIFTING_CAMERA] = min(180.0, 2.0 * into)
    on, into = running("camera")
    if on:
        dark.add(s.GROUP_CAMERA)
        state.ports_down.setdefault(s.ACCESS[0], set()).add("GigabitEthernet0/0/7")
    on, into = running("disk")
    if on:
        fill = min(1.0, into / (by_name["disk"].duration * 2 / 3))
        state.video_disk_used = 0.70 + (0.97 - 0.70) * fill
    on, into = running("ups")
    ups = by_name["ups"]
    if on:
        state.ups_on_battery = True
        state.ups_charge = 1.0 - 0.35 * into / ups.duration
    else:
        ended = _last_end(ups, cycle, t)
        since = demo_t - ended if ended is not None else None
        if since is not None:
            state.ups_charge = min(1.0, 0.65 + since / 240)
    on, into = running("config")
    state.core_config_edited = on
    on, into = running("switch")
    switch = by_name["switch"]
    if on:
        dark.add(s.GROUP_SWITCH)
        state.ports_down.setdefault(s.CORE, set()).add("XGigabitEthernet0/0/3")
    else:
        ended = _last_end(switch, cycle, t)
        if ended is not None:
            state.booted_at[s.FAILING_SWITCH] = started + ended / speed
    return Moment(state, frozenset(dark), frozenset(active))


def timeline(speed: float = 1.0) -> list[str]:
    """The schedule as lines for the operator, in real seconds at this speed."""
    return [
        f"{f.start / speed:5.0f}s-{f.end / speed:.0f}s  {f.title}"
        for f in sorted(FAULTS, key=lambda f: f.start)
    ] + [f"then again every {CYCLE / speed:.0f}s"]
