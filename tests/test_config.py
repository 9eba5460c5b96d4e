"""A bad configuration stops the program with exit code 2 before anything starts, and the
message names the file, the key and the problem."""

import os
from pathlib import Path

import pytest

from tests.support.procs import fieldmon

AGENT = """
site = "s1"
agent = "a1"
state_dir = "{state}"
[mqtt]
host = "127.0.0.1"
port = {port}
[[targets]]
name = "host1"
class = "linux-server"
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('site = "s1"', 'site = "bad/site"'), "site: Expected `str` matching regex"),
        (('site = "s1"', 'site = "s1\\n"'), "site: Expected `str` matching regex"),
        (("port = 1883", "port = 99999"), "mqtt.port: Expected `int` <= 65535"),
        (
            ('class = "linux-server"', 'class = "linux-server"\ncolour = "red"'),
            "targets[0].colour: unknown key",
        ),
        (
            ('class = "linux-server"', 'class = "toaster"'),
            "targets[0].class: unknown device class 'toaster'",
        ),
        (('class = "linux-server"', 'class = "snmp-device"'), "add a [targets.snmp] section"),
        (
            ('class = "linux-server"', 'class = "linux-server"\naddress = "192.0.2.1"'),
            "measured on the agent's own host",
        ),
        (
            ('class = "linux-server"', 'class = "linux-server"\n[targets.snmp]\nport = 161'),
            "a target with [snmp] settings needs 'address'",
        ),
        (
            (
                'class = "linux-server"',
                'class = "linux-server"\nthresholds = { "cpu.usage" = { upper = [9, 1] } }',
            ),
            "threshold for 'cpu.usage'",
        ),
        (
            ('class = "linux-server"', 'class = "linux-server"\nintervals = { "no.such" = 60 }'),
            "targets[0].intervals.no.such: no such check",
        ),
        (("[[targets]]", "[[targets]]\n[[targets"), "not valid TOML"),
    ],
)
def test_bad_agent_config_exits_2(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(AGENT.format(state=state, port=1883).replace(*edit), encoding="utf-8")
    done = fieldmon("agent", "run", "--config", str(cfg), timeout=30)
    assert done.returncode == 2, done.stderr
    assert str(cfg) in done.stderr
    assert expected in done.stderr
    assert not state.exists(), "nothing may start (no outbox created) with a bad config"


def test_missing_config_file(tmp_path: Path) -> None:
    done = fieldmon("collector", "run", "--config", str(tmp_path / "nope.toml"))
    assert done.returncode == 2
    assert "nope.toml: file not found" in done.stderr


def test_bad_collector_config(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('timezone = "Mars/Olympus"\n[incidents]\nresolve_after_ok = 0\n')
    done = fieldmon("collector", "run", "--config", str(cfg))
    assert done.returncode == 2
    assert "timezone: Value error, unknown time zone 'Mars/Olympus'" in done.stderr
    assert "incidents.resolve_after_ok" in done.stderr


def test_agent_check_exit_code_follows_crit(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    base = AGENT.format(state=tmp_path / "s", port=1883)
    # Bounds no host can reach, so the verdict does not depend on how busy this machine is.
    calm = ", ".join(
        f'"{c}" = {{ upper = [1000000] }}'
        for c in (
            "cpu.usage",
            "mem.usage",
            "swap.usage",
            "disk.usage",
            "disk.inodes",
            "load.per_cpu",
        )
    )
    base = base.replace(
        'class = "linux-server"', f'class = "linux-server"\nthresholds = {{ {calm} }}'
    )
    cfg.write_text(base)
    ok = fieldmon("agent", "check", "--config", str(cfg), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"check": "disk.usage"' in ok.stdout
    # A threshold every host exceeds: memory use is always above 0.001 %.
    cfg.write_text(
        base.replace('"mem.usage" = { upper = [1000000] }', '"mem.usage" = { upper = [0.001] }')
    )
    crit = fieldmon("agent", "check", "--config", str(cfg))
    assert crit.returncode == 1
    line = next(ln for ln in crit.stdout.splitlines() if "mem.usage" in ln)
    assert "CRIT" in line and "threshold crit ≥ 0.001" in line


def test_secrets_from_environment_and_files(tmp_path: Path) -> None:
    from agent.config import load_agent_config

    secret_file = tmp_path / "broker.pw"
    secret_file.write_text("broker-pw-123\n")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        AGENT.format(state=tmp_path / "state", port=1883).replace(
            "port = 1883", f'port = 1883\npassword_file = "{secret_file}"'
        )
        + '[[targets]]\nname = "sw1"\nclass = "snmp-device"\naddress = "127.0.0.1"\n'
        '[targets.snmp]\ncommunity_env = "FM_TEST_COMMUNITY"\n'
    )
    os.environ["FM_TEST_COMMUNITY"] = "c0mmunity-s3cret"
    try:
        loaded = load_agent_config(cfg)
    finally:
        del os.environ["FM_TEST_COMMUNITY"]
    assert loaded.mqtt.password is not None
    assert loaded.mqtt.password.get_secret_value() == "broker-pw-123"
    snmp = loaded.targets[1].snmp
    assert snmp is not None and snmp.community.get_secret_value() == "c0mmunity-s3cret"
    assert "c0mmunity-s3cret" not in repr(loaded)
    # Unset variable: exit 2 naming the key and the variable, never a value.
    done = fieldmon("agent", "run", "--config", str(cfg))
    assert done.returncode == 2
    assert "community_env: environment variable FM_TEST_COMMUNITY is not set" in done.stderr
    assert not (tmp_path / "state").exists()
