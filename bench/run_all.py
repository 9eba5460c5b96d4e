"""Run every benchmark, print the Markdown results table and write it to a file.

Why separate processes: each benchmark starts from a clean interpreter (no warm caches or
leftover event loops from the previous one), and a benchmark that hangs is killed after a
hard timeout instead of stalling the whole run. Each benchmark prints its details as it goes
and ends with one ``BENCH-RESULT`` JSON line, which is what this script tabulates.

The table (what is measured, its goal, the measured figures, the ratio to the benchmark's
anchor) goes to stdout and, with the machine it ran on, to ``bench/RESULTS.md`` (full run) or
``bench/RESULTS-quick.md`` (``--quick``), or wherever ``--out`` says, so ``make bench`` leaves
a file to compare with the next run.

Run: ``.venv/bin/python -m bench.run_all [--quick] [--only NAME …] [--out FILE]`` from the
repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench._common import RESULT_PREFIX, Row

BENCHMARKS = (
    "ingest",
    "ingest_mqtt",
    "two_collectors",
    "snmp_poll",
    "agent_rss",
    "snmp_throughput",
    "isolation",
    "api_latency",
    "metrics_scrape",
    "alert_latency",
    "outbox",
    "report_500",
    "fuzz_ingest",
    "alert_storm",
    "sustained",
)
ROOT = Path(__file__).resolve().parent.parent
#: Hard limit per benchmark: its own budget plus start-up, replay and clean-up, with room.
TIMEOUT = {True: 60.0, False: 150.0}
#: Benchmarks whose work cannot shrink to TIMEOUT's size, (quick, full) seconds: the
#: sustained run is 3 or 30 minutes by design, the storm waits out grouping windows, and
#: the others build a large data set (100,000 incidents, a 500-device month) even when quick.
TIMEOUT_FOR: dict[str, tuple[float, float]] = {
    "sustained": (330.0, 2_400.0),
    "alert_storm": (240.0, 240.0),
    "alert_latency": (90.0, 150.0),
    "api_latency": (90.0, 150.0),
    "metrics_scrape": (120.0, 240.0),
    "report_500": (180.0, 300.0),
    "fuzz_ingest": (90.0, 240.0),
}

#: The goal of benchmarks whose rows do not state one (``Row.goal``), from their docstrings.
GOALS = {
    "ingest_mqtt": "≤ 2 × the bare subscriber, ≥ 20,000 results/s",
    "agent_rss": "idle agent ≤ 40 MiB",
    "snmp_throughput": "≥ 0.8 × bare gufo-snmp; ahead of snmp_exporter",
    "isolation": "with dead targets ≥ 0.9 × all answering",
    "api_latency": "p99 < 50 ms",
    "metrics_scrape": "scrape < 500 ms",
    "alert_latency": "p99 < 1 s",
    "report_500": "HTML ≤ 3 s, PDF ≤ 10 s and ≤ 1 GiB, XLSX ≤ 5 s",
    "fuzz_ingest": "no crash, every reject counted, heap ≤ 64 MiB per case",
    "outbox": "RSS flat with the backlog; replay faster than writing",
}


def timeout_for(name: str, quick: bool) -> float:
    """The hard limit of one benchmark, in seconds."""
    limits = TIMEOUT_FOR.get(name)
    if limits is None:
        return TIMEOUT[quick]
    return limits[0] if quick else limits[1]


def run_one(name: str, quick: bool) -> tuple[list[Row], str | None]:
    """Run ``bench.<name>``, echoing its output; its rows, or an error text."""
    cmd = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    limit = timeout_for(name, quick)
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=limit,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    except subprocess.TimeoutExpired:
        return [], f"killed after {limit:g} s"
    rows: list[Row] = []
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            rows += [Row(**r) for r in json.loads(line.removeprefix(RESULT_PREFIX))]
        else:
            print(f"  {line}")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(tail, file=sys.stderr)
        return rows, f"exit code {proc.returncode}"
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)
    return rows, None if rows else "no BENCH-RESULT line"


def ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:.0f}"


def table(rows: Sequence[Row], failures: dict[str, str]) -> str:
    """The results as Markdown: what was measured, its goal, this run's figures, the anchor
    and the ratio to it (fieldmon ÷ anchor, or ÷ goal where the goal is the anchor)."""
    lines = [
        "| benchmark | what | goal | measured (this run) | anchor | ratio |",
        "|---|---|---|---|---|---:|",
    ]
    for r in rows:
        goal = r.goal or GOALS.get(r.benchmark, "")
        cells = (r.benchmark, r.what, goal, r.figures, r.anchor, ratio_text(r.ratio))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for name, error in failures.items():
        lines.append(f"| {name} | | | **failed**: {error} | | |")
    return "\n".join(lines)


def machine() -> str:
    """One line on where the figures come from: on a shared two-core box they mean little
    without it."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total_kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {total_kib / 2**20:.0f} GiB RAM"
    load = (
        ", load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    )
    return (
        f"{platform.node()}: {model or platform.machine()}, {os.cpu_count()} CPUs{mem}; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}{load}"
    )


def results_file(quick: bool) -> Path:
    return ROOT / "bench" / ("RESULTS-quick.md" if quick else "RESULTS.md")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="short runs (most about 10 s)")
    parser.add_argument(
        "--only", choices=BENCHMARKS, action="append", help="run only this one (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Markdown file (bench/RESULTS[-quick].md)"
    )
    args = parser.parse_args(argv)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    for name in args.only or BENCHMARKS:
        got, error = run_one(name, args.quick)
        rows += got
        if error is not None:
            failures[name] = error
    mode = "quick" if args.quick else "full"
    intro = (
        f"Ratios are fieldmon ÷ anchor for the same work, both measured in the same run "
        f"(lower is better; 1 = as cheap as the anchor; where the anchor is a goal, below 1 "
        f"meets it). {mode} run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )
    text = table(rows, failures)
    print()
    print(intro)
    print()
    print(text)
    out = args.out or results_file(args.quick)
    out.write_text(
        f"# Benchmark results ({mode} run)\n\nWritten by `python -m bench.run_all"
        f"{' --quick' if args.quick else ''}"
        f"{' --only ' + ' --only '.join(args.only) if args.only else ''}`; see "
        f"bench/README.md for what each benchmark measures.\n\n"
        f"Machine: {machine()}.\n\n{intro}\n\n{text}\n",
        encoding="utf-8",
    )
    print(f"\n(written to {out})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
