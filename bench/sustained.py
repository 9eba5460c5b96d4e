"""Sustained run: 2,000 simulated SNMP devices polled by sixteen real agents for 30 minutes,
through a real Mosquitto into a real collector, watching memory, queues and missed polls.

Why: the other benchmarks time one path for a minute; a leak, a queue that grows a little
every cycle, or a scheduler that slowly falls behind only shows over a long run with every
process of the product running at once. The goals (issue "Proof under faults, load and
attack"): every process's RSS flat within 10 % after warm-up, at most 1 % of check intervals
missed, and no queue (agent outboxes, results waiting for the collector) that keeps growing.

Set-up, all on loopback: one ``snmpsim-command-responder`` (``tests/support/snmpsim.py``)
serving ``--devices`` copies of four small shared recordings (Axis and Vivotek cameras, a
Dahua NVR, an APC UPS; two interfaces each), one copy per device under its own community
(``dev-0000`` …), so every device is its own data file to snmpsim; a private Mosquitto;
``python -m fieldmon collector run`` on a temporary SQLite file; ``--agents`` processes of
``python -m fieldmon agent run`` (16; ``--quick`` 8), each polling its share of the devices
as ``snmp-device`` targets with every polled check (``snmp.reachable``, ``snmp.uptime``,
``if.oper_status``) on the same ``--interval``. The once-a-day inspection items (inventory,
default-community test) are disabled: they run once at an agent's start, and the run is
about the steady state.

Why these sizes: snmpsim is pure Python. Measured on the development machine, one scheduled
poll of these recordings (one GET and the interface walks, four to five requests) costs
snmpsim about 15 ms of CPU, so one snmpsim process tops out near 65 polls/s (~300
requests/s). 2,000 devices every 120 s is 16.7 polls/s, a quarter of that, and 67 results/s
for the collector, leaving the two cores room for the agents, the collector and the broker;
``--quick`` polls 400 devices every 30 s (13.3 polls/s) for three minutes. The run prints
snmpsim's measured CPU per poll and its busy share, so a reader can check that snmpsim was
not the bottleneck on their machine.

Bursts, not averages, are what overload the simulator: an agent polls all of its targets at
the same moment (each target's first poll at start, then every interval from there, with no
spreading), so each agent's devices reach snmpsim as one burst per interval. A first attempt
with 4 agents × 500 devices, all started together, sent snmpsim 2,000 polls at once (about
30 s of its CPU) and 1,655 devices timed out as unreachable. So the agents are started
interval ÷ agents apart (16 agents of 125 devices, 7.5 s apart: each burst about 2 s of
snmpsim CPU, and fewer queued requests than snmpsim's UDP receive buffer holds: with 100
per burst on a loaded machine the kernel's ``RcvbufErrors`` grew and polls timed out), and
the SNMP timeout is :data:`SNMP_TIMEOUT_S` so a request queued behind its own burst is not
taken for a dead device. Against real devices a burst is spread over as
many devices, each answering for itself.

Sampled every 10 s: RSS (psutil) of every process (agents, collector, broker, snmpsim), the
collector's ``fieldmon_ingest_results_total`` from ``/metrics``, each agent's outbox depth
(``SELECT count(*)`` on its SQLite file, read-only), and the results seen on the broker by a
bare subscriber in this process. Results waiting for the collector = seen − ingested.

Missed intervals: the bare subscriber records every ``snmp.reachable`` result's
``observed_at``; after warm-up, missed = (window ÷ interval × devices) − polls seen in the
window, share = missed ÷ expected. Counting per device and summing is deliberate: a gap rule
(a gap of about two intervals = one missed) was tried first and counted polls that were only
late (a poll's ``observed_at`` moves with how long it queued at snmpsim, so gaps of 0.3 to 2.3
intervals showed up with nothing skipped). Also printed: gaps over two intervals ("stalls")
and the 99th percentile gap, which show lateness.

Anchors: these are goals, not speed ratios, so each row's ratio is the figure ÷ its goal
(RSS growth ÷ 10 %, missed share ÷ 1 %); below 1 meets the goal.

Run: ``.venv/bin/python -m bench.sustained [--quick] [--minutes M] [--devices N]``
(default 30 minutes plus start-up; ``--quick`` about 3.5 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench._common import Row, emit
from checks.catalogue import load_catalogue
from tests.support.broker import Broker
from tests.support.configs import agent_toml, collector_toml
from tests.support.procs import Proc, metric_value, wait_for
from tests.support.snmpsim import SnmpSim, filtered_copy, recordings_dir

SITE = "s1"
#: Small recordings (two interfaces each): what most of a site's devices look like.
RECORDINGS = ("axiscam_p5676-le", "vivotek", "dahua-nvr", "apc_smtl1000-nmc3")
DEVICE_CLASS = "snmp-device"
#: Inspection-only items: run once at an agent's start, not part of the steady state.
DISABLED = ("inventory.system", "inventory.entity", "sec.snmp_default_community")
SAMPLE_S = 10.0
RSS_GOAL_PCT = 10.0
MISSED_GOAL_PCT = 1.0
#: Long enough for the last poll of one agent's burst to be answered by the one simulator.
SNMP_TIMEOUT_S = 10.0


@dataclass
class Seen:
    """What the bare subscriber saw on the broker (written by paho's thread)."""

    results: int = 0
    not_ok: int = 0
    polls: dict[str, list[float]] = field(default_factory=dict)
    down: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return
        rows = body.get("results", []) if isinstance(body, dict) else []
        with self.lock:
            self.results += len(rows)
            for row in rows:
                if row.get("check") == "snmp.reachable":
                    if row.get("status") != "OK":
                        self.not_ok += 1
                        self.down.setdefault(row["target"], []).append(
                            str(row.get("summary") or row.get("value"))
                        )
                    at = datetime.fromisoformat(row["observed_at"].replace("Z", "+00:00"))
                    self.polls.setdefault(row["target"], []).append(at.timestamp())


@dataclass
class Sample:
    at: float
    rss: dict[str, float]
    drops: int
    cpu: dict[str, float]
    ingested: float
    seen: int
    outbox: int


def polled_checks() -> list[str]:
    """The class's checks an agent polls on an interval over SNMP (not inspection, not event)."""
    dc = load_catalogue([])[DEVICE_CLASS]
    return [
        i.id
        for i in dc.items
        if i.method == "snmp" and i.interval is not None and i.id not in DISABLED
    ]


def targets_toml(names: Sequence[str], port: int, interval: int, checks: Sequence[str]) -> str:
    every = ", ".join(f'"{c}" = {interval}' for c in checks)
    disabled = ", ".join(f'"{c}"' for c in DISABLED)
    return "".join(
        f'\n[[targets]]\nname = "{n}"\nclass = "{DEVICE_CLASS}"\naddress = "127.0.0.1"\n'
        f"intervals = {{ {every} }}\ndisabled = [{disabled}]\n"
        f'[targets.snmp]\nport = {port}\ncommunity = "{n}"\n'
        f"timeout = {SNMP_TIMEOUT_S}\nretries = 1\n"
        for n in names
    )


def outbox_depth(path: Path) -> int:
    """Rows waiting in one agent's outbox, read without taking a write lock."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        db.close()


def ingested(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return metric_value(text, "fieldmon_ingest_results_total") or 0.0


@dataclass(frozen=True)
class Missed:
    """Polls seen against polls expected over a window, and how late the late ones were."""

    missed: float
    expected: float
    stalls: int
    gap_p99: float


def missed(
    polls: dict[str, list[float]], names: Sequence[str], t0: float, t1: float, interval: float
) -> Missed:
    """Missed polls over [t0, t1]: expected (window ÷ interval per device) minus seen, summed
    over the devices (a device's count at the window's edges is off by one either way, which
    cancels over many devices; per-gap rules do not, because a poll's ``observed_at`` moves
    with how long it waited for snmpsim). ``stalls``: gaps over two intervals."""
    seen, stalls = 0, 0
    gaps: list[float] = []
    for name in names:
        times = sorted(t for t in polls.get(name, []) if t0 <= t <= t1)
        seen += len(times)
        for a, b in itertools.pairwise(times):
            gaps.append(b - a)
            stalls += b - a > 2 * interval
    expected = len(names) * (t1 - t0) / interval
    gaps.sort()
    p99 = gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))] if gaps else float("nan")
    return Missed(max(0.0, expected - seen), expected, stalls, p99)


def udp_rcvbuf_errors() -> int:
    """The kernel's count of UDP datagrams dropped because a socket's receive buffer was full
    (all sockets of the host, so other work adds to it; growth during the run is the hint
    that snmpsim could not keep up with a burst)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return -1
    head, values = [ln for ln in lines if ln and ln[0] == "Udp:"][:2]
    return int(values[head.index("RcvbufErrors")])


def pct(a: float, b: float) -> float:
    return (b - a) / a * 100 if a else float("nan")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="400 devices, 3 minutes")
    parser.add_argument("--minutes", type=float, default=None, help="run length (30; quick 3)")
    parser.add_argument("--devices", type=int, default=None, help="devices (2000; quick 400)")
    parser.add_argument("--agents", type=int, default=None, help="agents (16; quick 8)")
    parser.add_argument("--interval", type=int, default=None, help="poll interval s (120; 30)")
    parser.add_argument("--dump", type=Path, default=None, help="poll times as JSON here")
    parser.add_argument("--budget", type=float, default=None, help="ignored (run_all compat)")
    args = parser.parse_args(argv)
    args.minutes = args.minutes or (3.0 if args.quick else 30.0)
    args.devices = args.devices or (400 if args.quick else 2000)
    args.interval = args.interval or (30 if args.quick else 120)
    args.agents = args.agents or (8 if args.quick else 16)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    run_s = args.minutes * 60
    # Warm-up: the agents' first polls, the collector creating every row, caches filling.
    warm_s = max(2 * args.interval, run_s / 6) if not args.quick else 60.0
    names = [f"dev-{i:04d}" for i in range(args.devices)]
    checks = polled_checks()
    tmp = Path(tempfile.mkdtemp(prefix="fieldmon-bench-sustained-"))
    src = tmp / "recordings"
    src.mkdir()
    for i, name in enumerate(names):
        filtered_copy(
            recordings_dir() / f"{RECORDINGS[i % len(RECORDINGS)]}.snmprec", src / f"{name}.snmprec"
        )
    print(
        f"sustained: {args.devices} devices ({', '.join(RECORDINGS)}), {args.agents} agents, "
        f"checks {', '.join(checks)} every {args.interval} s = "
        f"{args.devices / args.interval:.1f} polls/s offered; {args.minutes:g} min "
        f"({warm_s:.0f} s warm-up)",
        flush=True,
    )
    sim = SnmpSim(sorted(src.glob("*.snmprec")), workdir=tmp / "snmpsim", start_timeout=600)
    broker = Broker()
    collector: Proc | None = None
    agents: list[Proc] = []
    seen = Seen()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sustained-watch")
    sub.on_message = seen.on_message
    samples: list[Sample] = []
    try:
        started = time.monotonic()
        sim.start()
        print(f"snmpsim up in {time.monotonic() - started:.0f} s", flush=True)
        broker.start()
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(f"fieldmon/v1/{SITE}/+/results", qos=1)
        sub.loop_start()
        cfg, http_port = collector_toml(tmp, broker.port, log_level="WARNING")
        collector = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
        base = f"http://127.0.0.1:{http_port}"
        wait_for(lambda: ingested(base) == 0.0, 30, what="collector up")
        per = -(-len(names) // args.agents)
        outboxes: list[Path] = []
        stagger = args.interval / args.agents
        for k in range(args.agents):
            mine = names[k * per : (k + 1) * per]
            path = agent_toml(
                tmp,
                broker.port,
                targets_toml(mine, sim.port, args.interval, checks),
                agent=f"a{k}",
                extra='log_level = "WARNING"\n',
            )
            outboxes.append(tmp / f"agent-a{k}" / "outbox.sqlite")
            if k:
                time.sleep(stagger)  # each agent's burst in its own slice of the interval
            agents.append(Proc(["agent", "run", "--config", str(path)], tmp / f"agent-a{k}.log"))
        print(f"{args.agents} agents started {stagger:.1f} s apart", flush=True)
        procs: dict[str, psutil.Process] = {
            **{f"agent a{k}": psutil.Process(p.proc.pid) for k, p in enumerate(agents)},
            "collector": psutil.Process(collector.proc.pid),
            "mosquitto": psutil.Process(broker.proc.pid if broker.proc else 0),
            "snmpsim": psutil.Process(sim.pid or 0),
        }
        t_start = time.monotonic()
        wall_start = time.time()
        print(
            f"{'t s':>6} {'seen':>8} {'ingested':>9} {'lag':>6} {'outbox':>6}  RSS MiB", flush=True
        )
        while (now := time.monotonic()) - t_start < run_s:
            for name, p in procs.items():
                if not p.is_running():
                    raise RuntimeError(f"{name} exited during the run")
            with seen.lock:
                n_seen = seen.results
            s = Sample(
                at=now - t_start,
                rss={n: p.memory_info().rss / 2**20 for n, p in procs.items()},
                drops=udp_rcvbuf_errors(),
                cpu={n: sum(p.cpu_times()[:2]) for n, p in procs.items()},
                ingested=ingested(base),
                seen=n_seen,
                outbox=sum(outbox_depth(o) for o in outboxes),
            )
            samples.append(s)
            print(
                f"{s.at:6.0f} {s.seen:8d} {s.ingested:9.0f} {s.seen - s.ingested:6.0f} "
                f"{s.outbox:6d}  " + " ".join(f"{v:.0f}" for v in s.rss.values()),
                flush=True,
            )
            time.sleep(max(0.0, t_start + len(samples) * SAMPLE_S - time.monotonic()))
        wall_end = time.time()
    finally:
        for a in agents:
            a.stop()
        time.sleep(2.0)  # the agents' last publishes reach the watcher
        sub.loop_stop()
        sub.disconnect()
        if collector is not None:
            collector.stop()
        broker.cleanup()
        sim.close()
        logs = {p.log_path.name: p.output() for p in [*agents, *([collector] if collector else [])]}
        shutil.rmtree(tmp, ignore_errors=True)
    errors = {n: t for n, t in logs.items() if "Traceback" in t or " ERROR " in t}
    for n, t in errors.items():
        print(f"--- {n} (errors) ---\n" + "\n".join(t.splitlines()[-10:]))
    return report(args, samples, seen, names, wall_start + warm_s, wall_end, warm_s)


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    seen: Seen,
    names: list[str],
    t0: float,
    t1: float,
    warm_s: float,
) -> int:
    steady = [s for s in samples if s.at >= warm_s]
    if len(steady) < 3:
        print("sustained: too few samples after warm-up", file=sys.stderr)
        return 1
    first, last = steady[0], steady[-1]
    span = last.at - first.at
    print(f"\nafter warm-up ({len(steady)} samples over {span:.0f} s):")
    print(f"{'process':<12} {'RSS min':>8} {'RSS max':>8} {'growth':>8}  {'CPU %':>6}  goal")
    growth: dict[str, float] = {}
    for name in first.rss:
        values = [s.rss[name] for s in steady]
        head = statistics.mean(values[:3])
        tail = statistics.mean(values[-3:])
        growth[name] = pct(head, tail)
        cpu = (last.cpu[name] - first.cpu[name]) / span * 100
        ok = "ok" if abs(growth[name]) <= RSS_GOAL_PCT else "ABOVE"
        print(
            f"{name:<12} {min(values):8.1f} {max(values):8.1f} {growth[name]:+7.1f}%  "
            f"{cpu:6.1f}  flat within {RSS_GOAL_PCT:g}%: {ok}"
        )
    with seen.lock:
        polls = {k: list(v) for k, v in seen.polls.items()}
        not_ok = seen.not_ok
        down = {k: list(v) for k, v in seen.down.items()}
    window = missed(polls, names, t0, t1, args.interval)
    n_missed, expected = window.missed, window.expected
    for r, rec in enumerate(RECORDINGS):
        mine = names[r :: len(RECORDINGS)]
        part = missed(polls, mine, t0, t1, args.interval)
        n_down = sum(len(down.get(n, [])) for n in mine)
        print(
            f"  {rec:<20} missed {part.missed:.0f} of {part.expected:.0f}, "
            f"{part.stalls} gaps over two intervals; snmp.reachable not OK {n_down} times"
        )
    reasons = Counter(why for whys in down.values() for why in whys)
    for why, count in reasons.most_common(3):
        print(f"  not reachable ×{count}: {why[:150]}")
    if args.dump:
        args.dump.write_bytes(orjson.dumps({"t0": t0, "t1": t1, "polls": polls, "down": down}))
    missed_pct = n_missed / expected * 100 if expected else float("nan")
    rate = (last.ingested - first.ingested) / span
    offered = (last.seen - first.seen) / span
    lag0, lag1 = first.seen - first.ingested, last.seen - last.ingested
    max_lag = max(s.seen - s.ingested for s in steady)
    per_interval = max(1.0, offered * args.interval)
    sim_cpu = last.cpu["snmpsim"] - first.cpu["snmpsim"]
    sim_polls = sum(1 for v in polls.values() for t in v if t0 <= t <= t1)
    per_poll_ms = sim_cpu / sim_polls * 1e3 if sim_polls else float("nan")
    print(
        f"missed check intervals: {n_missed:.0f} of {expected:.0f} expected polls "
        f"({missed_pct:.2f} %, goal ≤ {MISSED_GOAL_PCT:g} %); snmp.reachable not OK "
        f"{not_ok} times in the whole run; {window.stalls} gaps over two intervals, "
        f"gap p99 {window.gap_p99:.1f} s (interval {args.interval} s)\n"
        f"collector ingest {rate:.1f} results/s of "
        f"{offered:.1f}/s published; "
        f"waiting for the collector {lag0:.0f} → {lag1:.0f} (max {max_lag:.0f}); agent "
        f"outboxes {first.outbox} → {last.outbox} (max {max(s.outbox for s in steady)})\n"
        f"snmpsim: {per_poll_ms:.1f} ms CPU per poll, busy "
        f"{sim_cpu / span * 100:.0f} % of one core (capacity ≈ "
        f"{1e3 / per_poll_ms if per_poll_ms else float('nan'):.0f} polls/s, offered "
        f"{args.devices / args.interval:.1f}); UDP receive-buffer drops on this host "
        f"{last.drops - first.drops}"
    )
    agents = {n: g for n, g in growth.items() if n.startswith("agent")}
    worst_agent = max(agents, key=lambda n: abs(agents[n]))
    size = f"{args.devices} devices / {args.agents} agents, every {args.interval} s"
    mins = f"{span / 60:.0f} min after warm-up"
    rows = [
        Row(
            benchmark="sustained",
            what=f"RSS growth of {label} after warm-up ({size}, {mins})",
            anchor="the goal (ratio = |growth| ÷ 10 %)",
            goal=f"flat within {RSS_GOAL_PCT:g} %",
            ratio=abs(growth[key]) / RSS_GOAL_PCT,
            figures=(
                f"{growth[key]:+.1f} %, "
                f"{min(s.rss[key] for s in steady):.0f}–{max(s.rss[key] for s in steady):.0f} MiB"
            ),
            extra={"growth_pct": growth[key]},
        )
        for label, key in (
            (f"the worst agent ({worst_agent})", worst_agent),
            ("the collector", "collector"),
            ("Mosquitto", "mosquitto"),
            ("snmpsim", "snmpsim"),
        )
    ]
    rows.append(
        Row(
            benchmark="sustained",
            what=f"missed check intervals ({size}, {mins})",
            anchor="the goal (ratio = share ÷ 1 %)",
            goal=f"≤ {MISSED_GOAL_PCT:g} % missed",
            ratio=missed_pct / MISSED_GOAL_PCT,
            figures=(
                f"{missed_pct:.2f} % ({n_missed:.0f} of {expected:.0f}), gap p99 "
                f"{window.gap_p99:.0f} s of {args.interval} s; ingest {rate:.0f}/s of "
                f"{offered:.0f}/s; snmpsim {sim_cpu / span * 100:.0f} % of a core"
            ),
            extra={
                "missed_pct": missed_pct,
                "ingest_rate": rate,
                "not_ok": float(not_ok),
                "stalls": float(window.stalls),
                "gap_p99_s": window.gap_p99,
            },
        )
    )
    rows.append(
        Row(
            benchmark="sustained",
            what="queue growth after warm-up: results waiting for the collector + agent outboxes",
            anchor="one interval's results (ratio = growth ÷ that)",
            goal="no growth",
            ratio=max(0.0, (lag1 + last.outbox) - (lag0 + first.outbox)) / per_interval,
            figures=(
                f"collector backlog {lag0:.0f} → {lag1:.0f} (max {max_lag:.0f}), outboxes "
                f"{first.outbox} → {last.outbox}"
            ),
            extra={"lag_start": lag0, "lag_end": lag1, "outbox_end": float(last.outbox)},
        )
    )
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
