"""Run every benchmark and print the Markdown table for the README's "Benchmarks" section.

Why separate processes: each benchmark starts from a clean interpreter (no warm caches or
leftover event loops from the previous one), and a benchmark that hangs is killed after a
hard timeout instead of stalling the whole run. Each benchmark prints its details as it goes
and ends with one ``BENCH-RESULT`` JSON line, which is what this script tabulates.

Run: ``.venv/bin/python -m bench.run_all [--quick]`` from the repository root.
"""

from __future__ import annotations

import argparse
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
    "snmp_poll",
    "agent_rss",
    "snmp_throughput",
    "isolation",
    "api_latency",
)
ROOT = Path(__file__).resolve().parent.parent
#: Hard limit per benchmark: its own budget plus start-up, replay and clean-up, with room.
TIMEOUT = {True: 60.0, False: 150.0}


def run_one(name: str, quick: bool) -> tuple[list[Row], str | None]:
    """Run ``bench.<name>``, echoing its output; its rows, or an error text."""
    cmd = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT[quick],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    except subprocess.TimeoutExpired:
        return [], f"killed after {TIMEOUT[quick]:g} s"
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
    lines = [
        "| benchmark | what | anchor | ratio | absolute figures of this run |",
        "|---|---|---|---:|---|",
    ]
    for r in rows:
        cells = (r.benchmark, r.what, r.anchor, ratio_text(r.ratio), r.figures)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for name, error in failures.items():
        lines.append(f"| {name} | | | **failed** | {error} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="about 10 s per benchmark")
    parser.add_argument(
        "--only", choices=BENCHMARKS, action="append", help="run only this one (repeatable)"
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
    print()
    print(
        f"Ratios are fieldmon ÷ anchor for the same work, both measured in the same run "
        f"(lower is better; 1 = as cheap as the anchor). {mode} run, "
        f"{datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs."
    )
    print()
    print(table(rows, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
