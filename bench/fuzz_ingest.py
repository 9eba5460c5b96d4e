"""Fuzzing the collector's ingest: hostile payloads never crash it, every reject is counted.

Why: everything a broker delivers goes through :meth:`collector.ingest.Ingestor.handle`; a
payload that makes it raise stalls the collector's pipeline (the batch is retried,
unacknowledged, for ever), and a reject that is not counted is invisible on the wall display.

What runs: hypothesis generates messages (:func:`messages`) of six kinds: random bytes; valid
payloads cut short; huge payloads (over the 1 MiB limit, and just under it in the most
memory-hungry JSON shapes); deeply nested JSON; valid batches with one field replaced by a
value of the wrong type, removed, or joined by an unknown one; and valid batches and statuses
(so the store path runs too), on valid or random topics. Each is handed to an ``Ingestor``
wired as ``collector run`` wires it (:func:`bench.ingest.make_ingestor`, a real SQLite
:class:`collector.store.db.Store`). Checked per case (:func:`run_case`): ``handle`` does not
raise; it returns None exactly when the sum of ``fieldmon_ingest_rejected_messages_total``
over its reasons grew by one (else it does not grow); the Python heap's peak during the case
(tracemalloc) stays under :data:`PEAK_BOUND`.

Why that bound: payloads over 1 MiB are refused before parsing, so the largest document
parsed is 1 MiB; measured, ``orjson.loads`` of the most expensive shape, ``[{},{},…]``, takes
36 bytes of Python objects per payload byte (36 MiB). Twice that covers validation's copies:
64 MiB. Anything more means input size no longer bounds memory.

Anchor: ``orjson.loads`` of the same payloads (exceptions caught), timed in the same run: the
least any ingest must do with a payload. Timed separately from hypothesis's own generation.

Run: ``.venv/bin/python -m bench.fuzz_ingest [--quick]`` (10,000 cases; 1,000 with --quick).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

from bench._common import Row, emit, parse_args
from bench.ingest import make_ingestor
from checks.wire import MAX_PAYLOAD_BYTES
from collector.ingest import Ingestor, Message

SITE, AGENT = "s1", "a1"
RESULTS_TOPIC = f"fieldmon/v1/{SITE}/{AGENT}/results"
STATUS_TOPIC = f"fieldmon/v1/{SITE}/{AGENT}/status"
PEAK_BOUND = 64 * 2**20
#: observed_at values inside what every time zone can represent (see the xfail tests in
#: tests/test_fuzz_ingest.py for the edges, which crash ingest).
MIN_DT = datetime(1900, 1, 1, tzinfo=UTC)
MAX_DT = datetime(2200, 1, 1, tzinfo=UTC)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NAMES = st.builds(
    str.__add__, st.sampled_from(_ALNUM), st.text(alphabet=_ALNUM + "_.-", max_size=20)
)
MSG_IDS = st.text(alphabet=_ALNUM + "_-", min_size=8, max_size=20)
CHECKS = st.sampled_from(["cpu.usage", "mem.usage", "disk.usage", "snmp.reachable", "x.y"])
DATES = st.datetimes(
    min_value=MIN_DT.replace(tzinfo=None),
    max_value=MAX_DT.replace(tzinfo=None),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]),
)


def _iso(dt: datetime) -> str:
    return dt.isoformat()


@st.composite
def wire_results(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "msg_id": draw(MSG_IDS),
        "target": draw(NAMES),
        "class": draw(st.sampled_from(["linux-server", "snmp-device", "camera", "no-such"])),
        "check": draw(CHECKS),
        "status": draw(st.sampled_from(["OK", "WARN", "UNKNOWN", "CRIT"])),
        "observed_at": _iso(draw(DATES)),
    }
    if draw(st.booleans()):
        out["value"] = draw(
            st.none()
            | st.integers(-(2**53), 2**53)
            | st.floats(allow_nan=False, width=32)
            | st.text(max_size=20)
        )
    if draw(st.booleans()):
        out["item"] = draw(st.text(max_size=30))
    if draw(st.booleans()):
        out["summary"] = draw(st.text(max_size=60))
    if draw(st.booleans()):
        out["facts"] = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4))
    return out


@st.composite
def valid_batches(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema": 1,
        "site": SITE,
        "agent": AGENT,
        "sent_at": _iso(draw(DATES)),
        "results": draw(st.lists(wire_results(), max_size=6)),
    }


@st.composite
def statuses(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema": 1,
        "site": SITE,
        "agent": AGENT,
        "state": draw(st.sampled_from(["online", "offline", "stopped"])),
        "at": _iso(draw(DATES)),
        "version": draw(st.text(max_size=10)),
    }


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid batch with one field wrong-typed, removed or added, at the top or in a result."""
    body = draw(valid_batches())
    where: dict[str, Any] = body
    if body["results"] and draw(st.booleans()):
        where = body["results"][draw(st.integers(0, len(body["results"]) - 1))]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    key = draw(st.sampled_from(sorted(where)))
    if action == "replace":
        where[key] = draw(JSON_VALUES)
    elif action == "remove":
        del where[key]
    else:
        where[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return body


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # Nesting inside an otherwise valid result's facts.
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return (
        b'{"schema":1,"site":"s1","agent":"a1","sent_at":"2026-01-01T00:00:00Z","results":[{'
        b'"msg_id":"nested-0001","target":"t","class":"linux-server","check":"cpu.usage",'
        b'"status":"OK","observed_at":"2026-01-01T00:00:00Z","facts":{"k":' + inner + b"}}]}"
    )


def _huge() -> list[bytes]:
    """A few fixed huge payloads (built once: generating a MiB per example would be slow)."""
    envelope = b'{"schema":1,"site":"s1","agent":"a1","sent_at":"2026-01-01T00:00:00Z","results":'
    room = MAX_PAYLOAD_BYTES - len(envelope) - 2
    return [
        b" " * (MAX_PAYLOAD_BYTES + 1),
        b"[" + b"{}," * ((MAX_PAYLOAD_BYTES - 2) // 3 - 1) + b"{}]",
        envelope + b"[" + b"{}," * (room // 3 - 1) + b"{}]}",
        b'{"schema":1,"x":"' + b"x" * (MAX_PAYLOAD_BYTES - 30) + b'"}',
        b"[" * (MAX_PAYLOAD_BYTES // 2) + b"]" * (MAX_PAYLOAD_BYTES // 2),
        b'"' + b"\\u0000" * (MAX_PAYLOAD_BYTES // 6 - 1) + b'"',
    ]


HUGE = _huge()


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    raw = orjson.dumps(draw(valid_batches()))
    return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]


TOPICS = st.one_of(
    st.just(RESULTS_TOPIC),
    st.just(RESULTS_TOPIC),
    st.just(STATUS_TOPIC),
    st.just(f"fieldmon/v1/{SITE}/other/results"),
    st.builds(lambda s, a, k: f"fieldmon/v1/{s}/{a}/{k}", NAMES, NAMES, st.text(max_size=12)),
    st.text(max_size=80),
)

PAYLOADS = st.one_of(
    st.binary(max_size=300),
    truncated(),
    st.sampled_from(HUGE),
    st.builds(_nested, st.integers(1, 3000), st.sampled_from(["list", "dict", "facts"])),
    mutated().map(orjson.dumps),
    valid_batches().map(orjson.dumps),
    statuses().map(orjson.dumps),
    JSON_VALUES.map(orjson.dumps),
)

MESSAGES = st.builds(Message, TOPICS, PAYLOADS)


def messages() -> st.SearchStrategy[Message]:
    return MESSAGES


def rejected_total(ingestor: Ingestor) -> float:
    return sum(
        s.value
        for metric in ingestor.counters.rejected.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    )


@dataclass
class Tally:
    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    handle_seconds: float = 0.0
    peak: int = 0
    peak_payload: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, Message] = field(default_factory=dict)
    miscounted: list[Message] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)


def run_case(ingestor: Ingestor, msg: Message, tally: Tally, *, trace: bool = True) -> None:
    """One case: handle it, check the reject counter, record time and (``trace``) the
    Python heap's peak during ``handle`` (tracemalloc runs only around the call)."""
    before = rejected_total(ingestor)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        stats = ingestor.handle(msg)
    except Exception as exc:  # what the fuzzing is for: any escape is a finding
        tally.cases += 1
        kind = f"{type(exc).__name__}: {str(exc)[:80]}"
        tally.crashes[kind] += 1
        tally.examples.setdefault(kind, Message(msg.topic, msg.payload[:300]))
        return
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    tally.handle_seconds += elapsed
    if peak > tally.peak:
        tally.peak, tally.peak_payload = peak, len(msg.payload)
    tally.cases += 1
    grew = rejected_total(ingestor) - before
    if stats is None:
        tally.rejected += 1
    else:
        tally.accepted += 1
    if grew != (1 if stats is None else 0):
        tally.miscounted.append(Message(msg.topic, msg.payload[:300]))


def fuzz(ingestor: Ingestor, cases: int, tally: Tally, *, keep_payloads: bool = False) -> None:
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(MESSAGES)
    def one(msg: Message) -> None:
        if keep_payloads:
            tally.payloads.append(msg.payload)
        run_case(ingestor, msg, tally)

    one()


def anchor_seconds(payloads: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for p in payloads:
        with contextlib.suppress(orjson.JSONDecodeError):
            orjson.loads(p)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    logging.getLogger("collector").setLevel(logging.ERROR)  # rejects are logged, by design
    warnings.filterwarnings("ignore", category=HypothesisWarning)  # repr of 1 MiB payloads
    cases = 1000 if args.quick else 10_000
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="fm-fuzz-") as tmp:
        ingestor = make_ingestor(Path(tmp) / "collector.db")
        started = time.monotonic()
        fuzz(ingestor, cases, tally, keep_payloads=True)
        wall = time.monotonic() - started
        ingestor.store.engine.dispose()
    anchor = anchor_seconds(tally.payloads)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = tally.cases / tally.handle_seconds if tally.handle_seconds else float("nan")
    print(f"cases: {tally.cases} ({tally.accepted} accepted, {tally.rejected} rejected)")
    print(f"wall time with generation: {wall:.1f} s; handle(): {tally.handle_seconds:.2f} s")
    print(f"cases/s through handle(): {rate:,.0f}")
    print(f"peak Python heap in one case: {tally.peak / 2**20:.1f} MiB ", end="")
    print(f"(payload {tally.peak_payload:,} bytes; bound {PEAK_BOUND / 2**20:.0f} MiB)")
    print(f"max RSS of the process: {rss:.0f} MiB")
    print(f"reject counter miscounts: {len(tally.miscounted)}")
    for kind, n in tally.crashes.most_common():
        print(f"CRASH x{n}: {kind}\n  e.g. {tally.examples[kind]!r:.300}")
    ok = not tally.crashes and not tally.miscounted and tally.peak <= PEAK_BOUND
    emit(
        [
            Row(
                benchmark="fuzz_ingest",
                what=f"collector `Ingestor.handle` on {tally.cases:,} hypothesis cases "
                "(malformed, truncated, huge, nested, wrong-typed, valid), SQLite store",
                anchor="`orjson.loads` of the same payloads",
                ratio=tally.handle_seconds / anchor if anchor else float("nan"),
                figures=f"{rate:,.0f} cases/s; peak heap {tally.peak / 2**20:.1f} MiB per case "
                f"(bound {PEAK_BOUND / 2**20:.0f}); max RSS {rss:.0f} MiB; "
                f"{sum(tally.crashes.values())} crashes, {len(tally.miscounted)} miscounts",
                extra={"cases": tally.cases, "crashes": sum(tally.crashes.values())},
            )
        ]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
