"""The agent's systemd unit is checked by systemd's own parser: an unknown or misspelt
hardening key is only a warning to systemd (the service would run unprotected), so any
message about the unit fails the test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "fieldmon-agent.service"


def test_unit_verifies(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    # verify also checks that ExecStart exists: point it at this checkout's command.
    fieldmon = Path(sys.executable).parent / "fieldmon"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/fieldmon/venv/bin/fieldmon", str(fieldmon)))
    done = subprocess.run(
        [exe, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    about_unit = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert not about_unit, about_unit


def test_hardening_present() -> None:
    keys = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert keys["User"] == "fieldmon"
    assert keys["ProtectSystem"] == "strict"
    assert keys["ReadWritePaths"] == "/var/lib/fieldmon"
    assert keys["NoNewPrivileges"] == "yes"
    assert "/etc/fieldmon/agent.toml" in keys["ExecStart"]
