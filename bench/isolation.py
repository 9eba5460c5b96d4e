"""Dead-device isolation: the poll rate of 200 answering SNMP targets with and without 20 more
targets that never answer.

Why: at a customer site some cameras are always off; the agent issue's goal is that devices
that do not answer cost the ones that do almost nothing: the answering targets' poll rate
with 10 % dead targets at least 0.9 × the rate with all answering.

Set-up: one net-snmp ``snmpd`` on a free loopback UDP port; 200 targets (``snmp-device``,
v2c, ``timeout`` 1 s, ``retries`` 1) all pointing at it, each its own ``SnmpClient`` inside
one ``agent.probes.snmp.SnmpProbe``, as the agent keeps them. The 20 dead targets point at
UDP sockets this script binds and reads from without ever answering (a closed loopback port
would answer ICMP port-unreachable at once, which is not a silent device).

Each target is polled as the agent's scheduler does (``agent.scheduler.collect_once``: the
probe under the collection deadline, then ``to_results``), one task per target, with the
periodic SNMP checks of ``snmp-device`` (snmp.reachable, snmp.uptime, if.oper_status), back
to back for one window. "All answering" (200 targets) and "10 % dead" (200 + 20) windows
alternate; the answering targets must all report reachable, the dead ones unreachable. The
figure is the answering targets' polls completed within the window per second (polls still
running at its end are let finish, uncounted, before the next window); the ratio is
all-answering rate ÷ with-dead rate (1 = dead targets cost nothing, higher is worse). The
answering targets' per-poll latency is printed too.

Noise: the rates follow the machine's other load from one second to the next, so the two
windows of a round are compared with each other (their order alternating round by round) and
the headline is the median of those per-round ratios over as many rounds as the budget allows
(windows of 3 s; the full run stays within its 50 s budget plus one round), rather than a ratio
of two medians taken over different seconds.

Run: ``.venv/bin/python -m bench.isolation [--quick]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from agent.config import TargetConfig
from agent.probes.snmp import SnmpProbe
from agent.scheduler import collect_once
from bench._common import Deadline, Row, emit, median, parse_args, spread
from bench._services import COMMUNITY, HOST, BlackHole, Snmpd
from checks.catalogue import DeviceClass, load_catalogue

ANSWERING = 200
DEAD = 20
TIMEOUT = 1.0
RETRIES = 1
CHECKS = frozenset({"snmp.reachable", "snmp.uptime", "if.oper_status"})


def target(name: str, port: int) -> TargetConfig:
    return TargetConfig.from_dict(
        {
            "name": name,
            "class": "snmp-device",
            "address": HOST,
            "snmp": {"port": port, "community": COMMUNITY, "timeout": TIMEOUT, "retries": RETRIES},
        }
    )


@dataclass(slots=True)
class Mode:
    name: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    dead_polls: int = 0
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)


async def window(
    probe: SnmpProbe,
    dc: DeviceClass,
    live: list[TargetConfig],
    dead: list[TargetConfig],
    seconds: float,
    mode: Mode,
    server: psutil.Process,
) -> None:
    """Every target polled back to back (one task each) for ``seconds``."""
    done = 0
    cpu0, srv0 = time.process_time(), sum(server.cpu_times()[:2])
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def loop(t: TargetConfig, answering: bool) -> None:
        nonlocal done
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            results = await collect_once(probe, t, dc, set(CHECKS))
            reach = next(r for r in results if r.check == "snmp.reachable")
            if answering:
                assert reach.value == "up", (t.name, reach.summary)
                t1 = time.perf_counter()
                if t1 <= end:  # polls that end after the window are not counted
                    latencies.append(t1 - t0)
                    done += 1
            else:
                assert reach.value == "down", (t.name, reach.summary)
                mode.dead_polls += 1

    live_tasks = [asyncio.create_task(loop(t, True)) for t in live]
    dead_tasks = [asyncio.create_task(loop(t, False)) for t in dead]
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    cpu1, srv1 = time.process_time(), sum(server.cpu_times()[:2])
    mode.cpu.append((cpu1 - cpu0) / done)
    mode.server_cpu.append((srv1 - srv0) / done)
    mode.rates.append(done / seconds)
    # The last polls (and the dead targets' last timeouts) finish before the next window.
    await asyncio.gather(*live_tasks, *dead_tasks)
    mode.latencies += latencies


async def run(snmpd: Snmpd, seconds: float, max_rounds: int, deadline: Deadline) -> int:
    loop = asyncio.get_running_loop()
    holes = [BlackHole() for _ in range(DEAD)]
    for h in holes:
        loop.add_reader(h.sock.fileno(), h.readable)
    dc = load_catalogue()["snmp-device"]
    live = [target(f"cam-{i:03d}", snmpd.port) for i in range(ANSWERING)]
    dead = [target(f"dead-{i:02d}", h.port) for i, h in enumerate(holes)]
    probe = SnmpProbe()
    server = psutil.Process(snmpd.pid)
    healthy, degraded = Mode("all 200 answering"), Mode("200 answering + 20 dead")
    try:
        # Warm-up: clients and sessions open, every target answers once.
        await asyncio.gather(*(collect_once(probe, t, dc, set(CHECKS)) for t in live))
        rounds = 0
        last_round = 0.0
        while rounds < max_rounds:
            if rounds >= 2 and not deadline.allows(last_round):
                break
            started = time.perf_counter()
            order = [(healthy, []), (degraded, dead)]
            if rounds % 2:
                order.reverse()
            for mode, dead_now in order:
                await window(probe, dc, live, dead_now, seconds, mode, server)
            rounds += 1
            last_round = time.perf_counter() - started
    finally:
        await probe.close()
        for h in holes:
            loop.remove_reader(h.sock.fileno())
            h.close()
    dropped = sum(h.dropped for h in holes)
    assert degraded.dead_polls > 0 and dropped > 0, (degraded.dead_polls, dropped)
    print(
        f"rounds: {rounds} (each: one window of each mode, order alternating); "
        f"{deadline.elapsed():.1f} s; dead targets: {degraded.dead_polls} polls, "
        f"{dropped} requests swallowed"
    )
    for m in (healthy, degraded):
        lat = sorted(m.latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))]
        print(
            f"  {m.name:<26} {median(m.rates):6.0f} answering polls/s (rounds "
            f"{min(m.rates):.0f}–{max(m.rates):.0f}); poll latency median "
            f"{statistics.median(lat) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms; CPU per answering "
            f"poll: agent {median(m.cpu) * 1e3:.2f} ms, snmpd {median(m.server_cpu) * 1e3:.2f} ms"
        )
    # Paired per round (the two windows of a round are seconds apart, so a neighbour's load
    # touches both alike); the median of those ratios is the headline.
    per_round = [d / h for h, d in zip(healthy.rates, degraded.rates, strict=True)]
    ratio = 1 / median(per_round)
    print(
        f"  RATIO with-dead rate ÷ all-answering rate: {1 / ratio:.2f} (median of per-round "
        f"ratios; rounds {spread(per_round)}; ratio of medians "
        f"{median(degraded.rates) / median(healthy.rates):.2f}; goal ≥ 0.9)"
    )
    emit(
        [
            Row(
                benchmark="isolation",
                what=(
                    f"answering targets' polls/s: {ANSWERING} SNMP targets (SnmpProbe via "
                    f"collect_once, one task each, timeout {TIMEOUT:g} s, retries {RETRIES}) "
                    f"plus {DEAD} that never answer"
                ),
                anchor=f"the same {ANSWERING} targets with none dead, same run",
                ratio=ratio,
                figures=(
                    f"{median(degraded.rates):.0f} vs {median(healthy.rates):.0f} polls/s "
                    f"(with-dead ÷ all-answering {1 / ratio:.2f}, goal ≥ 0.9)"
                ),
                extra={
                    "with_dead_rate": median(degraded.rates),
                    "all_answering_rate": median(healthy.rates),
                    "rounds": float(rounds),
                },
            )
        ]
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "isolation", argv)
    seconds, max_rounds = (2.5, 2) if args.quick else (3.0, 12)
    deadline = Deadline(args.budget)
    snmpd = Snmpd()
    try:
        snmpd.start()
        print(
            f"isolation: snmpd on udp {snmpd.host}:{snmpd.port}; {ANSWERING} answering + "
            f"{DEAD} silent targets; windows of {seconds:g} s, budget {args.budget:g} s"
        )
        return asyncio.run(run(snmpd, seconds, max_rounds, deadline))
    finally:
        snmpd.close()


if __name__ == "__main__":
    sys.exit(main())
