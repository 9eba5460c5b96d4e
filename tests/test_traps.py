"""The SNMP trap and inform receiver, fed by net-snmp's own ``snmptrap`` / ``snmpinform``.

Real senders on loopback, not hand-built packets: what the receiver must survive in the field
is what net-snmp (and the device agents built on it) actually put on the wire. Every OID is
numeric and ``MIBS=""`` keeps net-snmp from looking for MIB files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, TargetConfig, TrapsConfig, load_agent_config
from agent.probes import snmp_community as community
from agent.probes.snmp import SnmpProbe
from agent.probes.snmp_community import PROBED, OwnProbes
from agent.traps import (
    APC_ON_BATTERY,
    AUTH_FAILURE,
    COLD_START,
    DAHUA_ACTION,
    DAHUA_CURRENT_TIME,
    DAHUA_LOGIC_NO,
    DAHUA_STORAGE_FAILURE,
    DAHUA_STORAGE_SMART,
    DAHUA_VIDEO_BLIND,
    DAHUA_VIDEO_BLIND_INDEX,
    DAHUA_VIDEO_LOSS,
    DAHUA_VIDEO_LOSS_INDEX,
    DAHUA_VIDEO_MOTION,
    IF_INDEX,
    LINK_DOWN,
    LINK_UP,
    Notification,
    TrapReceiver,
    interpret,
)
from checks.catalogue import CatalogueError, load_catalogue, parse_class
from checks.result import Result
from checks.status import Status
from fieldmon.configfile import ConfigError
from tests.support.broker import Broker
from tests.support.configs import agent_toml, collector_toml
from tests.support.procs import Proc, http_json, wait_for
from tests.support.snmpd import Snmpd, SnmpdUser
from tests.support.snmpsim import SnmpSim, free_udp_port, recordings_dir

COMMUNITY = "fm-trap-community"
V3_USER, V3_AUTH, V3_PRIV = "fm-v3", "fm-auth-key-1", "fm-priv-key-1"
#: The snmpEngineID the test's v3 *trap* sender claims (``snmptrap -e``).
SENDER_ENGINE = "8000000001020304"

IF_NAME_3 = "1.3.6.1.2.1.31.1.1.1.1.3"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN_3 = "1.3.6.1.2.1.2.2.1.7.3"
IF_OPER_3 = "1.3.6.1.2.1.2.2.1.8.3"
#: linkDown on port 3 as a switch sends it: ifIndex, ifAdminStatus up, ifOperStatus down, ifName.
PORT3_DOWN = [f"{IF_INDEX}.3", "i", "3", IF_ADMIN_3, "i", "1", IF_OPER_3, "i", "2"]
PORT3_NAME = [IF_NAME_3, "s", "GigabitEthernet0/3"]


# ---------------------------------------------------------------------------------- helpers


def snmp_env(tmp: Path) -> dict[str, str]:
    """net-snmp with no MIBs and no system or user config, state kept in the test's folder."""
    return dict(
        os.environ,
        MIBS="",
        SNMPCONFPATH=str(tmp),
        SNMP_PERSISTENT_DIR=str(tmp / "net-snmp"),
        HOME=str(tmp),
    )


async def run(tmp: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=snmp_env(tmp),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def v2c(
    port: int, oid: str, *varbinds: str, community: str = COMMUNITY, source: str = ""
) -> list[str]:
    """``snmptrap`` v2c to the receiver; ``source`` binds the sender to another address."""
    opts = [f"--clientaddr={source}"] if source else []
    return ["snmptrap", *opts, "-v", "2c", "-c", community, f"127.0.0.1:{port}", "", oid, *varbinds]


def v3(kind: str, port: int, oid: str, *opts: str) -> list[str]:
    return [kind, "-v", "3", "-u", V3_USER, *opts, f"127.0.0.1:{port}", "", oid]


AUTH_PRIV = ["-l", "authPriv", "-a", "SHA", "-A", V3_AUTH, "-x", "AES", "-X", V3_PRIV]


def target(
    name: str, address: str, device_class: str = "snmp-device", **extra: Any
) -> TargetConfig:
    return TargetConfig.from_dict(
        {
            "name": name,
            "class": device_class,
            "address": address,
            "snmp": {"community": "public"},
            **extra,
        }
    )


def traps_config(port: int, **extra: Any) -> TrapsConfig:
    data: dict[str, Any] = {
        "listen": "127.0.0.1",
        "port": port,
        "communities": [COMMUNITY],
        "users": [
            {
                "user": V3_USER,
                "auth_protocol": "sha",
                "auth_key": V3_AUTH,
                "priv_protocol": "aes",
                "priv_key": V3_PRIV,
                "engine_ids": [SENDER_ENGINE],
            }
        ],
    }
    data.update(extra)
    return TrapsConfig.from_dict(data)


class Receiver:
    """A started receiver on a free loopback port and the results it produced.

    It reads its own :class:`OwnProbes` registry unless given one, so default-community probes
    other tests of the same session sent to 127.0.0.1 cannot hide its authenticationFailure
    traps; the tests of that feature pass the agent's shared :data:`PROBED` explicitly.
    """

    def __init__(
        self,
        tmp: Path,
        targets: Sequence[TargetConfig] | None = None,
        own_probes: OwnProbes | None = None,
    ) -> None:
        self.tmp = tmp
        self.results: list[Result] = []
        self.arrived = asyncio.Event()
        self.rx = TrapReceiver(
            traps_config(free_udp_port()),
            [target("sw1", "127.0.0.1")] if targets is None else targets,
            load_catalogue(),
            self.sink,
            own_probes=OwnProbes() if own_probes is None else own_probes,
        )

    def sink(self, results: Sequence[Result]) -> None:
        self.results.extend(results)
        self.arrived.set()

    @property
    def port(self) -> int:
        return self.rx.address[1]

    async def send(self, *args: str) -> tuple[int, str]:
        return await run(self.tmp, *args)

    async def wait(self, count: int) -> list[Result]:
        """The results once there are ``count`` of them (5 s at most)."""
        async with asyncio.timeout(5):
            while len(self.results) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.results

    async def settle(self, seconds: float = 0.3) -> None:
        """Give datagrams that must produce nothing the time to be processed."""
        await asyncio.sleep(seconds)

    def of(self, check: str) -> list[Result]:
        return [r for r in self.results if r.check == check]


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    rx = Receiver(tmp_path)
    await rx.rx.start()
    try:
        yield rx
    finally:
        await rx.rx.stop()


# ------------------------------------------------------------------------- v1/v2c over UDP


async def test_link_down_then_up_is_crit_then_ok_on_the_same_item(receiver: Receiver) -> None:
    rc, out = await receiver.send(*v2c(receiver.port, LINK_DOWN, *PORT3_DOWN, *PORT3_NAME))
    assert rc == 0, out
    [down] = await receiver.wait(1)
    assert (down.target, down.target_class, down.check) == ("sw1", "snmp-device", "trap.link")
    assert (down.item, down.status, down.value) == ("GigabitEthernet0/3", Status.CRIT, "down")
    assert "GigabitEthernet0/3: link down" in down.summary
    assert down.facts["source"] == "127.0.0.1" and down.facts["trap_oid"] == LINK_DOWN
    assert down.facts["if_index"] == "3" and down.facts["security"] == "v2c"

    rc, out = await receiver.send(
        *v2c(receiver.port, LINK_UP, f"{IF_INDEX}.3", "i", "3", *PORT3_NAME)
    )
    assert rc == 0, out
    up = (await receiver.wait(2))[1]
    assert (up.check, up.item, up.status, up.value) == ("trap.link", down.item, Status.OK, "up")
    assert receiver.rx.stats()["results"] == 2


async def test_restart_and_authentication_failure(receiver: Receiver) -> None:
    assert (await receiver.send(*v2c(receiver.port, COLD_START)))[0] == 0
    assert (await receiver.send(*v2c(receiver.port, AUTH_FAILURE)))[0] == 0
    reboot, auth = await receiver.wait(2)
    assert (reboot.check, reboot.status, reboot.value) == ("trap.reboot", Status.CRIT, "coldStart")
    assert (auth.check, auth.status) == ("trap.auth_failure", Status.CRIT)


async def test_apc_on_battery_v1_trap_then_power_restored(receiver: Receiver) -> None:
    # APC network cards send SNMPv1 traps: enterprise apc (318), specific 5 = upsOnBattery.
    v1 = ["snmptrap", "-v", "1", "-c", COMMUNITY, f"127.0.0.1:{receiver.port}"]
    assert (await receiver.send(*v1, "1.3.6.1.4.1.318", "127.0.0.1", "6", "5", ""))[0] == 0
    [battery] = await receiver.wait(1)
    assert (battery.check, battery.status, battery.value) == (
        "trap.power",
        Status.CRIT,
        "on battery",
    )
    assert battery.facts["trap_oid"] == APC_ON_BATTERY and battery.facts["security"] == "v1"
    # pysnmp adds snmpTrapCommunity when it converts a v1 trap: the secret must not travel on.
    assert not any(COMMUNITY in value for value in battery.facts.values())
    assert (await receiver.send(*v2c(receiver.port, "1.3.6.1.4.1.318.0.9")))[0] == 0
    restored = (await receiver.wait(2))[1]
    assert (restored.check, restored.status, restored.value) == ("trap.power", Status.OK, "mains")


async def test_v2c_inform_is_acknowledged_and_a_wrong_community_is_not(receiver: Receiver) -> None:
    inform = ["snmpinform", "-v", "2c", "-t", "1", "-r", "0"]
    rc, out = await receiver.send(
        *inform, "-c", COMMUNITY, f"127.0.0.1:{receiver.port}", "", LINK_DOWN, *PORT3_DOWN
    )
    assert rc == 0, out
    [result] = await receiver.wait(1)
    assert result.facts["pdu"] == "inform" and result.item == "ifIndex 3"

    rc, _ = await receiver.send(
        *inform, "-c", "guessed", f"127.0.0.1:{receiver.port}", "", COLD_START
    )
    assert rc != 0, "an inform with a wrong community must not be acknowledged"
    rc, _ = await receiver.send(*v2c(receiver.port, COLD_START, community="public"))
    await receiver.settle()
    assert len(receiver.results) == 1
    stats = receiver.rx.stats()
    assert stats["bad_community"] == 2 and stats["rejected"] == 2 and stats["received"] == 1


# ---------------------------------------------------------------------------------- SNMPv3


async def test_v3_authpriv_trap_and_inform_accepted_bad_ones_rejected_and_counted(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = receiver.port
    # A trap is keyed to the sender's engine ID, which the user entry lists.
    rc, out = await receiver.send(
        *v3("snmptrap", port, COLD_START, *AUTH_PRIV, "-e", SENDER_ENGINE)
    )
    assert rc == 0, out
    # An inform is keyed to the receiver's engine ID, which snmpinform discovers by itself.
    rc, out = await receiver.send(
        *v3("snmpinform", port, LINK_UP, *AUTH_PRIV, "-t", "2", "-r", "1")
    )
    assert rc == 0, out
    trap, inform = await receiver.wait(2)
    assert trap.check == "trap.reboot" and trap.facts["security"] == f"v3 user {V3_USER}"
    assert inform.check == "trap.link" and inform.facts["pdu"] == "inform"

    wrong_key = ["-l", "authPriv", "-a", "SHA", "-A", "not-the-key", "-x", "AES", "-X", V3_PRIV]
    rc, _ = await receiver.send(*v3("snmptrap", port, COLD_START, *wrong_key, "-e", SENDER_ENGINE))
    rc_inform, _ = await receiver.send(
        *v3("snmpinform", port, COLD_START, *wrong_key, "-t", "1", "-r", "0")
    )
    assert rc_inform != 0, "an inform with a wrong key must not be acknowledged"
    # The user's name alone, without its keys: pysnmp would accept it, the receiver must not.
    await receiver.send(
        *v3("snmptrap", port, COLD_START, "-l", "noAuthNoPriv", "-e", SENDER_ENGINE)
    )
    # Right keys, but from an engine nobody registered for traps.
    await receiver.send(*v3("snmptrap", port, COLD_START, *AUTH_PRIV, "-e", "80000000010a0b0c0d"))
    await receiver.settle()

    assert len(receiver.results) == 2, [r.key for r in receiver.results]
    stats = receiver.rx.stats()
    assert stats["wrong_digest"] == 2
    assert stats["security_level"] == 1
    assert stats["unknown_user"] == 1
    assert stats["rejected"] == 4 and stats["received"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rejected (wrong digest)" in m for m in warnings)
    assert sum("rejected (wrong digest)" in m for m in warnings) == 1, "logged once per reason"


# ------------------------------------------------------------------------- hostile senders


async def test_unknown_source_is_counted_and_logged_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):  # 127.0.0.2 is loopback too, but no target has that address
        rc, out = await receiver.send(
            *v2c(receiver.port, LINK_DOWN, *PORT3_DOWN, source="127.0.0.2")
        )
        assert rc == 0, out
    await receiver.settle()
    assert receiver.results == []
    assert receiver.rx.stats()["unknown_source"] == 3
    logged = [r for r in caplog.records if "no target has this address" in r.getMessage()]
    assert len(logged) == 1 and "127.0.0.2" in logged[0].getMessage()
    # The known device is still served.
    assert (await receiver.send(*v2c(receiver.port, COLD_START)))[0] == 0
    await receiver.wait(1)


async def test_garbage_datagrams_do_not_kill_the_receiver(receiver: Receiver) -> None:
    junk = [
        b"",
        b"\x30\x03\x02\x01",  # truncated BER
        b"\x30\x82\xff\xff" + b"\x00" * 40,  # length far beyond the datagram
        bytes(range(256)),
        os.urandom(1400),
        b"\x30\x0c\x02\x01\x01\x04\x00\xa7\x05\x02\x01\x01\x30\x00",  # v2c trap, broken PDU
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in junk:
            sock.sendto(datagram, ("127.0.0.1", receiver.port))
    await receiver.settle()
    assert receiver.results == []
    assert (await receiver.send(*v2c(receiver.port, COLD_START)))[0] == 0
    [result] = await receiver.wait(1)
    assert result.check == "trap.reboot"
    stats = receiver.rx.stats()
    assert stats["malformed"] >= 3 and stats["received"] == 1


# ------------------------------------------- our own default-community probe (real snmpd)


SNMPD_USER = SnmpdUser("fm-trap-v3", auth_key="Auth-Key-3d1c55", priv_key="Priv-Key-77ab90")
#: The community the agent polls snmpd with: not a default name, so the probe sends both.
OWN_COMMUNITY = "fm-own-community"


async def start_snmpd(port: int) -> Snmpd:
    """snmpd on loopback, answering OWN_COMMUNITY, sending its traps (authenticationFailure
    included, ``authtrapenable 1``) to the receiver on ``port`` with the receiver's community."""
    server = Snmpd([SNMPD_USER], communities=(OWN_COMMUNITY,), trap_sink=(port, COMMUNITY))
    await asyncio.to_thread(server.start)
    return server


async def own_probe_count(receiver: Receiver, count: int) -> None:
    """Wait (10 s at most) until ``count`` authenticationFailure traps were taken for ours."""
    for _ in range(200):
        if receiver.rx.stats()["own_probe"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"own_probe stayed at {receiver.rx.stats()['own_probe']}, not {count}")


async def wait_for_result(receiver: Receiver, check: str, count: int = 1) -> list[Result]:
    async with asyncio.timeout(10):
        while len(receiver.of(check)) < count:
            receiver.arrived.clear()
            await receiver.arrived.wait()
    return receiver.of(check)


async def test_own_default_community_probe_raises_no_auth_failure(tmp_path: Path) -> None:
    """The agent's real path: the SNMP probe runs sec.snmp_default_community against snmpd,
    snmpd answers each wrong community with an authenticationFailure trap to the agent's
    receiver, and the receiver (reading the same process-wide registry) only counts them. A
    genuine authenticationFailure from another device still becomes trap.auth_failure."""
    PROBED.clear()
    receiver = Receiver(
        tmp_path, [target("srv-1", "127.0.0.1"), target("sw2", "127.0.0.2")], own_probes=PROBED
    )
    await receiver.rx.start()
    server = await start_snmpd(receiver.port)
    probe = SnmpProbe({})
    try:
        # snmpd's coldStart trap proves the sink reaches the receiver.
        [cold] = await wait_for_result(receiver, "trap.reboot")
        assert cold.target == "srv-1" and cold.value == "coldStart"

        agent_target = TargetConfig.from_dict(
            {
                "name": "srv-1",
                "class": "server-snmp",
                "address": "127.0.0.1",
                "snmp": {"port": server.port, "community": OWN_COMMUNITY, "timeout": 1.0},
            }
        )
        started = time.monotonic()
        found = {o.check: o for o in await probe.collect(agent_target, {community.CHECK})}
        assert found[community.CHECK].value == community.REFUSED, found[community.CHECK]
        assert PROBED.since("127.0.0.1") is not None

        # Both rejected communities made snmpd send a trap; both are only counted.
        await own_probe_count(receiver, 2)
        took = time.monotonic() - started
        await receiver.settle(0.5)
        assert receiver.of("trap.auth_failure") == []
        assert receiver.rx.stats()["own_probe"] == 2
        print(f"probe + 2 authenticationFailure traps ignored in {took:.2f}s")

        # Someone else guessing a community on another device is still reported.
        rc, out = await receiver.send(*v2c(receiver.port, AUTH_FAILURE, source="127.0.0.2"))
        assert rc == 0, out
        [alarm] = await wait_for_result(receiver, "trap.auth_failure")
        assert (alarm.target, alarm.status) == ("sw2", Status.CRIT)
    finally:
        await probe.close()
        await asyncio.to_thread(server.close)
        await receiver.rx.stop()
        PROBED.clear()


async def test_auth_failure_outside_the_window_is_reported(tmp_path: Path) -> None:
    """The same snmpd, the probe noted in a registry on a clock moved by hand: a guessed
    community a minute after our probe (real snmpget, real trap from snmpd) is an alarm; one
    inside the minute is taken for our own."""
    now = [1000.0]
    probed = OwnProbes(clock=lambda: now[0])
    receiver = Receiver(tmp_path, [target("srv-1", "127.0.0.1")], own_probes=probed)
    await receiver.rx.start()
    server = await start_snmpd(receiver.port)
    try:
        await wait_for_result(receiver, "trap.reboot")
        config = TargetConfig.from_dict(
            {
                "name": "srv-1",
                "class": "server-snmp",
                "address": "127.0.0.1",
                "snmp": {"port": server.port, "community": OWN_COMMUNITY, "timeout": 1.0},
            }
        ).snmp
        assert config is not None
        obs = await community.check("127.0.0.1", config, None, probed)
        assert obs.value == community.REFUSED
        await own_probe_count(receiver, 2)

        guess = ["snmpget", "-v", "2c", "-c", "guessed", "-t", "0.5", "-r", "0"]
        guess += [f"127.0.0.1:{server.port}", "1.3.6.1.2.1.1.3.0"]
        now[0] += 59.0  # still inside the window: counted as ours
        await receiver.send(*guess)
        await own_probe_count(receiver, 3)
        assert receiver.of("trap.auth_failure") == []

        now[0] += 2.0  # 61 s after the probe: somebody else is guessing
        await receiver.send(*guess)
        [alarm] = await wait_for_result(receiver, "trap.auth_failure")
        assert (alarm.target, alarm.status, alarm.value) == (
            "srv-1",
            Status.CRIT,
            "authenticationFailure",
        )
        assert receiver.rx.stats()["own_probe"] == 3
    finally:
        await asyncio.to_thread(server.close)
        await receiver.rx.stop()


def test_own_probe_registry_window_addresses_and_bound() -> None:
    now = [0.0]
    probed = OwnProbes(60.0, clock=lambda: now[0], limit=3)
    assert probed.since("192.0.2.1") is None
    probed.note("2001:DB8::0:1")
    now[0] = 60.0
    assert probed.since("2001:db8::1") == 60.0  # one spelling per address, window inclusive
    now[0] = 60.5
    assert probed.since("2001:db8::1") is None
    for i in range(5):
        probed.note(f"192.0.2.{i}")
    # The bound keeps the newest notes.
    assert [probed.since(f"192.0.2.{i}") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


# ------------------------------------------------------------- vendor traps (snmptrap)


async def test_dahua_video_loss_tamper_and_disk_traps(tmp_path: Path) -> None:
    """DAHUA-SNMP-MIB notifications as a Dahua NVR sends them: ``action`` Start raises the
    channel's or disk's alarm, Stop clears it; motion detection is not a maintenance fault."""
    receiver = Receiver(tmp_path, [target("nvr-1", "127.0.0.1", device_class="nvr")])
    await receiver.rx.start()
    port = receiver.port

    def dahua(oid: str, action: str, index_oid: str, index: int) -> list[str]:
        return v2c(
            port,
            oid,
            f"{DAHUA_ACTION}.0",
            "s",
            action,
            f"{DAHUA_CURRENT_TIME}.0",
            "s",
            "2026/12/4 Fri 23:10:05",
            f"{index_oid}.{index}",
            "i",
            str(index),
        )

    try:
        for args in (
            dahua(DAHUA_VIDEO_LOSS, "Start", DAHUA_VIDEO_LOSS_INDEX, 3),
            dahua(DAHUA_VIDEO_BLIND, "Start", DAHUA_VIDEO_BLIND_INDEX, 5),
            dahua(DAHUA_STORAGE_FAILURE, "Start", DAHUA_LOGIC_NO, 1),
            dahua(DAHUA_VIDEO_MOTION, "Start", "1.3.6.1.4.1.1004849.2.3.2.1.1.1.1", 2),
            dahua(DAHUA_VIDEO_LOSS, "Stop", DAHUA_VIDEO_LOSS_INDEX, 3),
            dahua(DAHUA_STORAGE_SMART, "Start", DAHUA_LOGIC_NO, 2),
        ):
            rc, out = await receiver.send(*args)
            assert rc == 0, out
        results = await receiver.wait(5)
        got = [(r.target, r.check, r.item, r.value, r.status) for r in results]
        assert got == [
            ("nvr-1", "trap.video_loss", "channel 3", "video lost", Status.CRIT),
            ("nvr-1", "trap.video_tamper", "channel 5", "video blinded", Status.CRIT),
            ("nvr-1", "trap.disk", "disk 1", "disk failure", Status.CRIT),
            ("nvr-1", "trap.video_loss", "channel 3", "ok", Status.OK),
            ("nvr-1", "trap.disk", "disk 2", "SMART abnormal", Status.CRIT),
        ]
        assert results[0].facts["action"] == "Start"
        assert results[0].facts["device_time"] == "2026/12/4 Fri 23:10:05"
        await receiver.settle()
        assert receiver.rx.stats()["unmapped"] == 1  # the motion event
    finally:
        await receiver.rx.stop()


async def test_hikvision_power_traps_are_restarts(tmp_path: Path) -> None:
    """HIKVISION-MIB's SMIv1 Power_ReBoot (enterprise 50001, specific 3), sent as SNMPv1."""
    receiver = Receiver(tmp_path, [target("cam-1", "127.0.0.1", device_class="camera")])
    await receiver.rx.start()
    try:
        v1 = ["snmptrap", "-v", "1", "-c", COMMUNITY, f"127.0.0.1:{receiver.port}"]
        rc, out = await receiver.send(*v1, "1.3.6.1.4.1.50001", "127.0.0.1", "6", "3", "")
        assert rc == 0, out
        [reboot] = await receiver.wait(1)
        assert (reboot.target, reboot.check, reboot.value, reboot.status) == (
            "cam-1",
            "trap.reboot",
            "reboot",
            Status.CRIT,
        )
        assert reboot.facts["trap_oid"] == "1.3.6.1.4.1.50001.0.3"
    finally:
        await receiver.rx.stop()


def test_dahua_action_other_than_start_or_stop_is_shown() -> None:
    index = ((f"{DAHUA_VIDEO_LOSS_INDEX}.4", 4), (f"{DAHUA_ACTION}.0", "Pulse"))
    event = interpret(Notification("192.0.2.1", DAHUA_VIDEO_LOSS, index))
    assert event is not None and (event.item, event.value) == ("channel 4", "video lost")
    assert "action 'Pulse'" in event.summary
    bare = interpret(Notification("192.0.2.1", DAHUA_STORAGE_FAILURE, ()))
    assert bare is not None and bare.item == "" and "not named in the trap" in bare.summary


# ------------------------------------------------------------------------ mapping, no network


def _receiver_without_socket(
    cfg: TrapsConfig, targets: list[TargetConfig], classes: Any
) -> tuple[TrapReceiver, list[Result]]:
    results: list[Result] = []
    rx = TrapReceiver(cfg, targets, classes, results.extend, own_probes=OwnProbes())
    return rx, results


def test_interface_naming_follows_the_poller() -> None:
    def link(*varbinds: tuple[str, int | str]) -> tuple[str, str]:
        event = interpret(Notification("192.0.2.1", LINK_DOWN, tuple(varbinds)))
        assert event is not None and event.check == "trap.link"
        return event.item, event.value

    assert link(
        (f"{IF_INDEX}.3", 3), (IF_NAME_3, "Gi0/3"), (f"{IF_DESCR}.3", "GigabitEthernet0/3")
    ) == ("Gi0/3", "down")
    assert link((f"{IF_INDEX}.7", 7), (f"{IF_DESCR}.7", "eth7")) == ("eth7", "down")
    assert link((f"{IF_INDEX}.9", 9)) == ("ifIndex 9", "down")
    assert link(("1.3.6.1.2.1.2.2.1.8.4", 2)) == ("ifIndex 4", "down")  # index from ifOperStatus
    assert link((f"{IF_INDEX}.3", 3), (IF_ADMIN_3, 2), (IF_OPER_3, 2)) == (
        "ifIndex 3",
        "admin down",
    )


def test_rfc1628_ups_traps() -> None:
    descr = "1.3.6.1.2.1.33.1.6.2.1.2.5"
    on_battery = ("1.3.6.1.2.1.33.1.6.3.2",)
    for oid in ("1.3.6.1.2.1.33.2.1", "1.3.6.1.2.1.33.2.0.1"):
        event = interpret(Notification("192.0.2.1", oid, ()))
        assert event is not None and (event.check, event.value) == ("trap.power", "on battery")
    added = interpret(Notification("192.0.2.1", "1.3.6.1.2.1.33.2.3", ((descr, on_battery[0]),)))
    removed = interpret(Notification("192.0.2.1", "1.3.6.1.2.1.33.2.4", ((descr, on_battery[0]),)))
    assert added is not None and added.value == "on battery"
    assert removed is not None and removed.value == "mains"
    low_battery = ((descr, "1.3.6.1.2.1.33.1.6.3.3"),)
    assert interpret(Notification("192.0.2.1", "1.3.6.1.2.1.33.2.3", low_battery)) is None


def test_vendor_map_routes_to_the_first_target_that_defines_the_check(tmp_path: Path) -> None:
    # A made-up enterprise OID: the operator's table is for vendors fieldmon has no built-in
    # mapping for.
    (tmp_path / "nvr.toml").write_text(
        """
class = "test-nvr"
extends = "snmp-device"
title = { zh-CN = "硬盘录像机", en = "NVR" }
[[item]]
id = "trap.video_loss"
title = { zh-CN = "视频丢失告警", en = "Video loss alarm" }
category = "hardware"
method = "trap"
level = 3
interval = "event"
""",
        encoding="utf-8",
    )
    classes = load_catalogue([tmp_path])
    cfg = traps_config(
        162,
        map=[
            {
                "oid": ".1.3.6.1.4.1.99999.0.1",
                "check": "trap.video_loss",
                "item_from": "1.3.6.1.4.1.99999.1.1",
            },
            {
                "oid": "1.3.6.1.4.1.99999.0.2",
                "check": "trap.video_loss",
                "status": "OK",
                "item_from": "1.3.6.1.4.1.99999.1.1",
            },
        ],
    )
    switch = target("sw-shared-ip", "192.0.2.7")  # same address, class without the item
    nvr = TargetConfig.from_dict(
        {
            "name": "nvr1",
            "class": "test-nvr",
            "address": "192.0.2.7",
            "snmp": {},
            "disabled": ["trap.reboot"],
        }
    )
    rx, results = _receiver_without_socket(cfg, [switch, nvr], classes)
    channel = (("1.3.6.1.4.1.99999.1.1.0", "channel 3"),)
    rx.handle(Notification("192.0.2.7", "1.3.6.1.4.1.99999.0.1", channel))
    rx.handle(Notification("192.0.2.7", "1.3.6.1.4.1.99999.0.2", channel))
    assert [(r.target, r.check, r.item, r.status) for r in results] == [
        ("nvr1", "trap.video_loss", "channel 3", Status.CRIT),
        ("nvr1", "trap.video_loss", "channel 3", Status.OK),
    ]
    # coldStart: the switch defines trap.reboot; the NVR disabled it, so the switch gets it.
    rx.handle(Notification("192.0.2.7", COLD_START, ()))
    assert results[-1].target == "sw-shared-ip"
    # Nobody understands it: counted, not a result.
    rx.handle(Notification("192.0.2.7", "1.3.6.1.4.1.99999.0.3", ()))
    assert len(results) == 3 and rx.stats()["unmapped"] == 1


def test_link_threshold_override_per_target() -> None:
    """An access switch whose PCs switch off at night: link down is a warning there."""
    access = target(
        "sw-access", "192.0.2.8", thresholds={"trap.link": {"match": ["up"], "otherwise": "WARN"}}
    )
    rx, results = _receiver_without_socket(traps_config(162), [access], load_catalogue())
    rx.handle(Notification("192.0.2.8", LINK_DOWN, ((f"{IF_INDEX}.1", 1),)))
    assert results[0].status == Status.WARN


# ------------------------------------------------------------------------ config, catalogue


def _agent_data(tmp: Path, traps: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": "s1",
        "agent": "a1",
        "state_dir": str(tmp),
        "targets": [{"name": "sw1", "class": "snmp-device", "address": "192.0.2.1", "snmp": {}}],
        "traps": traps,
    }


@pytest.mark.parametrize(
    ("traps", "message"),
    [
        ({}, "would reject everything"),
        ({"communities": [""]}, "must not be empty"),
        ({"listen": "::", "communities": ["c"]}, "must be an IPv4 address"),
        ({"port": 0, "communities": ["c"]}, "traps.port"),
        (
            {"users": [{"user": "u", "priv_protocol": "aes", "priv_key": "12345678"}]},
            "needs auth_protocol",
        ),
        ({"users": [{"user": "u", "auth_protocol": "sha", "auth_key": "short"}]}, "at least 8"),
        ({"users": [{"user": "u", "auth_protocol": "sha"}]}, "'auth_key' is required"),
        ({"users": [{"user": "u", "engine_ids": ["80zz"]}]}, "not hexadecimal"),
        ({"users": [{"user": "u", "engine_ids": ["0x8000"]}]}, "5 to 32 octets"),
        ({"users": [{"user": "u"}, {"user": "u"}]}, "repeated: u"),
        (
            {"communities": ["c"], "map": [{"oid": "vendor.alarm", "check": "trap.power"}]},
            "numeric OID",
        ),
        (
            {"communities": ["c"], "map": [{"oid": "1.3.6.1.4.1.9.0.1", "check": "snmp.uptime"}]},
            "traps.map[0].check",
        ),
        ({"communities": ["c"], "mapping": []}, "unknown key"),
    ],
)
def test_traps_config_errors_are_clear(tmp_path: Path, traps: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_agent_config(None, _agent_data(tmp_path, traps))
    assert message in str(err.value)


def test_traps_config_accepts_a_full_section(tmp_path: Path) -> None:
    cfg: AgentConfig = load_agent_config(
        None,
        _agent_data(
            tmp_path,
            {
                "communities": ["c1", "c2"],
                "engine_id": "0x80:00:4f:b8:05:01:02:03",
                "users": [
                    {
                        "user": "u",
                        "auth_protocol": "sha256",
                        "auth_key": "k" * 8,
                        "engine_ids": ["8000000001020304"],
                    }
                ],
                "map": [{"oid": "1.3.6.1.4.1.9.0.1", "check": "trap.power", "status": "CRIT"}],
            },
        ),
    )
    assert cfg.traps is not None
    assert (cfg.traps.listen, cfg.traps.port, cfg.traps.engine_id) == (
        "0.0.0.0",
        162,
        "80004fb805010203",
    )
    assert cfg.traps.users[0].security_level == 2
    assert "c1" not in repr(cfg.traps), "communities are secrets"
    assert load_agent_config(None, {**_agent_data(tmp_path, {}), "traps": None}).traps is None


ITEM = """
class = "c"
title = {{ zh-CN = "类", en = "C" }}
[[item]]
id = "x.y"
title = {{ zh-CN = "项", en = "Item" }}
category = "hardware"
method = "{method}"
level = 3
interval = {interval}
"""


def test_catalogue_event_interval_is_for_trap_items_only() -> None:
    item = parse_class(ITEM.format(method="trap", interval='"event"'), "c.toml").items[0]
    assert item.event and item.interval is None and item.interval_text == "event"
    for method, interval in (("snmp", '"event"'), ("trap", '"inspection"'), ("trap", "60")):
        with pytest.raises(CatalogueError, match=r"c.toml: item 'x.y'.interval: \"event\""):
            parse_class(ITEM.format(method=method, interval=interval), "c.toml")
    polled = parse_class(ITEM.format(method="snmp", interval="60"), "c.toml").items[0]
    assert not polled.event and polled.interval_text == "60s"
    snmp = load_catalogue()["snmp-device"]
    trap_items = {i.id: i for i in snmp.items if i.method == "trap"}
    assert set(trap_items) == {"trap.link", "trap.reboot", "trap.auth_failure", "trap.power"}
    assert all(i.event for i in trap_items.values())
    assert trap_items["trap.auth_failure"].category == "security"
    assert (trap_items["trap.power"].level, trap_items["trap.reboot"].level) == (2, 4)
    assert trap_items["trap.link"].per == "interface"


# ------------------------------------------------------------------------------ processes


LAZY = """
import asyncio, json, logging, sys
from agent.config import load_agent_config

logging.basicConfig(level=logging.INFO)
from agent.runner import run_agent

data = json.loads(sys.argv[1])
cfg = load_agent_config(None, data)

async def main() -> None:
    stop = asyncio.Event()
    stop.set()
    await run_agent(cfg, stop)

asyncio.run(main())
print(json.dumps("pysnmp" in sys.modules))
"""


@pytest.mark.parametrize("with_traps", [False, True])
def test_pysnmp_loads_only_with_a_traps_section(tmp_path: Path, with_traps: bool) -> None:
    import json

    data: dict[str, Any] = {
        "site": "s1",
        "agent": "a1",
        "state_dir": str(tmp_path),
        "mqtt": {"port": free_udp_port()},  # nothing listens: the agent stops before connecting
        "targets": [{"name": "host", "class": "linux-server"}],
    }
    if with_traps:
        data["traps"] = {"listen": "127.0.0.1", "port": free_udp_port(), "communities": ["c"]}
    done = subprocess.run(
        [sys.executable, "-c", LAZY, json.dumps(data)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) is with_traps
    assert ("trap receiver stopped" in done.stderr) is with_traps


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    async def start_twice() -> str:
        port = free_udp_port()
        first = TrapReceiver(traps_config(port), [], {}, lambda _r: None)
        await first.start()
        try:
            with pytest.raises(ConfigError) as err:
                await TrapReceiver(traps_config(port), [], {}, lambda _r: None).start()
            return str(err.value)
        finally:
            await first.stop()

    message = asyncio.run(start_twice())
    assert "traps.listen/traps.port: cannot listen on 127.0.0.1:" in message


def test_trap_opens_and_resolves_an_incident_end_to_end(tmp_path: Path) -> None:
    """snmptrap → agent process → Mosquitto → collector process: incident in seconds."""
    sim = SnmpSim([recordings_dir() / "dahua-nvr.snmprec"])
    sim.start()
    broker = Broker()
    broker.start()
    coll_cfg, http_port = collector_toml(tmp_path, broker.port)
    base = f"http://127.0.0.1:{http_port}"
    trap_port = free_udp_port()
    targets = f"""
[[targets]]
name = "nvr-01"
class = "snmp-device"
address = "127.0.0.1"
[targets.snmp]
port = {sim.port}
community = "dahua-nvr"
timeout = 1.0
retries = 0
"""
    traps = f'[traps]\nlisten = "127.0.0.1"\nport = {trap_port}\ncommunities = ["{COMMUNITY}"]\n'
    agent_cfg = agent_toml(tmp_path, broker.port, targets, extra=traps)
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "collector.log")
    agent: Proc | None = None
    env = snmp_env(tmp_path)
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        agent = Proc(["agent", "run", "--config", str(agent_cfg)], tmp_path / "agent.log")

        def status(check: str) -> dict[str, Any] | None:
            rows = http_json(f"{base}/api/v1/status?site=s1")
            return next((r for r in rows if r["target"] == "nvr-01" and r["check"] == check), None)

        # The receiver starts before the first poll, so a polled result means it listens.
        wait_for(lambda: (status("snmp.reachable") or {}).get("status") == "OK", 30, what="poll")

        def open_link_incidents() -> list[dict[str, Any]]:
            rows = http_json(f"{base}/api/v1/incidents?state=open")
            return [i for i in rows if i["target"] == "nvr-01" and i["check"] == "trap.link"]

        t0 = time.monotonic()
        sent = subprocess.run(
            v2c(trap_port, LINK_DOWN, *PORT3_DOWN, *PORT3_NAME),
            env=env,
            capture_output=True,
            timeout=20,
        )
        assert sent.returncode == 0, sent.stderr
        [incident] = wait_for(open_link_incidents, 10, interval=0.05, what="trap.link incident")
        took = time.monotonic() - t0
        print(f"linkDown trap → open incident at the collector in {took:.2f}s")
        assert took < 5, f"incident opened {took:.1f}s after the trap"
        assert (incident["item"], incident["level"]) == ("GigabitEthernet0/3", 3)

        up = v2c(trap_port, LINK_UP, f"{IF_INDEX}.3", "i", "3", *PORT3_NAME)
        assert subprocess.run(up, env=env, capture_output=True, timeout=20).returncode == 0
        wait_for(
            lambda: (
                http_json(f"{base}/api/v1/incidents/{incident['number']}")["state"] == "resolved"
            ),
            10,
            interval=0.05,
            what="incident resolved by linkUp",
        )
        assert agent.stop() == 0
        assert "trap receiver stopped" in agent.output()
    finally:
        if agent:
            agent.stop()
        collector.stop()
        broker.cleanup()
        sim.close()
