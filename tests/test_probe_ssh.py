"""SSH probe: configuration backup and change detection against recorded real devices.

The devices are Oxidized's recorded sessions (shared/fixtures/ssh, see SOURCES.md there)
replayed by tests/support/sshsim.py over real SSH; the last tests talk to a real OpenSSH sshd
started on loopback. Timeouts are short so the failure paths stay quick.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import paramiko
import pytest

from agent.config import POLLED_METHODS, SshConfig, TargetConfig, load_agent_config
from agent.config_backup import (
    MASK,
    clean_terminal,
    config_hash,
    mask,
    masked_diff,
    normalise,
)
from agent.evaluate import to_results
from agent.probes.ssh import (
    BACKUP,
    CHANGED,
    HOST_KEY,
    REACHABLE,
    VENDORS,
    SshProbe,
)
from agent.runner import Probes, check_all
from agent.scheduler import collect_deadline
from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from checks.wire import result_to_wire
from fieldmon.configfile import ConfigError

if TYPE_CHECKING:
    from tests.support.sshsim import SimFactory, SshSim

# Loaded as a plugin (not imported above) so that pytest can still rewrite its asserts.
pytest_plugins = ["tests.support.sshsim"]

ALL = frozenset({REACHABLE, HOST_KEY, BACKUP, CHANGED})
DEVICE_CLASS = load_catalogue()["snmp-device"]

C9200L = "ios#C9200L-24P-4G_17.09.04a#simulation.yaml"
C9800 = "ios#C9800-L-F-K9_17.06.05#simulation.yaml"
ASR920 = "ios#asr920_16.8.1b#simulation.yaml"
H3C = "h3c#5130-48G_7.1.070#simulation.yaml"
SRX = "junos#srx300_22.4#simulation.yaml"
SRX_SINGLE = "junos#srx300_22.4_wo_cluster#simulation.yaml"
RB5009 = "routeros#RB5009UPr+S+_7.18.2#simulation.yaml"
CHR = "routeros#CHR_7.16#simulation.yaml"
CHR_710 = "routeros#CHR_7.10.1#simulation.yaml"
L009 = "routeros#L009UiGS_7.15.2#simulation.yaml"
NVUE = "cumulus#MSN2010_5.9.2_nvue#custom_simulation.yaml"


@dataclass(frozen=True)
class Device:
    recording: str
    vendor: str
    #: The command whose reply is the configuration (a key of the recording).
    command: str
    #: A line the backup must contain.
    expect: str


DEVICES = {
    "ios-c9200l": Device(C9200L, "ios", "show running-config\n", "hostname LAB-SW123_9200L"),
    "comware-h3c5130": Device(
        H3C, "comware", "display current-configuration\n", " description VER-NIC2-[TRUNK]"
    ),
    "junos-srx300": Device(
        SRX, "junos", "show configuration | display omit\n", "version 22.4R3-S2.11;"
    ),
    "routeros-rb5009": Device(
        RB5009, "routeros", "/export show-sensitive\n", "add comment=defconf name=WAN"
    ),
    "routeros-chr716": Device(CHR, "routeros", "/export show-sensitive\n", "/interface ethernet"),
    "routeros-chr7101": Device(
        CHR_710, "routeros", "/export show-sensitive\n", "set always-allow-password-login=yes"
    ),
    "cumulus-nvue": Device(
        NVUE, "cumulus", "nv config show --color off\n", "    hostname: spine1-nyc2"
    ),
}

#: Planted dummy secrets of the recordings (SOURCES.md, "Anonymisation"): none may leave the
#: agent in a result.
SECRETS = {
    C9200L: ["SECRET_ENABLE", "SECRET_OXIDIZED", "AAAAAAAAAABBBBBBBBBB", "community public"],
    C9800: [
        "SECRET_REMOVED",
        "REMOVED_SECRET",
        "WLANSECR3T",
        "WLAN SECR3T",
        "7df35f90c92ecff2",
        "DOT1XPASSW0RD",
        "DOT1X PASSW0RD",
        "MGMTPASSW0RD",
        "MGMT PASSW0RD",
        "MGMTSECR3T",
        "MGMT SECR3T",
    ],
    ASR920: ["ABCDEFGH1234", "secret 5 password"],
    SRX: ["very-secret-encrypted-password", "CorrectHorseBattery", "FAKEHASHDATA"],
    SRX_SINGLE: ["very-secret-encrypted-password"],
    L009: ["password=password", "name=community", "trap-community=community"],
    NVUE: ["xxxxxxxxxxxxxxxx", "hashed-password: '*'"],
}
CONFIG_COMMAND = {
    C9200L: ("ios", "show running-config\n"),
    C9800: ("ios", "show running-config\n"),
    ASR920: ("ios", "show running-config\n"),
    SRX: ("junos", "show configuration | display omit\n"),
    SRX_SINGLE: ("junos", "show configuration | display omit\n"),
    L009: ("routeros", "/export show-sensitive\n"),
    NVUE: ("cumulus", "nv config show --color off\n"),
}


def ssh_target(port: int, vendor: str, known_hosts: Path, **ssh: Any) -> TargetConfig:
    settings: dict[str, Any] = {
        "vendor": vendor,
        "port": port,
        "username": "oxidized",
        "password": "test",
        "known_hosts": str(known_hosts),
        "timeout": 5,
    }
    settings.update(ssh)
    return TargetConfig.from_dict(
        {"name": "dev1", "class": "snmp-device", "address": "127.0.0.1", "ssh": settings}
    )


def trusting(sim: SshSim, path: Path) -> Path:
    path.write_text(sim.known_hosts_line(), encoding="ascii")
    return path


async def collect(
    probe: SshProbe, target: TargetConfig, checks: frozenset[str] = ALL
) -> dict[str, Result]:
    observations = await probe.collect(target, checks)
    return {r.check: r for r in to_results(target, DEVICE_CLASS, observations)}


def wire_text(results: list[Result]) -> str:
    return orjson.dumps([result_to_wire(r) for r in results]).decode()


@pytest.fixture
async def probe(tmp_path: Path) -> Any:
    p = SshProbe(tmp_path / "state")
    yield p
    await p.close()


@dataclass(frozen=True)
class OnDisk:
    text: str
    mode: int
    folder_mode: int
    latest: str
    latest_mode: int


def on_disk(backup: Result) -> OnDisk:
    """The backup file a ``config.backup`` result names, and its ``latest.cfg`` copy."""
    path = Path(backup.facts["backup_path"])
    latest = path.parent / "latest.cfg"
    return OnDisk(
        text=path.read_text(encoding="utf-8"),
        mode=stat.S_IMODE(path.stat().st_mode),
        folder_mode=stat.S_IMODE(path.parent.stat().st_mode),
        latest=latest.read_text(encoding="utf-8"),
        latest_mode=stat.S_IMODE(latest.stat().st_mode),
    )


def versions(probe: SshProbe, target: str = "dev1") -> list[Path]:
    folder = probe.store.folder(target)
    return sorted(p for p in folder.glob("*.cfg") if p.name != "latest.cfg")


# ---------------------------------------------------------------------------- plain text


@pytest.mark.parametrize(
    ("prompts", "vendor"),
    [
        ("ios#generic#prompt.yaml", "ios"),
        ("h3c#generic#prompt.yaml", "comware"),
        ("cumulus#generic#prompt.yaml", "cumulus"),
        ("linuxgeneric#generic#prompt.yaml", "cumulus"),
    ],
)
def test_prompt_patterns_accept_the_recorded_prompts(prompts: str, vendor: str) -> None:
    from tests.support.sshsim import Recording

    samples = Recording.prompt_samples(prompts)
    pattern = VENDORS[vendor].prompt
    assert pattern is not None
    for prompt in samples.get("pass", []) + samples.get("pass_with_expect", []):
        assert pattern.fullmatch(clean_terminal(prompt).strip()), prompt
    for prompt in samples.get("fail", []):
        assert not pattern.fullmatch(clean_terminal(prompt).strip()), prompt


@pytest.mark.parametrize("recording", sorted(SECRETS))
def test_masking_hides_every_planted_secret(recording: str) -> None:
    from tests.support.sshsim import Recording

    vendor, command = CONFIG_COMMAND[recording]
    text = clean_terminal(Recording.load(recording).reply(command))
    masked = mask(text, VENDORS[vendor].dialect)
    assert masked.count("\n") == text.count("\n")
    for secret in SECRETS[recording]:
        assert secret in text, "the recording should contain the planted secret"
        assert secret not in masked
    assert MASK in masked


def test_masking_keeps_ordinary_lines() -> None:
    dialect = VENDORS["ios"].dialect
    for line in (
        "service password-encryption",
        "security passwords min-length 8",
        " neighbor 10.0.0.1 send-community both",
        "set always-allow-password-login=yes",
        "snmp-server host 10.42.0.36 vrf Mgmt-vrf informs version 3 auth oxidized  bfd",
    ):
        assert mask(line, dialect) == line


def test_normal_form_ignores_volatile_lines() -> None:
    ios = VENDORS["ios"].dialect
    a = "!\n! Last configuration change at 09:37:40 CEST Tue Aug 20 2024 by oxidized\nhostname a\n"
    b = "!\n! Last configuration change at 10:00:00 CEST Wed Aug 21 2024 by admin\nhostname a\n"
    b += "ntp clock-period 36028797\n\n"
    assert config_hash(normalise(a, ios)) == config_hash(normalise(b, ios))
    routeros = VENDORS["routeros"].dialect
    assert normalise("# 2024-10-25 06:08:35 by RouterOS 7.10.1\n/ip\n", routeros) == normalise(
        "# 2025-01-01 00:00:01 by RouterOS 7.10.1\r\n/ip\r\n# poe-out status: short_circuit\n",
        routeros,
    )
    junos = VENDORS["junos"].dialect
    assert normalise("## Last commit: 2024-12-06 11:41:05 UTC by root\nx;\n", junos) == "x;\n"
    vrp = VENDORS["vrp"].dialect
    assert normalise("2026-11-23 10:00:00.123 +08:00\n#\nsysname A\n", vrp) == "#\nsysname A\n"
    assert normalise("hostname a\n", ios) != normalise("hostname b\n", ios)


def test_diff_compares_real_text_and_shows_it_masked() -> None:
    ios = VENDORS["ios"].dialect
    old = "hostname a\n!\nenable secret 9 $9$OLDSECRET\n!\nend\n"
    new = "hostname a\n!\nenable secret 9 $9$NEWSECRET\n!\nend\n"
    diff = masked_diff(old, new, ios, "old.cfg", "new.cfg")
    assert (diff.added, diff.removed) == (1, 1)
    assert "-enable secret 9 <masked>" in diff.text
    assert "+enable secret 9 <masked>" in diff.text
    assert "SECRET" not in diff.text
    assert masked_diff(old, old, ios, "a", "b").text == ""


# --------------------------------------------------------------- recorded devices over SSH


@pytest.mark.parametrize("device", sorted(DEVICES), ids=str)
async def test_backup_from_recorded_device_is_stable(
    device: str, ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    spec = DEVICES[device]
    sim = ssh_sim(spec.recording, crlf=True)
    target = ssh_target(sim.port, spec.vendor, trusting(sim, tmp_path / "known_hosts"))

    first = await collect(probe, target)
    assert first[REACHABLE].status is Status.OK, first[REACHABLE].summary
    assert first[HOST_KEY].value == "trusted"
    backup = first[BACKUP]
    assert backup.status is Status.OK, backup.summary
    assert backup.value == backup.facts["config_hash"]
    assert len(str(backup.value)) == 64
    assert backup.facts["vendor"] == spec.vendor
    assert int(backup.facts["config_lines"]) > 0
    assert first[CHANGED].value == "baseline"
    assert first[CHANGED].status is Status.OK

    path = Path(backup.facts["backup_path"])
    disk = on_disk(backup)
    assert spec.expect + "\n" in disk.text
    assert (disk.mode, disk.folder_mode, disk.latest_mode) == (0o600, 0o700, 0o600)
    assert disk.latest == disk.text
    assert "\r" not in disk.text and "\x1b" not in disk.text

    second = await collect(probe, target)
    assert second[BACKUP].value == backup.value, "an unchanged device must keep its hash"
    assert second[CHANGED].value == "unchanged"
    assert second[CHANGED].status is Status.OK
    assert versions(probe) == [path]
    assert sim.errors == []
    vendor = VENDORS[spec.vendor]
    if vendor.mode == "shell":
        assert sim.received[: len(vendor.setup)] == list(vendor.setup)
        assert sim.ptys and sim.ptys[0] == "vt100"


@pytest.mark.parametrize(
    ("recording", "vendor", "command", "old", "new"),
    [
        (
            C9200L,
            "ios",
            "show running-config\n",
            "09:37:40 CEST Tue Aug 20",
            "11:11:11 CET Fri Nov 1",
        ),
        (CHR, "routeros", "/export show-sensitive\n", "# 2025-05-30 11:07", "# 2026-01-01 00:00"),
        (
            SRX,
            "junos",
            "show configuration | display omit\n",
            "2024-12-06 11:41",
            "2026-01-02 03:04",
        ),
    ],
    ids=["ios-last-change", "routeros-export-date", "junos-last-commit"],
)
async def test_volatile_lines_do_not_count_as_a_change(
    recording: str,
    vendor: str,
    command: str,
    old: str,
    new: str,
    ssh_sim: SimFactory,
    probe: SshProbe,
    tmp_path: Path,
) -> None:
    sim = ssh_sim(recording)
    target = ssh_target(sim.port, vendor, trusting(sim, tmp_path / "known_hosts"))
    first = await collect(probe, target, frozenset({BACKUP, CHANGED}))
    sim.recording.replace(command, old, new)
    second = await collect(probe, target, frozenset({BACKUP, CHANGED}))
    assert second[BACKUP].value == first[BACKUP].value
    assert second[CHANGED].value == "unchanged"
    assert len(versions(probe)) == 1


async def test_changed_configuration_warns_with_a_diff(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L, crlf=True)
    target = ssh_target(sim.port, "ios", trusting(sim, tmp_path / "known_hosts"))
    first = await collect(probe, target, frozenset({BACKUP, CHANGED}))
    sim.recording.replace("show running-config\n", " description oxidized two", " description CORE")

    second = await collect(probe, target, frozenset({BACKUP, CHANGED}))
    changed = second[CHANGED]
    assert changed.status is Status.WARN
    assert changed.value == "changed"
    diff = changed.facts["diff"]
    assert "- description oxidized two\n" in diff
    assert "+ description CORE\n" in diff
    assert " interface GigabitEthernet1/0/2\n" in diff  # context
    assert "+ description CORE" in changed.summary
    assert (changed.facts["lines_added"], changed.facts["lines_removed"]) == ("1", "1")
    assert changed.facts["previous_hash"] == first[BACKUP].value
    assert second[BACKUP].value != first[BACKUP].value
    assert len(changed.facts["diff"]) <= 4096
    new_path = Path(second[BACKUP].facts["backup_path"])
    assert versions(probe) == [Path(first[BACKUP].facts["backup_path"]), new_path]
    assert " description CORE\n" in on_disk(second[BACKUP]).latest

    third = await collect(probe, target, frozenset({CHANGED}))
    assert third[CHANGED].value == "unchanged"
    assert third[CHANGED].status is Status.OK


async def test_large_change_keeps_the_diff_bounded(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(ASR920)
    target = ssh_target(sim.port, "ios", trusting(sim, tmp_path / "known_hosts"))
    await collect(probe, target, frozenset({CHANGED}))
    sim.recording.replace("show running-config\n", "\n!\n", "\n! edited\n")
    result = (await collect(probe, target, frozenset({CHANGED})))[CHANGED]
    assert result.status is Status.WARN
    assert result.facts["diff_truncated"] == "true"
    assert len(result.facts["diff"]) <= 3600
    assert "more diff lines not shown" in result.facts["diff"]
    assert len(result.summary) <= 1024
    assert "ABCDEFGH1234" not in wire_text([result])


@pytest.mark.parametrize(
    ("recording", "vendor", "command", "edits"),
    [
        (
            C9200L,
            "ios",
            "show running-config\n",
            [
                ("$9$xxxSECRET_ENABLExxxxxxxxxxxxxx", "$9$yyyROTATED_ENABLEyyy"),
                ("community public RW", "community n3wc0mmunity RW"),
                (
                    "10.10.10.10 server-key AAAAAAAAAABBBBBBBBBB",
                    "10.10.10.10 server-key NEWRADIUSKEY",
                ),
            ],
        ),
        (SRX, "junos", "show configuration | display omit\n", [("CorrectHorse", "Tr0ub4dor")]),
        (L009, "routeros", "/export show-sensitive\n", [("password=password", "password=n3wpass")]),
        (NVUE, "cumulus", "nv config show --color off\n", [("'*'", "'$6$newhash'")]),
    ],
    ids=["ios", "junos", "routeros", "nvue"],
)
async def test_secrets_never_leave_the_agent(
    recording: str,
    vendor: str,
    command: str,
    edits: list[tuple[str, str]],
    ssh_sim: SimFactory,
    probe: SshProbe,
    tmp_path: Path,
) -> None:
    sim = ssh_sim(recording)
    target = ssh_target(sim.port, vendor, trusting(sim, tmp_path / "known_hosts"))
    results = list((await collect(probe, target)).values())
    for old, new in edits:
        sim.recording.replace(command, old, new)
    second = await collect(probe, target)
    results += second.values()
    assert second[CHANGED].status is Status.WARN
    assert MASK in second[CHANGED].facts["diff"]

    published = wire_text(results)
    planted = SECRETS[recording] + [new for _, new in edits]
    for secret in planted:
        assert secret not in published, secret
    # The backup itself keeps them: it is what gets restored.
    disk = on_disk(second[BACKUP])
    for _, new in edits:
        assert new in disk.text
    assert disk.mode == 0o600


async def test_device_refusing_the_command_is_unknown_not_a_backup(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L)
    cmd = "show running-config\n"
    sim.recording.replace(
        cmd,
        sim.recording.reply(cmd),
        "show running-config\n% Authorization failed.\nLAB-SW123_9200L#",
    )
    target = ssh_target(sim.port, "ios", trusting(sim, tmp_path / "known_hosts"))
    results = await collect(probe, target)
    assert results[REACHABLE].status is Status.OK
    for check in (BACKUP, CHANGED):
        assert results[check].status is Status.UNKNOWN
        assert "Authorization failed" in results[check].summary
    assert versions(probe) == []


# ------------------------------------------------------------------------------- host keys


async def test_unknown_host_key_is_refused(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L)
    target = ssh_target(sim.port, "ios", tmp_path / "missing_known_hosts")
    results = await collect(probe, target, frozenset({REACHABLE, BACKUP, CHANGED}))
    host_key = results[HOST_KEY]  # reported although not asked for: it is the finding
    assert host_key.status is Status.WARN
    assert host_key.value == "unknown"
    assert DEVICE_CLASS.item(HOST_KEY) is not None
    assert DEVICE_CLASS.item(HOST_KEY).category == "security"  # type: ignore[union-attr]
    assert host_key.facts["fingerprint"] == sim.host_key.fingerprint
    for check in (REACHABLE, BACKUP, CHANGED):
        assert results[check].status is Status.UNKNOWN
        assert "not in" in results[check].summary and "host key" in results[check].summary
    assert sim.logins == [] and sim.received == [], "nothing may be sent to an unknown host"
    assert not (tmp_path / "missing_known_hosts").exists()


async def test_changed_host_key_is_refused_as_a_security_finding(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L)
    other = paramiko.ECDSAKey.generate()
    known = tmp_path / "known_hosts"
    known.write_text(sim.known_hosts_line(other), encoding="ascii")
    target = ssh_target(sim.port, "ios", known)
    results = await collect(probe, target)
    host_key = results[HOST_KEY]
    assert host_key.status is Status.CRIT
    assert host_key.value == "changed"
    assert "CHANGED" in host_key.summary
    assert host_key.facts["expected_fingerprint"] == other.fingerprint
    assert host_key.facts["fingerprint"] == sim.host_key.fingerprint
    for check in (REACHABLE, BACKUP, CHANGED):
        assert results[check].status is Status.UNKNOWN
        assert "CHANGED" in results[check].summary
    assert sim.logins == [] and sim.received == []
    # Trust on first use is for the first contact only, never for a changed key.
    tofu = ssh_target(sim.port, "ios", known, accept_new_host_key=True)
    assert (await collect(probe, tofu))[HOST_KEY].value == "changed"
    assert sim.logins == []
    assert known.read_text() == sim.known_hosts_line(other), "known_hosts must stay as it was"


async def test_accept_new_host_key_records_it_once(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(SRX)
    known = tmp_path / "sub" / "known_hosts"
    target = ssh_target(sim.port, "junos", known, accept_new_host_key=True)
    first = await collect(probe, target)
    assert first[HOST_KEY].value == "recorded"
    assert first[HOST_KEY].status is Status.OK
    assert first[BACKUP].status is Status.OK
    assert known.read_text() == sim.known_hosts_line()
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    second = await collect(probe, target)
    assert second[HOST_KEY].value == "trusted"
    assert known.read_text() == sim.known_hosts_line()


async def test_default_known_hosts_lives_in_the_state_dir(
    ssh_sim: SimFactory, tmp_path: Path
) -> None:
    sim = ssh_sim(CHR)
    state = tmp_path / "state"
    target = TargetConfig.from_dict(
        {
            "name": "chr",
            "class": "snmp-device",
            "address": "127.0.0.1",
            "ssh": {
                "vendor": "routeros",
                "port": sim.port,
                "username": "admin",
                "password": "x",
                "accept_new_host_key": True,
            },
        }
    )
    probe = SshProbe(state)
    try:
        results = await collect(probe, target)
    finally:
        await probe.close()
    assert results[HOST_KEY].value == "recorded"
    assert (state / "ssh_known_hosts").read_text() == sim.known_hosts_line()


# ---------------------------------------------------------------------------- failures


async def test_wrong_password_is_auth_failed(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(H3C, password="right")
    target = ssh_target(sim.port, "comware", trusting(sim, tmp_path / "kh"), password="wrong")
    results = await collect(probe, target)
    assert results[REACHABLE].value == "auth failed"
    assert results[REACHABLE].status is Status.CRIT
    assert "wrong" not in results[REACHABLE].summary
    assert results[HOST_KEY].value == "trusted"
    assert results[BACKUP].status is Status.UNKNOWN
    assert "refused" in results[BACKUP].summary


async def test_closed_port_is_down(probe: SshProbe, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = ssh_target(port, "ios", tmp_path / "kh", timeout=1)
    started = time.monotonic()
    results = await collect(probe, target)
    assert time.monotonic() - started < 5
    assert results[REACHABLE].value == "down"
    assert results[REACHABLE].status is Status.CRIT
    assert results[BACKUP].status is Status.UNKNOWN
    assert results[HOST_KEY].status is Status.UNKNOWN


async def test_silent_device_times_out_without_blocking_the_loop(
    ssh_sim: SimFactory, probe: SshProbe, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L, stall=True)
    target = ssh_target(sim.port, "ios", trusting(sim, tmp_path / "kh"), timeout=0.5)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    results = await collect(probe, target)
    elapsed = time.monotonic() - started
    done.set()
    await task
    assert elapsed < target.ssh.session_budget + 1  # type: ignore[union-attr]
    assert ticks >= 5, "the event loop must keep running while a session waits"
    assert results[REACHABLE].value == "up"
    assert results[BACKUP].status is Status.UNKNOWN
    assert "no prompt" in results[BACKUP].summary


async def test_runaway_session_is_cut_off_at_the_budget(
    ssh_sim: SimFactory, tmp_path: Path
) -> None:
    sim = ssh_sim(C9200L, stall=True)
    target = ssh_target(sim.port, "ios", trusting(sim, tmp_path / "kh"), timeout=0.5)
    probe = SshProbe(tmp_path / "state")
    try:
        # Cancelled from outside (the scheduler's deadline): the session is hung up at once.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(probe.collect(target, ALL), 0.3)
    finally:
        await probe.close()


# ----------------------------------------------------------------------- wiring and config


def test_config_and_runner_wiring(tmp_path: Path) -> None:
    snmp_items = [i.id for i in DEVICE_CLASS.items if i.method == "snmp"]
    data = {
        "site": "s1",
        "agent": "a1",
        "state_dir": str(tmp_path),
        "targets": [
            {
                "name": "sw1",
                "class": "snmp-device",
                "address": "192.0.2.1",
                "disabled": snmp_items,
                "ssh": {"vendor": "ios", "username": "backup", "password": "pw", "timeout": 20},
            }
        ],
    }
    cfg = load_agent_config(None, data)
    target = cfg.targets[0]
    assert target.ssh is not None
    assert "ssh" in target.methods() and "ssh" in POLLED_METHODS
    assert target.ssh.port == 22 and target.ssh.accept_new_host_key is False
    assert "pw" not in repr(target.ssh)
    assert collect_deadline(target) > target.ssh.session_budget
    assert isinstance(Probes(cfg, None).for_method("ssh"), SshProbe)

    for bad, why in [
        ({"vendor": "ios", "username": "u"}, "password"),
        ({"vendor": "ios", "username": "u", "password": "p", "files": ["/etc/x"]}, "files"),
        ({"vendor": "linux", "username": "u", "password": "p", "files": ["etc/x"]}, "absolute"),
        ({"vendor": "nxos", "username": "u", "password": "p"}, "vendor"),
    ]:
        data["targets"][0]["ssh"] = bad  # type: ignore[index]
        with pytest.raises(ConfigError, match=why):
            load_agent_config(None, data)
    data["targets"][0]["ssh"] = {"vendor": "ios", "username": "u", "password": "p"}  # type: ignore[index]
    del data["targets"][0]["address"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        load_agent_config(None, data)
    assert SshConfig(vendor="linux", username="u", key_file=Path("/k")).files is None


async def test_agent_check_runs_the_ssh_items(ssh_sim: SimFactory, tmp_path: Path) -> None:
    sim = ssh_sim(SRX_SINGLE)
    known = trusting(sim, tmp_path / "kh")
    data = {
        "site": "s1",
        "agent": "a1",
        "state_dir": str(tmp_path / "state"),
        "targets": [
            {
                "name": "fw1",
                "class": "snmp-device",
                "address": "127.0.0.1",
                "disabled": [i.id for i in DEVICE_CLASS.items if i.method == "snmp"],
                "ssh": {
                    "vendor": "junos",
                    "port": sim.port,
                    "username": "oxidized",
                    "password": "x",
                    "known_hosts": str(known),
                },
            }
        ],
    }
    results = {r.check: r for r in await check_all(load_agent_config(None, data))}
    assert set(results) >= ALL
    assert results[BACKUP].status is Status.OK
    assert results[REACHABLE].facts.get("address") == "127.0.0.1"
    assert (tmp_path / "state" / "config_backups" / "fw1" / "latest.cfg").is_file()


# ----------------------------------------------------------------------- real OpenSSH


@dataclass(frozen=True)
class Sshd:
    port: int
    host_pub: Path
    user_key: Path
    user: str


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fieldmon-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on loopback with its own config, host key and test user key."""
    binary = Path("/usr/sbin/sshd")
    if not binary.exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server is not installed")
    tmp = tmp_path_factory.mktemp("sshd")
    host_key, user_key = tmp / "host_ed25519", tmp / "user_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    (tmp / "authorized_keys").write_text((tmp / "user_ed25519.pub").read_text())
    user = getpass.getuser()
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        # sshd as root insists on its privilege separation directory (the Debian service
        # creates it at start); it is empty and lives in /run.
        Path("/run/sshd").mkdir(mode=0o755)
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {tmp}/sshd.pid\n"
        f"AuthorizedKeysFile {tmp}/authorized_keys\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n"
        "LogLevel VERBOSE\n"
    )
    log = (tmp / "sshd.log").open("wb")
    proc = subprocess.Popen([str(binary), "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(tmp / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not start listening")
                time.sleep(0.05)
        yield Sshd(port, tmp / "host_ed25519.pub", user_key, user)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def sshd_target(server: Sshd, known_hosts: Path, **ssh: Any) -> TargetConfig:
    settings: dict[str, Any] = {
        "vendor": "linux",
        "port": server.port,
        "username": server.user,
        "key_file": str(server.user_key),
        "known_hosts": str(known_hosts),
        "files": ["/etc/hostname"],
        "timeout": 5,
    }
    settings.update(ssh)
    return TargetConfig.from_dict(
        {"name": "host1", "class": "snmp-device", "address": "127.0.0.1", "ssh": settings}
    )


def _host_line(server: Sshd) -> str:
    kind, blob = server.host_pub.read_text().split()[:2]
    return f"[127.0.0.1]:{server.port} {kind} {blob}\n"


async def test_real_sshd_backs_up_linux_files(sshd: Sshd, probe: SshProbe, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(_host_line(sshd))
    results = await collect(probe, sshd_target(sshd, known))
    assert results[REACHABLE].status is Status.OK
    assert "OpenSSH" in results[REACHABLE].facts["server_version"]
    assert results[HOST_KEY].value == "trusted"
    backup = results[BACKUP]
    assert backup.status is Status.OK, backup.summary
    hostname = await asyncio.to_thread(Path("/etc/hostname").read_text)
    disk = on_disk(backup)
    assert disk.text == hostname
    assert disk.mode == 0o600

    two_files = sshd_target(sshd, known, files=["/etc/hostname", "/nonexistent/fieldmon"])
    again = await collect(probe, two_files, frozenset({BACKUP, CHANGED}))
    text = on_disk(again[BACKUP]).text
    assert text.startswith("### /etc/hostname\n" + hostname)
    assert "### /nonexistent/fieldmon\n# not readable:" in text
    assert again[CHANGED].status is Status.WARN


async def test_real_sshd_with_a_wrong_host_key_is_refused(
    sshd: Sshd, probe: SshProbe, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    other = tmp_path / "other_ed25519"
    _keygen(other)
    kind, blob = (tmp_path / "other_ed25519.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    results = await collect(probe, sshd_target(sshd, known))
    assert results[HOST_KEY].value == "changed"
    assert results[HOST_KEY].status is Status.CRIT
    assert DEVICE_CLASS.item(HOST_KEY).category == "security"  # type: ignore[union-attr]
    for check in (REACHABLE, BACKUP, CHANGED):
        assert results[check].status is Status.UNKNOWN
        assert "host key" in results[check].summary
    assert versions(probe, "host1") == []


async def test_real_sshd_accept_new_host_key_records_it(
    sshd: Sshd, probe: SshProbe, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    target = sshd_target(sshd, known, accept_new_host_key=True)
    first = await collect(probe, target)
    assert first[HOST_KEY].value == "recorded"
    assert first[BACKUP].status is Status.OK
    assert known.read_text() == _host_line(sshd)
    second = await collect(probe, target)
    assert second[HOST_KEY].value == "trusted"
    # OpenSSH's own client accepts what was recorded.
    check = await asyncio.to_thread(
        subprocess.run,
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "ssh-ed25519" in check.stdout


def test_fixture_folder_is_present() -> None:
    from tests.support.sshsim import fixtures_dir

    assert any(fixtures_dir().glob("*#simulation.yaml"))
