"""The shipped Prometheus files are checked by Prometheus's own tool, so a syntax slip or an
alert that no longer fires is found here, not on the wall display on a Sunday night."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROM = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus' (make test does)")
    return subprocess.run(
        [exe, *args], cwd=PROM, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "fieldmon.rules.yml"),
        ("test", "rules", "fieldmon.rules.test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    done = _promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def rule_metric_names() -> set[str]:
    """fieldmon_* names the alert rules query (checked against a live /metrics elsewhere)."""
    text = (PROM / "fieldmon.rules.yml").read_text()
    return set(re.findall(r"\b(fieldmon_[a-z0-9_]+)", text))


def test_every_alert_is_unit_tested() -> None:
    rules = set(re.findall(r"- alert: (\w+)", (PROM / "fieldmon.rules.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "fieldmon.rules.test.yml").read_text()))
    assert rules and rules <= tested, rules - tested
