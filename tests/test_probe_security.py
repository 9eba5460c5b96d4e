"""The security items of the local probe on this very host: real listening sockets, copies of
the account files, an auth.log written with real OpenSSH lines, and the baseline persisted
in a real outbox database across a restart of the agent's probe set."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest

from agent.config import AgentConfig, TargetConfig
from agent.evaluate import to_results
from agent.outbox import Outbox
from agent.probes.base import Observation
from agent.probes.local import LocalProbe
from agent.probes.security import AUTH_LOG, SecurityProbe
from agent.runner import Probes
from checks.catalogue import load_catalogue
from checks.status import Status

LINUX = load_catalogue()["linux-server"]
TARGET = TargetConfig.from_dict({"name": "host1", "class": "linux-server"})


def status_of(target: TargetConfig, obs: Observation) -> Status:
    """The verdict the agent publishes: the catalogue's threshold applied to the value."""
    [result] = to_results(target, LINUX, [obs])
    return result.status


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def names(text: str) -> set[str]:
    return {n for n in text.split(", ") if n}


async def one(probe: SecurityProbe, check: str, target: TargetConfig = TARGET) -> Observation:
    [obs] = await probe.collect(target, {check})
    return obs


async def test_new_listening_port_warns_until_it_closes() -> None:
    probe = SecurityProbe()
    first = await one(probe, "sec.listen_ports")
    assert first.value == "baseline" and status_of(TARGET, first) is Status.OK
    sock = listener()
    port = sock.getsockname()[1]
    mine = f"tcp 127.0.0.1:{port}"
    try:
        seen = await one(probe, "sec.listen_ports")
    finally:
        sock.close()
    assert seen.value == "new" and status_of(TARGET, seen) is Status.WARN
    assert mine in names(seen.facts["new"])
    assert mine in seen.summary and f"pid {os.getpid()})" in seen.summary  # who holds it
    after = await one(probe, "sec.listen_ports")
    # Other programs on this machine may open ports meanwhile; ours must be gone, and the
    # verdict must follow exactly what else is new.
    others = names(after.facts.get("new", ""))
    assert mine not in others
    assert after.value == ("new" if others else "unchanged")
    assert status_of(TARGET, after) is (Status.WARN if others else Status.OK)


async def test_allowed_port_is_not_reported() -> None:
    sock = listener()
    port = sock.getsockname()[1]
    target = TargetConfig.from_dict(
        {"name": "host1", "class": "linux-server", "allowed_ports": [port]}
    )
    probe = SecurityProbe()
    try:
        await one(probe, "sec.listen_ports", target)  # baseline without our socket
        sock2 = listener()  # ... and a second, not allowed, to show the check still looks
        other = sock2.getsockname()[1]
        try:
            obs = await one(probe, "sec.listen_ports", target)
        finally:
            sock2.close()
    finally:
        sock.close()
    assert f":{port}" not in obs.facts["current"] and f":{port}" not in obs.summary
    assert obs.value == "new" and f"tcp 127.0.0.1:{other}" in names(obs.facts["new"])


@pytest.fixture
def account_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    passwd = tmp_path / "passwd"
    shutil.copy("/etc/passwd", passwd)
    sudoers = tmp_path / "sudoers"
    if Path("/etc/sudoers").exists():
        shutil.copy("/etc/sudoers", sudoers)
    else:  # sudo is not installed on this host: Debian's stock file instead
        sudoers.write_text(
            "Defaults\tenv_reset\nDefaults\tmail_badpass\n"
            "# User privilege specification\nroot\tALL=(ALL:ALL) ALL\n"
            "%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n"
        )
    sudoers_d = tmp_path / "sudoers.d"
    sudoers_d.mkdir()
    (sudoers_d / "README").write_text("# files in this directory are read by sudo\n")
    return passwd, sudoers, sudoers_d


async def test_new_accounts_and_sudo_rules_warn(account_files: tuple[Path, Path, Path]) -> None:
    passwd, sudoers, sudoers_d = account_files
    probe = SecurityProbe(passwd=passwd, sudoers=sudoers, sudoers_dir=sudoers_d)
    users, rules = await probe.collect(TARGET, {"sec.users", "sec.sudoers"})
    assert users.value == rules.value == "baseline"
    assert "root:0" in names(users.facts["baseline"])
    assert not any(n.startswith(("daemon:", "nobody:")) for n in names(users.facts["baseline"]))

    with passwd.open("a") as fh:
        fh.write("svc:x:998:998::/var/lib/svc:/usr/sbin/nologin\n")  # no login: not counted
        fh.write("toor:x:0:0:root:/root:/bin/bash\n")  # the classic second root
    (sudoers_d / "90-toor").write_text("toor ALL=(ALL) \\\n    NOPASSWD: ALL\n")
    (sudoers_d / "90-toor.dpkg-old").write_text("ghost ALL=(ALL) ALL\n")  # sudo ignores it

    by = {o.check: o for o in await probe.collect(TARGET, {"sec.users", "sec.sudoers"})}
    assert by["sec.users"].value == "new" and status_of(TARGET, by["sec.users"]) is Status.WARN
    assert by["sec.users"].facts["new"] == "toor:0"
    assert "toor:0 (/bin/bash)" in by["sec.users"].summary
    sudo = by["sec.sudoers"]
    assert sudo.value == "new" and status_of(TARGET, sudo) is Status.WARN
    assert sudo.facts["new"] == "90-toor: toor ALL=(ALL) NOPASSWD: ALL"
    assert "ghost" not in sudo.facts["current"]

    # Removing the intruder returns to the baseline; nothing was learned meanwhile.
    passwd.write_text(passwd.read_text().replace("toor:x:0:0:root:/root:/bin/bash\n", ""))
    (sudoers_d / "90-toor").unlink()
    again = await probe.collect(TARGET, {"sec.users", "sec.sudoers"})
    assert [o.value for o in again] == ["unchanged", "unchanged"]


async def test_unreadable_account_file_is_unknown(tmp_path: Path) -> None:
    probe = SecurityProbe(passwd=tmp_path / "missing")
    obs = await one(probe, "sec.users")
    assert obs.status is Status.UNKNOWN and "cannot read login accounts" in obs.summary


def sshd_lines(when: datetime, count: int, iso: bool) -> Iterable[str]:
    stamp = when.astimezone().isoformat() if iso else when.strftime("%b %e %H:%M:%S")
    for i in range(count):
        ip = f"203.0.113.{7 + i % 2}"
        if i % 3 == 0:
            yield f"{stamp} web01 sshd[{4000 + i}]: Invalid user adm{i} from {ip} port {50000 + i}"
        else:
            yield (
                f"{stamp} web01 sshd[{4000 + i}]: Failed password for root from {ip}"
                f" port {50000 + i} ssh2"
            )


async def test_failed_logins_counted_from_auth_log(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    now = datetime.now()
    old = datetime.fromtimestamp(time.time() - 3600)
    lines = [
        *sshd_lines(old, 50, iso=False),  # an hour ago: outside the first 300 s window
        *sshd_lines(now, 8, iso=False),
        f"{now.strftime('%b %e %H:%M:%S')} web01 sshd[5000]: message repeated 3 times:"
        " [ Failed password for root from 198.51.100.9 port 40000 ssh2]",
        f"{now.strftime('%b %e %H:%M:%S')} web01 sshd[5001]: Accepted publickey for ops from"
        " 192.0.2.1 port 40001 ssh2: ED25519 SHA256:abc",
        f"{now.strftime('%b %e %H:%M:%S')} web01 CRON[5002]: pam_unix(cron:session):"
        " session opened for user root(uid=0) by (uid=0)",
    ]
    log.write_text("\n".join(lines) + "\n")
    probe = SecurityProbe(auth_log=log)
    obs = await one(probe, "sec.ssh_failed")
    assert obs.value == 11.0, obs  # 8 + a repeat of 3; the hour-old storm is not this interval
    assert status_of(TARGET, obs) is Status.WARN
    assert obs.facts["source"] == str(log)
    assert obs.facts["top_sources"] == "203.0.113.7 (4), 203.0.113.8 (4), 198.51.100.9 (3)"

    # Next interval: only what was appended since, here in rsyslog's RFC 3339 format.
    with log.open("a") as fh:
        fh.write("\n".join(sshd_lines(datetime.now(), 120, iso=True)) + "\n")
    obs = await one(probe, "sec.ssh_failed")
    assert obs.value == 120.0 and status_of(TARGET, obs) is Status.CRIT

    quiet = await one(probe, "sec.ssh_failed")
    assert quiet.value == 0.0 and status_of(TARGET, quiet) is Status.OK


async def test_failed_logins_without_any_source_is_unknown(tmp_path: Path) -> None:
    obs = await one(SecurityProbe(auth_log=tmp_path / "auth.log"), "sec.ssh_failed")
    assert obs.status is Status.UNKNOWN and "does not exist" in obs.summary
    if AUTH_LOG.exists():
        pytest.skip(f"{AUTH_LOG} exists on this host")
    obs = await one(SecurityProbe(journal_dirs=[tmp_path]), "sec.ssh_failed")
    assert obs.status is Status.UNKNOWN
    assert "no systemd journal files and no /var/log/auth.log" in obs.summary


async def test_baseline_survives_an_agent_restart(tmp_path: Path) -> None:
    cfg = AgentConfig.from_dict(
        {
            "site": "s",
            "agent": "a",
            "state_dir": str(tmp_path),
            "targets": [{"name": "host1", "class": "linux-server"}],
        }
    )
    outbox = Outbox(tmp_path / "outbox.sqlite", 1000)
    probes = Probes(cfg, outbox)
    [first] = await probes.for_method("local").collect(TARGET, {"sec.users"})
    assert first.value == "baseline"
    probes.save_state()
    await probes.close()
    outbox.close()

    outbox = Outbox(tmp_path / "outbox.sqlite", 1000)
    try:
        restarted = Probes(cfg, outbox)
        probe = restarted.for_method("local")
        assert isinstance(probe, LocalProbe)
        [again] = await probe.collect(TARGET, {"sec.users"})
        assert again.value == "unchanged", again
    finally:
        outbox.close()
