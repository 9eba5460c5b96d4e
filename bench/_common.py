"""Helpers shared by the benchmarks: the ``--quick`` command line, robust statistics, and
the one machine-readable line :mod:`bench.run_all` collects.

Why ratios: the machines these run on have two cores and noisy neighbours, so an absolute
time says more about the neighbours than about fieldmon. Every benchmark therefore measures
an anchor (the floor of the same work done the plainest way) in the same process, interleaved
with the measured code, and the ratio of the two is the figure worth comparing across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

#: Prefix of the line :mod:`bench.run_all` parses from a benchmark's output.
RESULT_PREFIX = "BENCH-RESULT "


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the README's benchmark table.

    ``ratio`` is always "fieldmon cost ÷ anchor cost" for the same amount of work, so 1.0 is
    "as cheap as the floor" and bigger is worse.
    """

    benchmark: str
    what: str
    anchor: str
    ratio: float
    figures: str
    extra: dict[str, float] = field(default_factory=dict)
    #: The goal this figure is held to, in words ("p99 ≤ 1 s"), for the results table; empty
    #: when the benchmark only compares against its anchor.
    goal: str = ""


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--quick`` (about 10 s) or the default full run (under about 60 s)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="smaller run, about 10 s instead of about 60 s"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="stop starting new rounds after this many seconds (default 8 quick, 50 full)",
    )
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 8.0 if args.quick else 50.0
    return args


class Deadline:
    """A soft time budget: rounds already started finish, no new round starts after it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def allows(self, next_round: float, reserve: float = 0.0) -> bool:
        """Whether a round expected to take ``next_round`` seconds still fits, keeping
        ``reserve`` seconds for what has to run after the rounds (replay, clean-up)."""
        return self.elapsed() + next_round + reserve <= self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def median(values: Sequence[float]) -> float:
    """The median, the statistic least moved by one round that a neighbour disturbed."""
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min–max`` of per-round figures, printed so a reader can judge the noise."""
    if not values:
        return "n/a"
    return f"{min(values):.2f}–{max(values):.2f}"


def emit(rows: Sequence[Row]) -> None:
    """Print the machine-readable summary line (one JSON list) for :mod:`bench.run_all`."""
    print(RESULT_PREFIX + json.dumps([asdict(r) for r in rows], ensure_ascii=False))
    sys.stdout.flush()
