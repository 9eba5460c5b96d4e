"""Results per second of one collector against two collectors sharing the work, on the same
Mosquitto (MQTT shared subscription) and the same PostgreSQL.

Why a pre-loaded stream: the question is how much a second collector adds, not how fast a
publisher is. Each round starts its collectors, waits until they are subscribed, freezes them
(SIGSTOP), publishes the whole stream from many agents into the broker, then thaws them
(SIGCONT) and times until PostgreSQL holds every result. While the clock runs only the
broker, PostgreSQL and the collectors use the machine; the publisher has finished.

Why a fresh broker per round: a collector's session is persistent (clean session off), and
a session left behind by the previous round would stay a member of the shared group and be
handed its share of the next round's messages. PostgreSQL is one server of the benchmark's
own (``tests/support/postgres.py``; ``fsync=off`` like the tests unless ``--fsync``, see
:class:`BenchPostgres`) and one database for the whole run: after a warm-up that creates
every target's rows, rounds of one and two collectors alternate so that both see the same
database size. Each round prints the cores each component kept busy (psutil CPU times).

The ratio reported in the ``BENCH-RESULT`` row is rate(1) ÷ rate(2), a cost ratio like the
other benchmarks (lower is better; 0.5 would be perfect scaling); the scaling itself,
rate(2) ÷ rate(1), is printed and kept in ``extra`` (the operations issue's goal: ≥ 1.6).
On a two-core machine the ceiling is the machine, see bench/README.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench._common import Deadline, Row, emit, median, parse_args, spread
from checks.topics import topic
from checks.wire import encode_batch
from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.postgres import OwnPostgres, _bin
from tests.support.procs import Proc, http_json, wait_for

SITE = "s1"
AGENTS = 20
TARGETS_PER_AGENT = 50
CHECKS = ("snmp.reachable", "cpu.usage", "mem.usage", "snmp.uptime", "clock.drift")
#: Results per MQTT message: one agent's collection cycle over its 50 targets' 5 checks.
BATCH = TARGETS_PER_AGENT * len(CHECKS)


class BenchPostgres(OwnPostgres):
    """:class:`OwnPostgres`, optionally with ``fsync`` left on (``--fsync``).

    The default is the tests' setting (``fsync=off``): the question is whether a second
    collector adds CPU to the work, and on the shared development machine a commit's flush
    waits behind other jobs' disk traffic, which leaves every process idle and measures the
    disk instead. ``--fsync`` measures what a production server (fsync on) does on this disk.
    """

    def __init__(self, fsync: bool) -> None:
        super().__init__()
        self.fsync = fsync

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        opts += "" if self.fsync else " -c fsync=off"
        log = str(self.dir / "server.log")
        self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", opts, "-w", *args)


def stream(cycles: int, first_cycle: int, seed: int) -> list[tuple[str, bytes]]:
    """``cycles`` collection cycles of every agent: (topic, payload), agents interleaved as
    they would be on a broker. About one result in twenty fails, so incidents open and close;
    timestamps follow the cycle number so that later rounds move state forward."""
    rng = random.Random(seed)
    # Recent enough that no SLA clock has run out: the sweep has nothing to escalate.
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    out: list[tuple[str, bytes]] = []
    for cycle in range(first_cycle, first_cycle + cycles):
        at = (t0 + timedelta(seconds=cycle)).isoformat().replace("+00:00", "Z")
        for a in range(AGENTS):
            agent = f"a{a:02d}"
            rows: list[dict[str, Any]] = []
            for t in range(TARGETS_PER_AGENT):
                for k, check in enumerate(CHECKS):
                    failing = rng.random() < 0.05
                    rows.append(
                        {
                            "msg_id": f"c{cycle:05d}-{agent}-{t:03d}-{k}",
                            "target": f"{agent}-t{t:03d}",
                            "class": "camera",
                            "check": check,
                            "status": "CRIT" if failing else "OK",
                            "value": "down" if failing else 1.0,
                            "observed_at": at,
                        }
                    )
            out.append((topic(SITE, agent, "results"), encode_batch(SITE, agent, rows)))
    return out


def publish(port: int, messages: Sequence[tuple[str, bytes]]) -> None:
    """QoS 1, waits for every PUBACK from the broker (the broker has them all then)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(120)
        if not all(i.is_published() for i in infos):
            raise RuntimeError("the broker did not acknowledge every message")
    finally:
        client.disconnect()
        client.loop_stop()


def count(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as db:
        row = db.execute("SELECT count(*) FROM received").fetchone()
    return int(row[0]) if row else 0


def collector_config(folder: Path, broker_port: int, db_url: str, name: str) -> tuple[Path, int]:
    """The tests' collector config, pointed at PostgreSQL, in the shared group, quiet."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg, http_port = collector_toml(
        folder,
        broker_port,
        client_id=f"bench-{name}",
        extra="[incidents]\nstale_intervals = 100\n",
        log_level="WARNING",
    )
    text = cfg.read_text()
    text = text.replace(f'url = "sqlite:///{folder}/collector.db"', f'url = "{db_url}"')
    cfg.write_text(text.replace("max_backoff = 2\n", "max_backoff = 2\nshared = true\n"))
    return cfg, http_port


def subscribed(health_url: str) -> bool:
    return bool(http_json(health_url)["broker"])


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of processes (PostgreSQL: the postmaster and
    every backend), so that a round can say where the machine's time went."""
    out: dict[str, float] = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                family = [proc, *proc.children(recursive=True)] if name == "postgres" else [proc]
                for p in family:
                    with contextlib.suppress(psutil.Error):
                        t = p.cpu_times()
                        total += t.user + t.system
        out[name] = total
    return out


def one_round(
    tmp: Path,
    pg: OwnPostgres,
    db_url: str,
    n_collectors: int,
    messages: Sequence[tuple[str, bytes]],
    warm_up: Sequence[tuple[str, bytes]] = (),
) -> tuple[float, dict[str, float]]:
    """Seconds for ``n_collectors`` to store ``messages`` already waiting in the broker, and
    the CPU each component used meanwhile, in cores (CPU seconds ÷ wall seconds).
    ``warm_up`` is published and stored first, untimed (it creates every target's rows)."""
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    broker = Broker()
    broker.start()
    procs: list[Proc] = []
    try:
        for i in range(n_collectors):
            folder = tmp / f"round-{time.monotonic_ns()}-c{i}"
            cfg, http_port = collector_config(folder, broker.port, db_url, f"c{i}")
            procs.append(Proc(["collector", "run", "--config", str(cfg)], folder / "log"))
            up = functools.partial(subscribed, f"http://127.0.0.1:{http_port}/healthz")
            wait_for(up, 60, what=f"collector {i} subscribed")
        time.sleep(0.5)  # the SUBSCRIBE is acknowledged before /healthz says so; margin
        if warm_up:
            goal = count(dsn) + len(warm_up) * BATCH
            publish(broker.port, warm_up)
            wait_for(lambda: count(dsn) >= goal, 180, interval=0.1, what="warm-up stored")
        for p in procs:
            os.kill(p.proc.pid, signal.SIGSTOP)
        try:
            before = count(dsn)
            publish(broker.port, messages)
        finally:
            for p in procs:
                os.kill(p.proc.pid, signal.SIGCONT)
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        assert broker.proc is not None
        groups = {
            "collectors": [p.proc.pid for p in procs],
            "postgres": [postmaster],
            "mosquitto": [broker.proc.pid],
        }
        cpu0 = cpu_seconds(groups)
        started = time.perf_counter()
        goal = before + len(messages) * BATCH
        wait_for(lambda: count(dsn) >= goal, 180, interval=0.05, what="every result stored")
        took = time.perf_counter() - started
        cpu1 = cpu_seconds(groups)
        cores = {k: (cpu1[k] - cpu0[k]) / took for k in groups}
        stored = count(dsn)
        if stored != goal:
            raise AssertionError(f"{stored - before} results stored, expected {goal - before}")
        return took, cores
    finally:
        codes = [p.stop() for p in procs]
        broker.cleanup()
        for p, code in zip(procs, codes, strict=True):
            check_log(p.output(), code)


#: Logged and retried by the collector, so not a failure of the run, but counted: the SLA
#: sweep of one collector and the ingest of the other can lock the same incident rows in
#: opposite orders, and PostgreSQL then aborts one of the two transactions.
DEADLOCKS: list[str] = []


def check_log(text: str, code: int) -> None:
    """Fails the run on a collector's non-zero exit or unexpected traceback."""
    unexpected = [
        chunk
        for chunk in text.split("Traceback (most recent call last):")[1:]
        if "DeadlockDetected" not in chunk
    ]
    DEADLOCKS.extend(line for line in text.splitlines() if "failed" in line and "ERROR" in line)
    if code != 0 or unexpected:
        print(text[-3000:], file=sys.stderr)
        raise RuntimeError(f"a collector exited with {code} or logged an unexpected traceback")


def projection(us: dict[str, list[float]], collectors: int) -> float:
    """Results/s the stream would reach if the machine were ours alone, from the CPU per
    result this run measured (which the neighbours do not change).

    A collector stores one batch at a time and waits for PostgreSQL to finish it
    (``collector/mqtt_source.py``), so one collector's own code and the PostgreSQL work it
    asks for run one after the other: at most one core's worth per collector. Several
    collectors overlap, up to the machine's cores shared by every process."""
    c, p = median(us["collectors"]), median(us["postgres"])
    total = sum(median(v) for v in us.values())
    cores = os.cpu_count() or 1
    return min(collectors * 1e6 / (c + p), cores * 1e6 / total)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fsync = "--fsync" in argv
    if fsync:
        argv.remove("--fsync")
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    if not args.quick and "--budget" not in argv:
        # A pair of rounds takes about 30 s with its four collector start-ups: 90 s gives the
        # full run three pairs, inside run_all's 150 s hard limit.
        args.budget = 90.0
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    # run_all stops an overrunning benchmark with SIGTERM first: clean up the PostgreSQL
    # server, broker and collectors this process started rather than orphaning them.
    signal.signal(signal.SIGTERM, _terminate)
    deadline = Deadline(args.budget)
    # 10,000 results per round (5,000 quick): short rounds, so that pairs can alternate
    cycles = 1 if args.quick else 2
    max_pairs = 1 if args.quick else 4
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-two-"))
    pg = BenchPostgres(fsync)
    rates: dict[int, list[float]] = {1: [], 2: []}
    cpu_us: dict[int, dict[str, list[float]]] = {1: {}, 2: {}}
    try:
        pg.start()
        db_url = pg.create_db("fieldmon")
        # The first round starts with an untimed warm-up: it creates every target's rows.
        warm_up = stream(1, 0, seed=1)
        next_cycle, pairs, last_pair = 1, 0, 0.0
        while pairs < max_pairs and (pairs == 0 or deadline.allows(last_pair * 1.2)):
            began = time.monotonic()
            # Alternate which goes first, so a drift in machine load or database size does
            # not always favour the same side.
            order = (1, 2) if pairs % 2 == 0 else (2, 1)
            for n in order:
                msgs = stream(cycles, next_cycle, seed=100 + next_cycle)
                next_cycle += cycles
                took, cores = one_round(tmp, pg, db_url, n, msgs, warm_up)
                warm_up = []
                rate = len(msgs) * BATCH / took
                rates[n].append(rate)
                busy = ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
                # CPU per result does not depend on how much of the machine the neighbours
                # left us: it says what the machine's cores could do if they were ours.
                per = {k: v * took / (len(msgs) * BATCH) * 1e6 for k, v in cores.items()}
                for k, v in per.items():
                    cpu_us[n].setdefault(k, []).append(v)
                print(
                    f"round {pairs + 1}, {n} collector(s): {rate:,.0f} results/s ({took:.2f} s;"
                    f" cores busy: {busy}; total {sum(cores.values()):.2f} of {os.cpu_count()};"
                    f" CPU per result: collectors {per['collectors']:.0f} µs, PostgreSQL"
                    f" {per['postgres']:.0f} µs, Mosquitto {per['mosquitto']:.0f} µs)",
                    flush=True,
                )
            pairs += 1
            last_pair = time.monotonic() - began
    finally:
        with contextlib.suppress(Exception):
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    one, two = median(rates[1]), median(rates[2])
    scaling = two / one
    per_round = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
    print(f"one collector:  {one:,.0f} results/s (rounds {spread(rates[1])})")
    print(f"two collectors: {two:,.0f} results/s (rounds {spread(rates[2])})")
    print(
        f"SCALING two ÷ one: {scaling:.2f} (per pair {spread(per_round)}; goal ≥ 1.6; "
        f"{os.cpu_count()} CPUs shared by Mosquitto, PostgreSQL and the collectors)"
    )
    projected = {n: projection(cpu_us[n], n) for n in (1, 2)}
    print(
        "CPU per result (µs, medians): "
        + "; ".join(
            f"{n} collector(s): " + ", ".join(f"{k} {median(v):.0f}" for k, v in cpu_us[n].items())
            for n in (1, 2)
        )
    )
    print(
        f"projected on an idle {os.cpu_count()}-core machine from CPU per result: one collector"
        f" {projected[1]:,.0f}, two {projected[2]:,.0f} results/s, scaling"
        f" {projected[2] / projected[1]:.2f}"
    )
    if DEADLOCKS:
        print(f"deadlocks logged and retried by the collectors: {len(DEADLOCKS)}, e.g.")
        print(f"  {DEADLOCKS[0][:200]}")
    load1, load5, _ = os.getloadavg()
    print(f"machine load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min)")
    emit(
        [
            Row(
                benchmark="two collectors",
                what="collector processes in one MQTT shared subscription, one PostgreSQL",
                anchor="the same stream through one collector",
                goal="two ÷ one ≥ 1.6 (ratio ≤ 0.63)",
                ratio=one / two,
                figures=(
                    f"2 collectors {two:,.0f} vs 1 collector {one:,.0f} results/s "
                    f"(scaling {scaling:.2f}{', fsync on' if fsync else ''})"
                ),
                extra={
                    "one_rate": one,
                    "two_rate": two,
                    "scaling": scaling,
                    "projected_scaling": projected[2] / projected[1],
                },
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
