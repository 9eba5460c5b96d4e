"""Alert latency under load: a failure published to MQTT → incident open → e-mail handed to
the SMTP server, p50/p99, while the collector ingests 5,000 results/s of background traffic.

Why: a camera going dark must reach the duty engineer's inbox within a second of its agent
reporting it, even while hundreds of other agents keep the collector busy. The goal is
p99 < 1 s from publish to the SMTP server accepting the message.

Set-up, all on loopback: a private Mosquitto (``tests/support/broker.py``), an aiosmtpd
server in this process (its own thread), and a real ``python -m fieldmon collector run`` on a
temporary SQLite file with one e-mail channel (``security = "plain"``), a route for every
incident, grouping window 0 and no effective rate limit, so what is measured is the
collector, not the grouping delay an operator configures (10 s by default).

Load: agent ``load`` publishes batches of 500 results (2,000 targets × 5 checks, all OK,
values moving) at 10 batches/s = 5,000 results/s, stamped when published. Probes: twice a
second, agent ``probe`` publishes one CRIT ``snmp.reachable`` result of a new target; each
opens one incident at once, and its e-mail names the target. Latency = SMTP ``DATA``
accepted − probe published (both ``time.monotonic`` in this process).

Anchor, in the same run and under the same load: the probe's delivery to a bare aiomqtt
subscriber in this process (publish → message received): the broker's own latency.
Ratio = p99(alert) ÷ p99(delivery). Also printed: the collector's ingest rate during the
probe phase (``fieldmon_ingest_results_total``), so a collector falling behind the load
shows as such, and how many probes never produced an e-mail.

Run: ``.venv/bin/python -m bench.alert_latency [--quick]`` (about 75 s; ``--quick`` 30 s).
"""

from __future__ import annotations

import asyncio
import email
import logging
import re
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench._common import Row, emit, median, parse_args
from checks.result import Result
from checks.status import Status
from checks.topics import topic
from checks.wire import encode_batch, result_to_wire
from fieldmon.allinone import free_port
from tests.support.broker import Broker
from tests.support.configs import collector_toml, mail_notify_toml
from tests.support.procs import Proc, metric_value, wait_for

SITE = "s1"
LOAD_TOPIC = topic(SITE, "load", "results")
PROBE_TOPIC = topic(SITE, "probe", "results")
BATCH = 500
LOAD_TARGETS = 2_000
LOAD_RATE = 5_000  # results per second
PROBES_PER_S = 2.0
GOAL_S = 1.0
CHECKS = ("snmp.reachable", "cpu.usage", "mem.usage", "snmp.uptime", "clock.drift")
PROBE_NAME = re.compile(r"probe-\d{5}")


class Inbox:
    """aiosmtpd handler: when each probe's target was named in an accepted message."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.messages = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.monotonic()
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        msg = email.message_from_bytes(raw)
        text = str(msg["Subject"] or "")
        for part in msg.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                text += payload.decode("utf-8", "replace")
        self.messages += 1
        for name in PROBE_NAME.findall(text):
            self.arrived.setdefault(name, now)
        return "250 OK"


def notify_toml(smtp_port: int) -> str:
    """Grouping off and no effective rate limit: the collector is measured, not the window."""
    return mail_notify_toml(smtp_port, window=0, rate_limit=10_000)


def load_batch(seq: int) -> bytes:
    """Batch ``seq`` of the background load: 100 targets × 5 checks, all OK, stamped now."""
    now = datetime.now(UTC)
    rows = []
    for i in range(BATCH):
        n = seq * BATCH + i
        rows.append(
            result_to_wire(
                Result(
                    target=f"cam-{(n // len(CHECKS)) % LOAD_TARGETS:05d}",
                    target_class="camera",
                    check=CHECKS[n % len(CHECKS)],
                    status=Status.OK,
                    value=float(n % 97),
                    observed_at=now,
                )
            )
        )
    return encode_batch(SITE, "load", rows)


def probe_payload(name: str) -> bytes:
    result = Result(
        target=name,
        target_class="camera",
        check="snmp.reachable",
        status=Status.CRIT,
        value="down",
        observed_at=datetime.now(UTC),
    )
    return encode_batch(SITE, "probe", [result_to_wire(result)])


def ingested(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return metric_value(text, "fieldmon_ingest_results_total") or 0.0


async def run_load(port: int, stop: asyncio.Event, seconds: float | None = None) -> int:
    """Publish the load at LOAD_RATE until ``stop`` (or for ``seconds``); batches sent."""
    interval = BATCH / LOAD_RATE
    sent = 0
    started = time.monotonic()
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100) as client:
        while not stop.is_set() and (seconds is None or time.monotonic() - started < seconds):
            await client.publish(LOAD_TOPIC, load_batch(sent), qos=1)
            sent += 1
            delay = started + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    return sent


async def run_probes(
    port: int, seconds: float, published: dict[str, float], delivered: dict[str, float]
) -> None:
    """Publish probes for ``seconds``; record publish and bare-subscriber delivery times."""
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="bench-probe-sub") as sub,
        aiomqtt.Client("127.0.0.1", port) as pub,
    ):
        await sub.subscribe(PROBE_TOPIC, qos=1)

        async def listen() -> None:
            async for message in sub.messages:
                payload = message.payload
                if isinstance(payload, bytes):
                    found = PROBE_NAME.search(payload.decode("utf-8", "replace"))
                    if found:
                        delivered.setdefault(found.group(0), time.monotonic())

        listener = asyncio.create_task(listen())
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            name = f"probe-{n:05d}"
            payload = probe_payload(name)
            published[name] = time.monotonic()
            await pub.publish(PROBE_TOPIC, payload, qos=1)
            n += 1
            await asyncio.sleep(max(0.0, started + n / PROBES_PER_S - time.monotonic()))
        await asyncio.sleep(2.0)  # the last deliveries
        listener.cancel()


async def phase(port: int, seconds: float) -> tuple[dict[str, float], dict[str, float], int]:
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(port, stop))
    published: dict[str, float] = {}
    delivered: dict[str, float] = {}
    await asyncio.sleep(2.0)  # the load is running before the first probe
    await run_probes(port, seconds, published, delivered)
    stop.set()
    return published, delivered, await load


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "alert_latency", argv)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    seconds = max(10.0, args.budget - 25.0) if args.quick else max(20.0, args.budget)
    if args.quick and args.budget == 8.0:
        seconds = 15.0
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    tmp = Path(tempfile.mkdtemp(prefix="fieldmon-bench-alert-"))
    broker = Broker()
    broker.start()
    cfg, http_port = collector_toml(
        tmp, broker.port, extra=notify_toml(smtp_port), log_level="WARNING"
    )
    collector = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: ingested(base) == 0.0, 30, what="collector up")
        # Warm-up: every load target's rows exist before anything is timed.
        warm = asyncio.run(run_load(broker.port, asyncio.Event(), LOAD_TARGETS * 5 / LOAD_RATE))
        wait_for(lambda: ingested(base) >= warm * BATCH, 120, what="warm-up stored")
        before, t0 = ingested(base), time.monotonic()
        published, delivered, load_batches = asyncio.run(phase(broker.port, seconds))
        load_s = time.monotonic() - t0
        after = ingested(base)
        wait_for(lambda: len(inbox.arrived) >= len(published), 30, what="every probe's e-mail")
    except TimeoutError:
        pass  # reported below as missing e-mails
    finally:
        collector.stop()
        broker.cleanup()
        smtp.stop()
    alert = [inbox.arrived[n] - t for n, t in published.items() if n in inbox.arrived]
    deliver = [delivered[n] - t for n, t in published.items() if n in delivered]
    missing = len(published) - len(alert)
    p50, p99 = percentile(alert, 0.5), percentile(alert, 0.99)
    d50, d99 = percentile(deliver, 0.5), percentile(deliver, 0.99)
    rate = (after - before) / load_s
    offered = load_batches * BATCH / load_s
    flag = "" if p99 < GOAL_S and not missing else f"  ABOVE the {GOAL_S:g} s goal or incomplete"
    print(
        f"alert_latency: {len(published)} probes over {seconds:.0f} s under {offered:,.0f} "
        f"results/s offered; collector ingested {rate:,.0f} results/s meanwhile\n"
        f"publish → e-mail at the SMTP server: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms, "
        f"max {max(alert, default=float('nan')) * 1e3:.0f} ms; {missing} probe(s) without "
        f"an e-mail; {inbox.messages} messages{flag}\n"
        f"anchor publish → bare subscriber: p50 {d50 * 1e3:.1f} ms, p99 {d99 * 1e3:.1f} ms\n"
        f"RATIO p99 alert ÷ p99 delivery: {p99 / d99:.1f}; median alert "
        f"{median(alert) * 1e3:.0f} ms"
    )
    emit(
        [
            Row(
                benchmark="alert_latency",
                what="CRIT published → incident → e-mail accepted by aiosmtpd, "
                f"{LOAD_RATE:,} results/s background; p99",
                anchor="the same probe's delivery to a bare aiomqtt subscriber (p99)",
                ratio=p99 / d99,
                figures=(
                    f"p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms vs delivery p99 "
                    f"{d99 * 1e3:.1f} ms (goal p99 < {GOAL_S * 1e3:.0f} ms); ingest "
                    f"{rate:,.0f}/s of {offered:,.0f}/s offered"
                ),
                extra={
                    "p50_ms": p50 * 1e3,
                    "p99_ms": p99 * 1e3,
                    "anchor_p99_ms": d99 * 1e3,
                    "ingest_rate": rate,
                    "missing": float(missing),
                },
            )
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
