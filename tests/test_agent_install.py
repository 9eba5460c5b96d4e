"""``fieldmon agent install`` into a staging root: the files, their modes, the unit systemd
accepts, and an upgrade that keeps the outbox byte for byte."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.outbox import Outbox
from fieldmon.cli import main
from fieldmon.install import InstallRequest, install, rewrite_config

AGENT = """# customer gate-east
site = "s1"
agent = "a1"
state_dir = "/tmp/somewhere-else"
[mqtt]
host = "127.0.0.1"
port = 8883
username = "a1"
password_file = "{secret}"
[[targets]]
name = "host1"
class = "linux-server"
"""


def _config(tmp_path: Path, host: str = "127.0.0.1") -> Path:
    secret = tmp_path / "src" / "mqtt-password"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("s3cret\n")
    cfg = tmp_path / "src" / "agent.toml"
    cfg.write_text(AGENT.format(secret=secret).replace("127.0.0.1", host))
    return cfg


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (_mode(p), p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_install_layout_and_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    cfg = _config(tmp_path)
    assert main(["agent", "install", "--config", str(cfg), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "skipped: create system user 'fieldmon'" in out
    assert "systemctl" in out and "staging root" in out

    etc = root / "etc/fieldmon"
    assert _mode(etc) == 0o750
    conf = etc / "agent.toml"
    assert _mode(conf) == 0o640
    data = tomllib.loads(conf.read_text())
    assert data["state_dir"] == "/var/lib/fieldmon"
    assert data["mqtt"]["password_file"] == "/etc/fieldmon/mqtt-password"
    assert conf.read_text().count("# customer gate-east") == 1  # comments kept
    assert _mode(etc / "mqtt-password") == 0o640
    assert (etc / "mqtt-password").read_text() == "s3cret\n"
    assert _mode(root / "var/lib/fieldmon") == 0o750
    unit = (root / "etc/systemd/system/fieldmon-agent.service").read_text()
    exe = Path(sys.executable).parent / "fieldmon"
    assert f"ExecStart={exe} agent run --config /etc/fieldmon/agent.toml" in unit
    assert "User=fieldmon" in unit and "ProtectSystem=strict" in unit
    sysusers = root / "usr/lib/sysusers.d/fieldmon.conf"
    assert sysusers.read_text().splitlines()[-1].startswith("u fieldmon ")


def test_upgrade_keeps_outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert main(["agent", "install", "--config", str(_config(tmp_path)), "--root", str(root)]) == 0
    state = root / "var/lib/fieldmon"
    outbox = Outbox(state / "outbox.sqlite", max_results=1000)
    outbox.put([{"target": "host1", "check": f"c{i}", "status": "OK"} for i in range(50)])
    outbox.set_state("seen_up", {"host1": True})
    outbox.close()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in state.iterdir()}
    capsys.readouterr()

    new = _config(tmp_path, host="broker.example.net")
    assert main(["agent", "install", "--config", str(new), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "agent.toml: updated (~mqtt.host)" in out
    assert "/var/lib/fieldmon kept" in out
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in state.iterdir()}
    assert after == before
    reopened = Outbox(state / "outbox.sqlite", max_results=1000)
    assert reopened.pending() == 50
    reopened.close()
    conf = tomllib.loads((root / "etc/fieldmon/agent.toml").read_text())
    assert conf["mqtt"]["host"] == "broker.example.net"

    # The same files again: nothing to do.
    assert main(["agent", "install", "--config", str(new), "--root", str(root)]) == 0
    assert "nothing changed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "edit",
    [
        ('class = "linux-server"', 'class = "toaster"'),
        ("port = 8883", "port = 99999"),
        ("[[targets]]", "[[targets"),
        ('password_file = "', 'password_file = "/nonexistent'),
    ],
)
def test_bad_config_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str]
) -> None:
    root = tmp_path / "root"
    assert main(["agent", "install", "--config", str(_config(tmp_path)), "--root", str(root)]) == 0
    before = _tree(root)
    bad = tmp_path / "src" / "agent.toml"
    bad.write_text(bad.read_text().replace(*edit))
    capsys.readouterr()
    assert main(["agent", "install", "--config", str(bad), "--root", str(root)]) == 2
    assert "configuration error" in capsys.readouterr().err
    assert _tree(root) == before
    # … and on a fresh root nothing is created at all.
    fresh = tmp_path / "fresh"
    assert main(["agent", "install", "--config", str(bad), "--root", str(fresh)]) == 2
    assert not fresh.exists()


def test_installed_unit_verifies(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    root = tmp_path / "root"
    install(InstallRequest(config=_config(tmp_path), root=root))
    unit = root / "etc/systemd/system/fieldmon-agent.service"
    done = subprocess.run(
        [exe, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    about_unit = [line for line in done.stderr.splitlines() if unit.name in line]
    assert not about_unit, about_unit


def test_host_mode_commands_and_ownership(tmp_path: Path) -> None:
    """The non-staging path with the system calls faked: user created once through
    systemd-sysusers or useradd, files owned by the service user's group, service started."""
    if os.geteuid() != 0:
        pytest.skip("needs root for chown")
    calls: list[list[str]] = []

    def run(cmd: Sequence[str]) -> None:
        calls.append(list(cmd))

    root = tmp_path / "root"
    req = InstallRequest(config=_config(tmp_path), user="root")
    report = install(req, run=run, systemd_running=lambda: True, host_root=root)
    assert calls == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "fieldmon-agent"],
    ]
    assert "fieldmon-agent.service: enabled and started" in report.changes
    assert not report.skipped
    conf = root / "etc/fieldmon/agent.toml"
    assert (conf.stat().st_uid, conf.stat().st_gid) == (0, 0)


def test_rewrite_refuses_what_it_cannot_edit_safely(tmp_path: Path) -> None:
    text = 'site = "s"\n[mqtt]\n"password_file" = "/x/p"\n'
    with pytest.raises(Exception, match="rewrite the configuration safely"):
        rewrite_config(text, Path("/etc/fieldmon"), Path("/var/lib/fieldmon"))
    inline = 'site = "s"\nstate_dir = "x"\n[[targets]]\nsnmp = { community_file = "/s/c" }\n'
    new, sources = rewrite_config(inline, Path("/etc/fieldmon"), Path("/var/lib/fieldmon"))
    assert tomllib.loads(new)["targets"][0]["snmp"]["community_file"] == "/etc/fieldmon/c"
    assert sources == {Path("/etc/fieldmon/c"): Path("/s/c")}


def test_host_mode_without_systemd_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for chown")
    calls: list[list[str]] = []
    req = InstallRequest(config=_config(tmp_path), user="root")
    report = install(
        req, run=lambda c: calls.append(list(c)), systemd_running=lambda: False,
        host_root=tmp_path / "root",
    )  # fmt: skip
    assert calls == []
    assert any("systemd is not running" in s for s in report.skipped)


def test_bad_user_name_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    args = ["agent", "install", "--config", str(_config(tmp_path)), "--root", str(root)]
    assert main([*args, "--user", "Bad User"]) == 1
    assert "not a valid system user name" in capsys.readouterr().err
    assert not root.exists()


def test_templates_ship_in_the_package_and_match_deploy() -> None:
    """An installed wheel has no deploy/ folder: the templates ``agent install`` reads live in
    the package (package data), and must stay the files deploy/systemd/ holds and checks."""
    from fieldmon.install import TEMPLATES

    package = Path(__file__).resolve().parents[1] / "fieldmon"
    deploy = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
    assert TEMPLATES.is_relative_to(package)
    names = sorted(p.name for p in TEMPLATES.iterdir())
    assert names == ["fieldmon-agent.service", "fieldmon.sysusers.conf"]
    for name in names:
        assert (TEMPLATES / name).read_bytes() == (deploy / name).read_bytes(), name


def test_missing_templates_named(tmp_path: Path) -> None:
    from fieldmon.install import InstallError

    req = InstallRequest(config=_config(tmp_path), root=tmp_path / "root", templates=tmp_path)
    with pytest.raises(InstallError, match=r"agent\.service.*ship in the fieldmon package"):
        install(req)
