"""SNMP polling cost: client-side CPU of one agent poll of a 51-port switch, against pysnmp.

Why: an agent on a customer's NVR host polls every switch, camera and UPS next to it every
60 s, on a machine bought to record video. What a poll costs *the agent's* CPU decides how
many devices one agent can watch without disturbing its host.

What is measured: ``agent.probes.snmp.SnmpProbe.collect(target, checks)`` against the real
snmpsim serving the recording of a Huawei S5720-32X-EI (``vrp_5720-32x-ei.snmprec``, 51
interfaces, ENTITY-MIB), over loopback, SNMPv2c, ``timeout=2.0``, ``retries=0``:

* full poll: every ``method = "snmp"`` item of ``checks/catalogue/snmp-device.toml`` (what
  the agent's scheduler hands the SNMP probe; ssh and trap items go elsewhere): system GET
  with vendor OIDs, ifOperStatus/ifAdminStatus/ifName walks, ENTITY-MIB column walks, …;
* scheduled poll: the same without the inspection-only items, i.e. what the agent does every
  minute between inspections (one GET and the same three interface walks as the anchor, when
  this was written).

Anchor, measured in the same run and interleaved round by round: the three interface-column
walks (ifOperStatus, ifAdminStatus, ifName) done with pysnmp 7's asyncio ``bulk_walk_cmd``
(``max-repetitions`` 25 like fieldmon's default, ``lexicographicMode=False``,
``lookupMib=False``, the cheapest pysnmp setting: raw OIDs like gufo-snmp returns). For
reference, to tell the probe's own cost from its SNMP stack's, the same three walks through
fieldmon's ``agent.snmp_client.SnmpClient`` alone and on gufo-snmp directly.

snmpsim (pure Python, in its own process) spends far more CPU per request than either
client, so wall time mostly measures the simulator; the figure that matters is the client's
CPU per poll (``time.process_time`` of this process), and the ratio is CPU ÷ anchor CPU. The
simulator's CPU per poll (from ``psutil``) is printed to show where the wall time goes.

Run: ``.venv/bin/python -m bench.snmp_poll [--quick]``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psutil
from gufo.snmp import SnmpVersion
from gufo.snmp.aio import SnmpSession
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    bulk_walk_cmd,
)

from agent.config import TargetConfig
from agent.probes.base import Observation
from agent.probes.snmp import IF_ADMIN_STATUS, IF_NAME, IF_OPER_STATUS, SnmpProbe
from agent.snmp_client import SnmpClient, SnmpValue
from bench._common import Deadline, Row, emit, median, parse_args, spread
from checks.catalogue import load_catalogue
from checks.status import Status
from tests.support.snmpsim import SnmpSim, recordings_dir

RECORDING = "vrp_5720-32x-ei"
#: What the recording holds (see shared/fixtures/snmprec/SOURCES.md): a wrong answer would
#: make a fast poll look good, so every poll is checked against these.
INTERFACES = 51
SERIAL = "2102359579DMHC000288"
COLUMNS = (IF_OPER_STATUS, IF_ADMIN_STATUS, IF_NAME)
MAX_REPETITIONS = 25  # SnmpConfig's default, used by fieldmon's walks
TIMEOUT = 2.0


@dataclass(slots=True)
class PollShape:
    """What one poll asks the device for."""

    gets: int = 0
    get_oids: int = 0
    walks: int = 0
    rows: int = 0

    @property
    def varbinds(self) -> int:
        return self.get_oids + self.rows


#: The anchor's shape: three columns of the 51-interface table.
ANCHOR_SHAPE = PollShape(walks=len(COLUMNS), rows=len(COLUMNS) * INTERFACES)


@dataclass(slots=True)
class Samples:
    """Per-poll client CPU, wall time and simulator CPU of one kind of poll."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    @property
    def server_mean(self) -> float:
        """The simulator's CPU per poll: a mean, because ``psutil`` counts in 10 ms ticks."""
        return sum(self.server_cpu) / len(self.server_cpu)

    def row(self, anchor: Samples | None = None) -> str:
        ratio = f"   CPU ratio {median(self.cpu) / median(anchor.cpu):.2f}" if anchor else ""
        return (
            f"{self.name:<34} client CPU {median(self.cpu) * 1e3:6.1f} ms/poll   "
            f"wall {median(self.wall) * 1e3:6.1f} ms   snmpsim CPU "
            f"{self.server_mean * 1e3:6.1f} ms{ratio}"
        )


class Pollers:
    """The four kinds of poll, each an ``async () -> None`` that checks its own answer."""

    def __init__(self, sim: SnmpSim, target: TargetConfig) -> None:
        self.sim = sim
        self.target = target
        # What the agent's scheduler hands the SNMP probe: the class's items whose method is
        # "snmp" (ssh and trap items go to other probes); "scheduled" drops inspection-only.
        items = [i for i in load_catalogue()["snmp-device"].items if i.method == "snmp"]
        self.full = frozenset(i.id for i in items)
        self.scheduled = frozenset(i.id for i in items if i.interval is not None)
        #: Checks the probe answered UNKNOWN in the last full poll (shown, not fatal).
        self.unknown: list[str] = []
        self.probe = SnmpProbe()
        assert target.address is not None and target.snmp is not None
        self.client = SnmpClient(target.address, target.snmp)
        self._pysnmp: tuple[SnmpEngine, CommunityData, UdpTransportTarget] | None = None
        self._gufo: SnmpSession | None = None

    async def open(self) -> None:
        """One pysnmp SnmpEngine for this event loop, one transport; one gufo session."""
        transport = await UdpTransportTarget.create(
            (self.sim.host, self.sim.port), timeout=TIMEOUT, retries=0
        )
        self._pysnmp = (SnmpEngine(), CommunityData(RECORDING, mpModel=1), transport)
        self._gufo = SnmpSession(
            addr=self.sim.host,
            port=self.sim.port,
            community=RECORDING,
            version=SnmpVersion.v2c,
            timeout=TIMEOUT,
            max_repetitions=MAX_REPETITIONS,
        )

    async def close(self) -> None:
        await self.probe.close()
        await self.client.close()
        if self._pysnmp is not None:
            self._pysnmp[0].close_dispatcher()

    @staticmethod
    def _check_answer(obs: Sequence[Observation]) -> dict[str, Observation]:
        """The facts of the recording every poll must have read (a poll that timed out or
        misread the device must not pass for a fast one)."""
        by_check = {o.check: o for o in obs}
        assert by_check["snmp.reachable"].value == "up", by_check["snmp.reachable"]
        ports = [o for o in obs if o.check == "if.oper_status"]
        assert len(ports) == INTERFACES and all(o.status is None for o in ports), ports[:3]
        return by_check

    async def fieldmon_full(self) -> None:
        obs = await self.probe.collect(self.target, self.full)
        by_check = self._check_answer(obs)
        assert by_check["inventory.entity"].value == SERIAL, by_check["inventory.entity"]
        self.unknown = sorted({o.check for o in obs if o.status == Status.UNKNOWN})

    async def fieldmon_scheduled(self) -> None:
        self._check_answer(await self.probe.collect(self.target, self.scheduled))

    async def pysnmp_walks(self) -> None:
        assert self._pysnmp is not None
        engine, auth, transport = self._pysnmp
        for column in COLUMNS:
            rows = 0
            async for error, status, _, var_binds in bulk_walk_cmd(
                engine,
                auth,
                transport,
                ContextData(),
                0,
                MAX_REPETITIONS,
                ObjectType(ObjectIdentity(column)),
                lexicographicMode=False,
                lookupMib=False,
            ):
                assert not error and not status, (column, error, status)
                rows += len(var_binds)
            assert rows == INTERFACES, (column, rows)

    async def client_walks(self) -> None:
        """The same three walks through fieldmon's own client layer, without the probe."""
        for column in COLUMNS:
            rows = await self.client.walk(column)
            assert len(rows) == INTERFACES, (column, len(rows))

    async def gufo_walks(self) -> None:
        assert self._gufo is not None
        for column in COLUMNS:
            prefix = column + "."
            rows = 0
            async for oid, _ in self._gufo.getbulk(column, MAX_REPETITIONS):
                if not oid.lstrip(".").startswith(prefix):
                    break
                rows += 1
            assert rows == INTERFACES, (column, rows)

    async def full_poll_shape(self) -> PollShape:
        """A diagnostic full poll recording what fieldmon asks the device for, by wrapping
        its client's ``get_many`` and ``walk`` on this one instance (not timed)."""
        await self.fieldmon_full()  # makes sure the client exists
        _, client = self.probe._clients[self.target.name]
        get_many, walk = client.get_many, client.walk
        shape = PollShape()

        async def counting_get(oids: Iterable[str]) -> dict[str, SnmpValue]:
            wanted = list(oids)
            shape.gets += 1
            shape.get_oids += len(wanted)
            return await get_many(wanted)

        async def counting_walk(oid: str) -> list[tuple[str, SnmpValue]]:
            rows = await walk(oid)
            shape.walks += 1
            shape.rows += len(rows)
            return rows

        client.get_many = counting_get  # type: ignore[method-assign]
        client.walk = counting_walk  # type: ignore[method-assign]
        try:
            await self.fieldmon_full()
        finally:
            del client.get_many, client.walk  # back to the class's methods
        return shape


async def run(sim: SnmpSim, max_rounds: int, min_rounds: int, deadline: Deadline) -> int:
    target = sim.target(RECORDING, retries=0, timeout=TIMEOUT)
    pollers = Pollers(sim, target)
    n_full, n_sched = len(pollers.full), len(pollers.scheduled)
    server = psutil.Process(sim.pid)
    await pollers.open()
    kinds: list[tuple[Samples, Callable[[], Awaitable[None]]]] = [
        (Samples("anchor: pysnmp 3 interface walks"), pollers.pysnmp_walks),
        (Samples(f"fieldmon full poll ({n_full} checks)"), pollers.fieldmon_full),
        (Samples(f"fieldmon scheduled poll ({n_sched} checks)"), pollers.fieldmon_scheduled),
        (Samples("reference: SnmpClient 3 walks"), pollers.client_walks),
        (Samples("reference: raw gufo-snmp 3 walks"), pollers.gufo_walks),
    ]
    try:
        # Warm-up: imports, pysnmp's engine and MIB objects, gufo sessions, first answers.
        for _, poll in kinds:
            await poll()
            await poll()
        shape = await pollers.full_poll_shape()
        rounds = 0
        last_round = 0.0
        while rounds < max_rounds:
            if rounds >= min_rounds and not deadline.allows(last_round):
                break
            started = time.perf_counter()
            shift = rounds % len(kinds)  # rotate the order so drift hits every kind alike
            for samples, poll in kinds[shift:] + kinds[:shift]:
                server_before = sum(server.cpu_times()[:2])
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await poll()
                cpu1, wall1 = time.process_time(), time.perf_counter()
                samples.cpu.append(cpu1 - cpu0)
                samples.wall.append(wall1 - wall0)
                samples.server_cpu.append(sum(server.cpu_times()[:2]) - server_before)
            rounds += 1
            last_round = time.perf_counter() - started
    finally:
        await pollers.close()

    anchor, full, scheduled, client, gufo = (s for s, _ in kinds)
    print(
        f"rounds: {rounds} (each: one poll of every kind, order rotating); "
        f"{deadline.elapsed():.1f} s"
    )
    print(anchor.row())
    for s in (full, scheduled, client, gufo):
        print(s.row(anchor))
    ratio = median(full.cpu) / median(anchor.cpu)
    per_round = [f / a for f, a in zip(full.cpu, anchor.cpu, strict=True)]
    sched_ratio = median(scheduled.cpu) / median(anchor.cpu)
    print(
        f"  RATIO fieldmon full poll ÷ anchor, client CPU per poll: {ratio:.2f} "
        f"(per round {spread(per_round)}); scheduled poll ÷ anchor: {sched_ratio:.2f}"
    )
    print(
        f"  a full poll is {shape.gets} GET of {shape.get_oids} OIDs + {shape.walks} walks of "
        f"{shape.rows} rows = {shape.varbinds} varbinds, the anchor {ANCHOR_SHAPE.walks} walks "
        f"= {ANCHOR_SHAPE.varbinds} varbinds; client CPU per varbind: fieldmon "
        f"{median(full.cpu) / shape.varbinds * 1e6:.0f} µs, pysnmp "
        f"{median(anchor.cpu) / ANCHOR_SHAPE.varbinds * 1e6:.0f} µs"
    )
    if pollers.unknown:
        print(f"  checks the probe answered UNKNOWN on this device: {', '.join(pollers.unknown)}")
    share = full.server_mean / median(full.wall)
    print(
        f"  wall time is mostly the simulator: snmpsim CPU is {share:.0%} of a full poll's "
        f"wall time, the client's {median(full.cpu) / median(full.wall):.0%}"
    )
    emit(
        [
            Row(
                benchmark="snmp_poll",
                what=(
                    f"agent `SnmpProbe.collect`, all {n_full} SNMP checks of snmp-device on a "
                    f"{INTERFACES}-port switch (snmpsim, v2c, loopback); client CPU per poll"
                ),
                anchor=(
                    "pysnmp 7 `bulk_walk_cmd` of ifOperStatus + ifAdminStatus + ifName "
                    "(3 walks, lookupMib=False)"
                ),
                ratio=ratio,
                figures=(
                    f"{median(full.cpu) * 1e3:.1f} vs {median(anchor.cpu) * 1e3:.1f} ms CPU/poll "
                    f"({shape.varbinds} vs {ANCHOR_SHAPE.varbinds} varbinds); "
                    f"wall {median(full.wall) * 1e3:.0f} vs {median(anchor.wall) * 1e3:.0f} ms "
                    "(snmpsim-bound)"
                ),
                extra={
                    "fieldmon_cpu_ms": median(full.cpu) * 1e3,
                    "anchor_cpu_ms": median(anchor.cpu) * 1e3,
                    "fieldmon_wall_ms": median(full.wall) * 1e3,
                    "anchor_wall_ms": median(anchor.wall) * 1e3,
                    "varbinds": float(shape.varbinds),
                    "rounds": float(rounds),
                },
            ),
            Row(
                benchmark="snmp_poll, scheduled",
                what=(
                    f"the {n_sched} periodic checks only ({', '.join(sorted(pollers.scheduled))})"
                    ", without the inspection-only inventory"
                ),
                anchor="same pysnmp anchor",
                ratio=sched_ratio,
                figures=(
                    f"{median(scheduled.cpu) * 1e3:.1f} vs {median(anchor.cpu) * 1e3:.1f} ms "
                    f"CPU/poll; the 3 walks alone: {median(client.cpu) * 1e3:.1f} ms via "
                    f"fieldmon's SnmpClient, {median(gufo.cpu) * 1e3:.1f} ms on raw gufo-snmp"
                ),
                extra={
                    "fieldmon_cpu_ms": median(scheduled.cpu) * 1e3,
                    "client_walks_cpu_ms": median(client.cpu) * 1e3,
                    "gufo_cpu_ms": median(gufo.cpu) * 1e3,
                },
            ),
        ]
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "snmp_poll", argv)
    max_rounds, min_rounds = (30, 3) if args.quick else (200, 5)
    deadline = Deadline(args.budget)
    sim = SnmpSim([recordings_dir() / f"{RECORDING}.snmprec"])
    try:
        sim.start()
        print(
            f"snmp_poll: snmpsim serving {RECORDING} on {sim.host}:{sim.port} "
            f"(started in {deadline.elapsed():.1f} s); up to {max_rounds} rounds, "
            f"budget {args.budget:g} s"
        )
        return asyncio.run(run(sim, max_rounds, min_rounds, deadline))
    finally:
        sim.close()


if __name__ == "__main__":
    sys.exit(main())
