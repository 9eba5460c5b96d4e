"""SNMP poll throughput: device-polls per second of fieldmon's agent path, against raw gufo-snmp
and Prometheus's snmp_exporter, at 1 and at 10 polls in flight.

Why: an agent on a customer host polls every switch, camera and UPS beside it; how many
interface polls per second it completes decides how many devices one agent can carry. The
agent issue's goals: fieldmon's path at least 0.8 × a bare gufo-snmp loop doing the same
walks, and ahead of snmp_exporter doing the same walks.

Device: net-snmp ``snmpd`` started here on a free loopback UDP port with its own minimal
configuration (``rocommunity public 127.0.0.1``), serving this host's real interfaces. One
"device-poll" is a five-column interface walk, each column walked to its end with GETBULK
(max-repetitions 25): ifDescr, ifAdminStatus, ifOperStatus (ifTable), ifHCInOctets,
ifHCOutOctets (ifXTable). Every poll is checked: each column has one row per interface.

Kinds, measured in the same run, the order rotating round by round:

* anchor: a bare gufo-snmp loop, one ``SnmpSession`` per worker, the five ``getbulk`` walks;
* fieldmon: what a poll does in the agent: the five walks through ``agent.snmp_client
  .SnmpClient`` (one client per worker, as the probe keeps one per device), the answers turned
  into ``Observation``s (one ``if.oper_status`` per interface, as ``SnmpProbe`` does, with the
  octet counters as facts), then into ``checks.result.Result``s by ``agent.evaluate.to_results``,
  and handed to the agent's own sink, ``agent.runner.OutboxSink``, over a real
  ``agent.outbox.Outbox`` file (results of one event-loop turn written in one SQLite
  transaction, WAL, ``synchronous=NORMAL``; the writes are included in the window's time and
  CPU). Between windows the rows are deleted (what the publisher does after PUBACK), so the
  outbox stays small;
* reference: the same without the outbox (walks + ``to_results`` only), to show where the
  time goes;
* snmp_exporter: Debian's ``prometheus-snmp-exporter`` (0.21) with a hand-written module
  (``walk`` of the five numeric OIDs, version 2, ``public``, max_repetitions 25, retries 0),
  scraped over HTTP (``/snmp?module=…&target=127.0.0.1:PORT``) by workers of this process.

"In flight" is the number of workers; each loops polls back to back for one window, and the
rate is completed polls ÷ window time. Client CPU per poll (this process) and the server-side
CPU (snmpd, snmp_exporter) are printed for context.

Noise: other processes on a small shared machine change the rates from one second to the
next, so windows are short (0.4 s) and many: a round is one window of every kind at each
concurrency, back to back, its order rotating; the headline ratio is the **median over
rounds of the per-round ratio** (fieldmon ÷ anchor from windows a few seconds apart), which a
neighbour's burst moves far less than a ratio of two medians taken over different seconds.

Run: ``.venv/bin/python -m bench.snmp_throughput [--quick]``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from gufo.snmp import SnmpVersion
from gufo.snmp.aio import SnmpSession

from agent.config import TargetConfig
from agent.evaluate import to_results
from agent.outbox import Outbox
from agent.probes.base import Observation
from agent.probes.snmp import IF_ADMIN_STATUS, IF_DESCR, IF_OPER, IF_OPER_STATUS, OPER_STATES
from agent.runner import OutboxSink
from agent.snmp_client import SnmpClient
from bench._common import Deadline, Row, emit, median, parse_args, spread
from bench._services import COMMUNITY, HOST, Snmpd, SnmpExporter
from checks.catalogue import DeviceClass, load_catalogue

IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
COLUMNS = (IF_DESCR, IF_ADMIN_STATUS, IF_OPER_STATUS, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS)
NAMES = ("ifDescr", "ifAdminStatus", "ifOperStatus", "ifHCInOctets", "ifHCOutOctets")
TYPES = ("DisplayString", "gauge", "gauge", "counter", "counter")
MAX_REPETITIONS = 25
TIMEOUT = 2.0
MODULE = "fieldmon_if"
CONCURRENCY = (1, 10)


def exporter_module() -> str:
    """snmp.yml for snmp_exporter 0.21 (auth and version inside the module, as that version
    wants; 0.23 moved them to a separate ``auths`` section)."""
    lines = [
        f"{MODULE}:",
        "  version: 2",
        "  auth:",
        f"    community: {COMMUNITY}",
        f"  max_repetitions: {MAX_REPETITIONS}",
        "  retries: 0",
        f"  timeout: {TIMEOUT:g}s",
        "  walk:",
        *(f"  - {oid}" for oid in COLUMNS),
        "  metrics:",
    ]
    for name, oid, kind in zip(NAMES, COLUMNS, TYPES, strict=True):
        lines += [
            f"  - name: {name}",
            f"    oid: {oid}",
            f"    type: {kind}",
            "    indexes:",
            "    - labelname: ifIndex",
            "      type: gauge",
        ]
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class Kind:
    """One way of polling, its rates per concurrency and CPU per poll."""

    name: str
    make: Callable[[int], Callable[[], Awaitable[None]]]
    rates: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)
    server_cpu: dict[int, list[float]] = field(default_factory=dict)


class Pollers:
    def __init__(self, snmpd: Snmpd, exporter: SnmpExporter | None, folder: Path) -> None:
        self.snmpd = snmpd
        self.exporter = exporter
        self.target = TargetConfig.from_dict(
            {
                "name": "sw-1",
                "class": "snmp-device",
                "address": snmpd.host,
                "snmp": {
                    "port": snmpd.port,
                    "community": COMMUNITY,
                    "timeout": TIMEOUT,
                    "retries": 0,
                    "max_repetitions": MAX_REPETITIONS,
                },
            }
        )
        self.dc: DeviceClass = load_catalogue()["snmp-device"]
        self.outbox = Outbox(folder / "outbox.sqlite", 500_000)
        self.sink = OutboxSink(self.outbox)
        self.interfaces = 0
        self.results = 0

    def gufo(self, _worker: int) -> Callable[[], Awaitable[None]]:
        session = SnmpSession(
            addr=self.snmpd.host,
            port=self.snmpd.port,
            community=COMMUNITY,
            version=SnmpVersion.v2c,
            timeout=TIMEOUT,
            max_repetitions=MAX_REPETITIONS,
        )

        async def poll() -> None:
            for col in COLUMNS:
                prefix = col + "."
                rows = 0
                async for oid, _ in session.getbulk(col, MAX_REPETITIONS):
                    if not oid.lstrip(".").startswith(prefix):
                        break
                    rows += 1
                assert rows == self.interfaces, (col, rows)

        return poll

    def _fieldmon(self, with_outbox: bool) -> Callable[[int], Callable[[], Awaitable[None]]]:
        def make(_worker: int) -> Callable[[], Awaitable[None]]:
            assert self.target.address is not None and self.target.snmp is not None
            client = SnmpClient(self.target.address, self.target.snmp)

            async def poll() -> None:
                cols: list[dict[str, object]] = []
                for col in COLUMNS:
                    rows = await client.walk(col)
                    assert len(rows) == self.interfaces, (col, len(rows))
                    cut = len(col) + 1
                    cols.append({oid[cut:]: value for oid, value in rows})
                descr, admin, oper, octets_in, octets_out = cols
                obs = []
                for index, code in oper.items():
                    name = descr[index]
                    item = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
                    state = OPER_STATES.get(code if isinstance(code, int) else 0, "unknown")
                    obs.append(
                        Observation(
                            IF_OPER,
                            state,
                            item=item,
                            summary=state,
                            facts={
                                "if_index": index,
                                "admin": str(admin[index]),
                                "in_octets": str(octets_in[index]),
                                "out_octets": str(octets_out[index]),
                            },
                        )
                    )
                results = to_results(self.target, self.dc, obs)
                assert len(results) == self.interfaces
                if with_outbox:
                    self.sink(results)

            return poll

        return make

    def exporter_poll(self, _worker: int) -> Callable[[], Awaitable[None]]:
        assert self.exporter is not None
        port = self.exporter.port
        request = (
            f"GET /snmp?module={MODULE}&target={HOST}:{self.snmpd.port} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        expected = self.interfaces

        async def poll() -> None:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            body = await reader.read(-1)
            writer.close()
            assert body.startswith(b"HTTP/1.1 200"), body[:200]
            assert body.count(b"\nifOperStatus{") == expected, body[-500:]
            assert body.count(b"\nifHCOutOctets{") == expected, body[-500:]

        return poll

    def drain_outbox(self) -> None:
        """What the publisher does after PUBACK: the delivered rows leave the outbox."""
        self.sink.flush()
        self.results = self.sink.handed
        rows = self.outbox.peek(1_000_000)
        if rows:
            self.outbox.ack(rows[-1][0])


async def window(
    make: Callable[[int], Callable[[], Awaitable[None]]], workers: int, seconds: float
) -> tuple[int, float]:
    """``workers`` loops polling back to back for ``seconds``; (polls done, elapsed)."""
    polls = [make(w) for w in range(workers)]
    for p in polls:  # warm: sessions open, first answers
        await p()
    done = 0
    started = time.perf_counter()
    end = started + seconds

    async def loop(poll: Callable[[], Awaitable[None]]) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await poll()
            done += 1

    await asyncio.gather(*(loop(p) for p in polls))
    return done, time.perf_counter() - started


async def run(
    pollers: Pollers, kinds: list[Kind], seconds: float, max_rounds: int, deadline: Deadline
) -> int:
    servers = [psutil.Process(pollers.snmpd.pid)]
    if pollers.exporter is not None:
        servers.append(psutil.Process(pollers.exporter.pid))

    def server_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in servers)

    rounds = 0
    last_round = 0.0
    while rounds < max_rounds:
        if rounds >= 2 and not deadline.allows(last_round):
            break
        started = time.perf_counter()
        shift = rounds % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            for n in CONCURRENCY:
                cpu0, srv0 = time.process_time(), server_cpu()
                done, elapsed = await window(kind.make, n, seconds)
                cpu1, srv1 = time.process_time(), server_cpu()
                pollers.drain_outbox()
                kind.rates.setdefault(n, []).append(done / elapsed)
                kind.cpu.setdefault(n, []).append((cpu1 - cpu0) / done)
                kind.server_cpu.setdefault(n, []).append((srv1 - srv0) / done)
        rounds += 1
        last_round = time.perf_counter() - started
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "snmp_throughput", argv)
    seconds, max_rounds = (0.3, 6) if args.quick else (0.4, 60)
    deadline = Deadline(args.budget)
    folder = Path(tempfile.mkdtemp(prefix="fm-bench-tput-"))
    snmpd = Snmpd()
    exporter: SnmpExporter | None = None
    exporter_error = ""
    try:
        snmpd.start()
        try:
            exporter = SnmpExporter(exporter_module()).start()
        except (RuntimeError, SystemExit) as exc:
            exporter_error = str(exc)
            exporter = None
        pollers = Pollers(snmpd, exporter, folder)
        kinds = [
            Kind("anchor: bare gufo-snmp, 5 walks", pollers.gufo),
            Kind("fieldmon: SnmpClient+to_results+Outbox", pollers._fieldmon(True)),
            Kind("reference: SnmpClient+to_results", pollers._fieldmon(False)),
        ]
        if exporter is not None:
            kinds.append(Kind("snmp_exporter 0.21 over HTTP", pollers.exporter_poll))

        async def go() -> int:
            pollers.interfaces = await count_interfaces(snmpd)
            print(
                f"snmp_throughput: snmpd on udp {snmpd.host}:{snmpd.port} "
                f"({pollers.interfaces} interfaces, 5 columns = {5 * pollers.interfaces} "
                f"varbinds/poll); snmp_exporter "
                f"{f'on :{exporter.port}' if exporter else 'NOT AVAILABLE: ' + exporter_error}; "
                f"windows of {seconds:g} s, budget {args.budget:g} s"
            )
            return await run(pollers, kinds, seconds, max_rounds, deadline)

        rounds = asyncio.run(go())
        pollers.outbox.close()
    finally:
        if exporter is not None:
            exporter.close()
        snmpd.close()
    anchor, fieldmon, reference = kinds[:3]
    print(
        f"rounds: {rounds} (each: a window of every kind at each concurrency, order rotating); "
        f"{deadline.elapsed():.1f} s; {pollers.results} results written to the outbox"
    )
    for n in CONCURRENCY:
        print(f"{n} in flight:")
        for k in kinds:
            print(
                f"  {k.name:<40} {median(k.rates[n]):7.0f} polls/s (rounds {min(k.rates[n]):.0f}–"
                f"{max(k.rates[n]):.0f})  client CPU {median(k.cpu[n]) * 1e3:5.2f} ms/poll  "
                f"server CPU {median(k.server_cpu[n]) * 1e3:5.2f} ms/poll"
            )
    rows: list[Row] = []
    extra: dict[str, float] = {"rounds": float(rounds)}
    for n in CONCURRENCY:
        per_round = [f / a for f, a in zip(fieldmon.rates[n], anchor.rates[n], strict=True)]
        ratio = median(per_round)
        ref = median([r / a for r, a in zip(reference.rates[n], anchor.rates[n], strict=True)])
        line = (
            f"  RATIO {n} in flight: fieldmon ÷ gufo {ratio:.2f} (median of per-round ratios; "
            f"rounds {spread(per_round)}; goal ≥ 0.8); without the outbox {ref:.2f}"
        )
        figures = (
            f"{median(fieldmon.rates[n]):.0f} vs {median(anchor.rates[n]):.0f} polls/s "
            f"(without outbox {median(reference.rates[n]):.0f})"
        )
        if exporter is not None:
            exp = kinds[3]
            vs = median([f / e for f, e in zip(fieldmon.rates[n], exp.rates[n], strict=True)])
            line += f"; fieldmon ÷ snmp_exporter {vs:.2f} (goal > 1)"
            figures += (
                f"; snmp_exporter {median(exp.rates[n]):.0f} polls/s (fieldmon ÷ it {vs:.2f})"
            )
            extra[f"exporter_rate_{n}"] = median(exp.rates[n])
        else:
            figures += f"; snmp_exporter not measured: {exporter_error}"
        print(line)
        extra[f"fieldmon_rate_{n}"] = median(fieldmon.rates[n])
        extra[f"anchor_rate_{n}"] = median(anchor.rates[n])
        extra[f"reference_rate_{n}"] = median(reference.rates[n])
        rows.append(
            Row(
                benchmark=f"snmp_throughput, {n} in flight",
                what=(
                    "device-polls/s of the agent path: 5-column interface walk (SnmpClient) → "
                    "to_results → OutboxSink (SQLite outbox), against net-snmp snmpd on "
                    "loopback. Ratio is anchor rate ÷ fieldmon rate (higher is worse)"
                ),
                anchor="bare gufo-snmp loop, same 5 walks, same concurrency",
                ratio=1 / ratio,
                figures=figures,
                extra=dict(extra),
            )
        )
    emit(rows)
    return 0


async def count_interfaces(snmpd: Snmpd) -> int:
    session = SnmpSession(
        addr=snmpd.host, port=snmpd.port, community=COMMUNITY, version=SnmpVersion.v2c
    )
    counts = []
    for col in COLUMNS:
        n = 0
        async for oid, _ in session.getbulk(col, MAX_REPETITIONS):
            if not oid.lstrip(".").startswith(col + "."):
                break
            n += 1
        counts.append(n)
    if len(set(counts)) != 1 or counts[0] == 0:
        raise RuntimeError(f"snmpd's interface columns differ in length: {counts}")
    return counts[0]


if __name__ == "__main__":
    sys.exit(main())
