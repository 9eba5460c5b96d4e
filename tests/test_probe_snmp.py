"""SNMP probe and client against real device recordings served by snmpsim (no mocks).

Expected values come from the recordings in shared/fixtures/snmprec (see SOURCES.md there).
Short timeouts (1 s, retries 0-1) keep the failure-path tests quick.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from agent.config import SnmpConfig, TargetConfig
from agent.probes.base import Observation
from agent.probes.snmp import SUPPORTED, SnmpProbe, interface_items
from agent.snmp_client import SnmpClient, SnmpFailure, SnmpUnreachable
from checks.status import Status
from tests.support.snmpsim import (
    HOST,
    TEST_V3_USER,
    SnmpSim,
    all_recordings,
    free_udp_port,
)

pytest_plugins = ["tests.support.snmpsim"]


#: The items of checks/catalogue/snmp-device.toml that the probe polls.
SNMP_DEVICE_CHECKS = frozenset(
    {"snmp.reachable", "snmp.uptime", "if.oper_status", "inventory.system", "inventory.entity"}
)


def by_check(observations: list[Observation]) -> dict[str, Observation]:
    """Single-instance observations by check id (interfaces are left out)."""
    return {o.check: o for o in observations if not o.item}


def interfaces(observations: list[Observation]) -> dict[str, Observation]:
    return {o.item: o for o in observations if o.check == "if.oper_status" and o.item}


@pytest.fixture
async def probe() -> AsyncIterator[SnmpProbe]:
    p = SnmpProbe({})
    yield p
    await p.close()


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A bound UDP port that never answers: a dead device (no ICMP refusal, just silence)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


class FlakyLink(asyncio.DatagramProtocol):
    """A UDP relay in front of snmpsim that loses or delays chosen requests, like a bad link.

    ``fate(n)`` decides for the n-th request (from 1): ``None`` drops it, a number relays it
    and holds the answer back that many seconds.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = (HOST, upstream_port)
        self.fate: Callable[[int], float | None] = lambda n: 0.0
        self.requests = 0
        self.dropped = 0
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector transport is not registered as an asyncio.DatagramTransport subclass
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.requests += 1
        delay = self.fate(self.requests)
        if delay is None:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._relay(data, addr, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, data: bytes, addr: tuple[str | Any, int], delay: float) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, self.upstream)
            await loop.sock_sendall(sock, data)
            answer = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        await asyncio.sleep(delay)
        if self._transport is not None:
            self._transport.sendto(answer, addr)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()


@pytest.fixture
async def flaky(snmpsim: SnmpSim) -> AsyncIterator[FlakyLink]:
    loop = asyncio.get_running_loop()
    _, link = await loop.create_datagram_endpoint(
        lambda: FlakyLink(snmpsim.port), local_addr=(HOST, 0)
    )
    yield link
    link.close()


# --------------------------------------------------------------------- reachability / uptime


@pytest.mark.parametrize(
    ("community", "uptime"),
    [
        ("vrp_5720-32x-ei", 26_272_654.78),
        ("comware_a5500", None),
        ("dahua-nvr", None),
        ("apc_smtl1000-nmc3", 704_944.8),
        ("dsm", None),
        ("hikvision-nvr", None),
        ("junos_qfx5130-32cd-evo", None),
    ],
)
async def test_reachable_and_uptime(
    snmpsim: SnmpSim, probe: SnmpProbe, community: str, uptime: float | None
) -> None:
    obs = by_check(
        await probe.collect(snmpsim.target(community), {"snmp.reachable", "snmp.uptime"})
    )
    assert set(obs) == {"snmp.reachable", "snmp.uptime"}
    assert obs["snmp.reachable"].value == "up"
    assert "answered in" in obs["snmp.reachable"].summary
    up = obs["snmp.uptime"]
    assert up.unit == "s" and isinstance(up.value, float) and up.value > 0
    assert up.status is None
    if uptime is not None:
        assert up.value == pytest.approx(uptime)  # timeticks / 100


async def test_device_without_system_group_is_still_up(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    """hikvision-cam answers NoSuchInstance for the whole system group: it did answer."""
    obs = by_check(await probe.collect(snmpsim.target("hikvision-cam"), SUPPORTED))
    assert obs["snmp.reachable"].value == "up"
    assert obs["snmp.uptime"].status is Status.UNKNOWN
    assert "sysUpTime" in obs["snmp.uptime"].summary
    assert obs["inventory.system"].status is Status.UNKNOWN
    assert obs["if.oper_status"].status is Status.UNKNOWN  # no IF-MIB either
    assert "no interfaces" in obs["if.oper_status"].summary


async def test_snmpv1_with_partly_missing_system_group(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    """ipolis has only sysDescr/sysObjectID; on v1 one unknown OID fails a whole GET, so the
    client asks the missing ones one by one and still returns the known ones."""
    target = snmpsim.target("ipolis", version="1")
    obs = by_check(await probe.collect(target, SUPPORTED))
    assert obs["snmp.reachable"].value == "up"
    assert obs["snmp.reachable"].summary.startswith("SNMPv1")
    assert obs["inventory.system"].value == "SAMSUNG iPolis H.264 Premium Level IP Camera"
    assert obs["inventory.system"].facts["sys_object_id"] == "1.3.6.1.4.1.36849.1.2.91"
    assert obs["snmp.uptime"].status is Status.UNKNOWN
    assert obs["inventory.entity"].status is Status.UNKNOWN
    assert obs["inventory.entity"].summary == "no inventory MIB exposed"


# ------------------------------------------------------------------------------- inventory


async def test_system_description_is_normalised(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    """ios_c3560 stores sysDescr with CR/LF and wrapping quotes; vrp with CR/LF."""
    ios = by_check(await probe.collect(snmpsim.target("ios_c3560"), {"inventory.system"}))
    system = ios["inventory.system"]
    assert system.value == (
        "Cisco IOS Software, C3560 Software (C3560-IPSERVICESK9-M), Version 12.2(55)SE12, "
        "RELEASE SOFTWARE (fc2)"
    )
    descr = system.facts["sys_descr"]
    assert "\r" not in descr and "\n" not in descr and '"' not in descr
    assert descr.endswith("Compiled Thu 28-Sep-17 02:04 by prod_rel_team")
    assert system.facts["sys_object_id"] == "1.3.6.1.4.1.9.1.634"
    assert "sys_name" not in system.facts  # not in the recording
    vrp = by_check(await probe.collect(snmpsim.target("vrp_5720-32x-ei"), {"inventory.system"}))
    assert vrp["inventory.system"].value == "S5720-32X-EI-24S-AC"
    assert vrp["inventory.system"].facts["sys_name"] == "<private>"


@pytest.mark.parametrize(
    ("community", "expected"),
    [
        (
            "vrp_5720-32x-ei",
            {"serial": "2102359579DMHC000288", "firmware": "Version 5.170 V200R010C00SPC600"},
        ),
        ("comware_a5500", {"model": "JD377A", "firmware": "5.20.99 Release 2222P08"}),
        ("ios_c3560", {"serial": "CAT0912N0CU", "model": "WS-C3560-48TS-S"}),
        ("iosxe_c9300", {"serial": "FCW2204L050", "model": "C9300-48P"}),
        ("hikvision-cam", {"model": "DS-2CD2185FWD-I", "firmware": "V5.5.3 build 171025"}),
        ("hikvision-nvr", {"serial": "0820160719AARR624053979WCVU"}),
        ("dahua-nvr", {"serial": "2M00D2APAZTL62J", "firmware": "3.212.0000.1"}),
        ("apc_smtl1000-nmc3", {"serial": "AS2233161027", "model": "Smart-UPS 1000"}),
        ("dsm", {"serial": "3005AWL999111", "model": "RS2212RP+", "firmware": "DSM 6.1-15217"}),
    ],
)
async def test_inventory_entity(
    snmpsim: SnmpSim, probe: SnmpProbe, community: str, expected: dict[str, str]
) -> None:
    obs = by_check(await probe.collect(snmpsim.target(community), {"inventory.entity"}))
    inv = obs["inventory.entity"]
    assert inv.status is None, inv.summary
    for fact, value in expected.items():
        assert inv.facts[fact] == value, (fact, inv.facts)
    assert inv.value == inv.facts.get("serial", "")
    if "serial" not in inv.facts:
        assert "no serial" in inv.summary


async def test_comware_serial_is_one_of_its_entities(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    obs = by_check(await probe.collect(snmpsim.target("comware_a5500"), {"inventory.entity"}))
    assert obs["inventory.entity"].value in {"CN50A1Z4BN", "210231A0LSX10B000123"}
    assert obs["inventory.entity"].facts["source"] == "ENTITY-MIB"


async def test_inventory_absent(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    obs = by_check(await probe.collect(snmpsim.target("vivotek"), {"inventory.entity"}))
    assert obs["inventory.entity"].value is None
    assert obs["inventory.entity"].status is Status.UNKNOWN
    assert obs["inventory.entity"].summary == "no inventory MIB exposed"


# ------------------------------------------------------------------------------ interfaces


@pytest.mark.parametrize(
    ("community", "count"),
    [("vrp_5720-32x-ei", 51), ("comware_a5500", 30), ("ios_c3560", 58), ("iosxe_c9300", 76)],
)
async def test_interface_counts_and_states(snmpsim: SnmpSim, community: str, count: int) -> None:
    seen: dict[str, set[str]] = {}
    probe = SnmpProbe(seen)
    try:
        target = snmpsim.target(community)
        ifs = interfaces(await probe.collect(target, {"if.oper_status"}))
    finally:
        await probe.close()
    assert len(ifs) == count
    values = Counter(o.value for o in ifs.values())
    assert set(values) <= {"up", "admin down", "not monitored"}  # nothing alarms on 1st sight
    assert seen[target.name] == {item for item, o in ifs.items() if o.value == "up"}
    assert all(o.facts["if_index"] for o in ifs.values())


async def test_never_up_ports_are_not_monitored(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    ifs = interfaces(await probe.collect(snmpsim.target("ios_c3560"), {"if.oper_status"}))
    assert ifs["Fa0/48"].value == "up"
    assert ifs["Fa0/1"].value == "not monitored"
    assert ifs["Fa0/1"].summary == "down, never seen up"
    assert Counter(o.value for o in ifs.values()) == {"not monitored": 54, "up": 4}


async def test_port_seen_up_before_that_is_down_alarms(snmpsim: SnmpSim) -> None:
    """Seed the memory as if GigabitEthernet0/0/9 had been up at an earlier poll."""
    target = snmpsim.target("vrp_5720-32x-ei", name="sw1")
    seen = {"sw1": {"GigabitEthernet0/0/9"}}
    probe = SnmpProbe(seen)
    try:
        ifs = interfaces(await probe.collect(target, {"if.oper_status"}))
    finally:
        await probe.close()
    assert ifs["GigabitEthernet0/0/9"].value == "down"
    assert ifs["GigabitEthernet0/0/9"].summary == "down, was up before"
    assert ifs["Vlanif254"].value == "not monitored"  # also down, but never seen up
    assert ifs["MEth0/0/1"].value == "admin down"
    assert probe.seen_up is seen  # the caller's dict, updated in place
    assert "GigabitEthernet0/0/1" in seen["sw1"] and "GigabitEthernet0/0/9" in seen["sw1"]


def test_interface_items_are_unique() -> None:
    items = interface_items(["1", "2", "3", "10"], {"1": "eth0", "2": "eth0", "3": "", "10": "x"})
    assert items == {"1": "eth0#1", "2": "eth0#2", "3": "ifIndex 3", "10": "x"}


# ------------------------------------------------------------------------- failure handling


async def test_unreachable_port_is_down_quickly(probe: SnmpProbe) -> None:
    port = free_udp_port()  # nothing listens: the kernel answers "port unreachable"
    target = TargetConfig.from_dict(
        {
            "name": "gone",
            "class": "snmp-device",
            "address": HOST,
            "snmp": {"port": port, "timeout": 1.0, "retries": 1},
        }
    )
    started = time.monotonic()
    obs = by_check(await probe.collect(target, SUPPORTED))
    assert time.monotonic() - started < 1.0 * 2 + 0.5
    assert obs["snmp.reachable"].value == "down"
    assert str(port) in obs["snmp.reachable"].summary
    for check in SUPPORTED - {"snmp.reachable"}:
        assert obs[check].status is Status.UNKNOWN
        assert obs[check].summary.startswith("device not answering SNMP: ")


async def test_silent_device_times_out_within_budget(probe: SnmpProbe, silent_udp: int) -> None:
    target = TargetConfig.from_dict(
        {
            "name": "dead",
            "class": "snmp-device",
            "address": HOST,
            "snmp": {"port": silent_udp, "timeout": 0.5, "retries": 1},
        }
    )
    started = time.monotonic()
    obs = by_check(await probe.collect(target, SUPPORTED))
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 0.5 * 2 + 0.5
    assert obs["snmp.reachable"].value == "down"
    assert "no answer to GET within 0.5 s (2 attempts)" in obs["snmp.reachable"].summary
    assert obs["inventory.entity"].status is Status.UNKNOWN


async def test_dead_device_does_not_delay_live_one(
    snmpsim: SnmpSim, probe: SnmpProbe, silent_udp: int
) -> None:
    dead = TargetConfig.from_dict(
        {
            "name": "dead",
            "class": "snmp-device",
            "address": HOST,
            "snmp": {"port": silent_udp, "timeout": 2.0, "retries": 0},
        }
    )
    live = snmpsim.target("comware_a5500")
    finished: dict[str, float] = {}
    started = time.monotonic()

    async def run(target: TargetConfig) -> list[Observation]:
        # the snmp-device checks: the point is the dead device's timeout, not the item count
        out = await probe.collect(target, SNMP_DEVICE_CHECKS)
        finished[target.name] = time.monotonic() - started
        return out

    dead_obs, live_obs = await asyncio.gather(run(dead), run(live))
    assert by_check(dead_obs)["snmp.reachable"].value == "down"
    assert by_check(live_obs)["snmp.reachable"].value == "up"
    assert len(interfaces(live_obs)) == 30
    assert finished["comware_a5500"] < 1.0  # well before the dead one's 2 s timeout
    assert finished["dead"] >= 1.9


async def test_retries_recover_lost_packets(flaky: FlakyLink) -> None:
    """Every third request is lost; each GETBULK step of a walk is retried where it failed."""
    flaky.fate = lambda n: None if n % 3 == 0 else 0.0
    config = snmp_config(
        port=flaky.port, community="iosxe_c9300", timeout=0.3, retries=2, max_repetitions=10
    )
    client = SnmpClient(HOST, config)
    try:
        rows = await client.walk("1.3.6.1.2.1.2.2.1.2")
        got = await client.get_many(["1.3.6.1.2.1.1.2.0"])
    finally:
        await client.close()
    assert flaky.dropped >= 2
    assert len(rows) == 76
    assert [int(oid.rsplit(".", 1)[1]) for oid, _ in rows] == sorted(
        int(oid.rsplit(".", 1)[1]) for oid, _ in rows
    )
    assert got == {"1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.9.1.2494"}


async def test_late_answer_is_not_taken_for_the_next_one(flaky: FlakyLink) -> None:
    """The first answer arrives after the timeout; the retry's answer is used, and the late
    one must not be read as the answer to the following request."""
    flaky.fate = lambda n: 0.5 if n == 1 else 0.0
    config = snmp_config(port=flaky.port, community="vrp_5720-32x-ei", timeout=0.3, retries=1)
    client = SnmpClient(HOST, config)
    try:
        first = await client.get_many(["1.3.6.1.2.1.1.2.0"])
        await asyncio.sleep(0.4)  # the late answer is now waiting in the socket
        second = await client.get_many(["1.3.6.1.2.1.1.3.0"])
    finally:
        await client.close()
    assert first == {"1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.2011.2.23.294"}
    assert second == {"1.3.6.1.2.1.1.3.0": 2627265478}


async def test_device_dying_mid_collection_costs_one_timeout(
    flaky: FlakyLink, probe: SnmpProbe
) -> None:
    """Only the first GET is answered: the first table walk times out, the rest fail at once."""
    flaky.fate = lambda n: 0.0 if n == 1 else None
    target = TargetConfig.from_dict(
        {
            "name": "dying",
            "class": "snmp-device",
            "address": HOST,
            "snmp": {"port": flaky.port, "community": "comware_a5500", "timeout": 0.3},
        }
    )
    started = time.monotonic()
    obs = by_check(await probe.collect(target, SUPPORTED))
    elapsed = time.monotonic() - started
    assert obs["snmp.reachable"].value == "up"
    assert obs["inventory.system"].value  # from the answered GET
    for check in ("if.oper_status", "inventory.entity"):
        assert obs[check].status is Status.UNKNOWN
        assert "no answer" in obs[check].summary
    assert elapsed < 0.3 * 2 + 0.4  # one walk's budget (retries=1), not one per table


async def test_unsupported_check_is_unknown(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    obs = by_check(await probe.collect(snmpsim.target("dsm"), {"snmp.reachable", "cpu.load"}))
    assert obs["snmp.reachable"].value == "up"
    assert obs["cpu.load"].status is Status.UNKNOWN


async def test_device_going_away_and_coming_back() -> None:
    """Stop and re-serve a device on the same port; the probe's client recovers by itself."""
    recording = next(p for p in all_recordings() if p.stem == "hikvision-nvr")
    sim = SnmpSim([recording])
    probe = SnmpProbe({})
    try:
        await asyncio.to_thread(sim.start)
        target = sim.target("hikvision-nvr", timeout=0.5, retries=0)
        checks = {"snmp.reachable", "inventory.entity"}
        assert by_check(await probe.collect(target, checks))["snmp.reachable"].value == "up"
        port = sim.port
        await asyncio.to_thread(sim.stop)
        down = by_check(await probe.collect(target, checks))
        assert down["snmp.reachable"].value == "down"
        assert down["inventory.entity"].status is Status.UNKNOWN
        await asyncio.to_thread(sim.start)
        assert sim.port == port
        again = by_check(await probe.collect(target, checks))
        assert again["snmp.reachable"].value == "up"
        assert again["inventory.entity"].value == "0820160719AARR624053979WCVU"
    finally:
        await probe.close()
        await asyncio.to_thread(sim.close)


# ----------------------------------------------------------------------------------- SNMPv3


def v3_target(sim: SnmpSim, **overrides: Any) -> TargetConfig:
    settings: dict[str, Any] = {
        "version": "3",
        "user": TEST_V3_USER.name,
        "auth_protocol": "sha",
        "auth_key": TEST_V3_USER.auth_key,
        "priv_protocol": "aes",
        "priv_key": TEST_V3_USER.priv_key,
    }
    settings.update(overrides)
    return sim.target("dahua-nvr", name="v3dev", **settings)


async def test_snmpv3_auth_priv(snmpsim: SnmpSim, probe: SnmpProbe) -> None:
    target = v3_target(snmpsim)
    for _ in range(2):  # the second collection reuses the discovered session
        obs = by_check(await probe.collect(target, SUPPORTED))
        assert obs["snmp.reachable"].value == "up"
        assert obs["snmp.reachable"].summary.startswith("SNMPv3")
        assert obs["inventory.entity"].value == "2M00D2APAZTL62J"
        assert obs["inventory.system"].value == "DH-NVR4108HS-8P-4KS2"


@pytest.mark.parametrize("wrong", ["auth_key", "priv_key"])
async def test_snmpv3_wrong_key_fails_cleanly(
    snmpsim: SnmpSim, probe: SnmpProbe, wrong: str
) -> None:
    """snmpsim (pysnmp) reports usmStatsWrongDigests / usmStatsDecryptionErrors: the device
    is up, so reachability is UNKNOWN naming the key, not "down" (see agent.probes.snmp_usm)."""
    target = v3_target(snmpsim, **{wrong: "not-the-right-key"})
    started = time.monotonic()
    obs = by_check(await probe.collect(target, SUPPORTED))
    assert time.monotonic() - started < 1.0 * 2 + 0.5
    reachable = obs["snmp.reachable"]
    assert reachable.value is None and reachable.status is Status.UNKNOWN
    expected = {"auth_key": "usmStatsWrongDigests", "priv_key": "usmStatsDecryptionErrors"}
    assert reachable.facts["usm_report"] == expected[wrong]
    assert ("auth key" if wrong == "auth_key" else "priv key") in reachable.summary
    assert obs["snmp.uptime"].status is Status.UNKNOWN
    assert "SNMPv3 credentials refused" in obs["snmp.uptime"].summary


# ----------------------------------------------------------------------------------- client


def snmp_config(**fields: Any) -> SnmpConfig:
    """Validated SNMP settings (plain strings become Secret, as when read from TOML)."""
    return SnmpConfig.from_dict(fields)


async def test_client_walk_bulk_and_getnext_agree(snmpsim: SnmpSim) -> None:
    base: dict[str, Any] = {"port": snmpsim.port, "community": "vrp_5720-32x-ei", "timeout": 1.0}
    v2 = SnmpClient(HOST, snmp_config(**base, max_repetitions=7))
    v1 = SnmpClient(HOST, snmp_config(**base, version="1"))
    try:
        bulk = await v2.walk("1.3.6.1.2.1.2.2.1.8")
        nxt = await v1.walk(".1.3.6.1.2.1.2.2.1.8")
        assert bulk == nxt
        assert len(bulk) == 51
        assert all(oid.startswith("1.3.6.1.2.1.2.2.1.8.") for oid, _ in bulk)
        assert isinstance(bulk[0][1], int)
        got = await v2.get_many(["1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.9.9"])
        assert got == {
            "1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.2011.2.23.294",
            "1.3.6.1.2.1.1.3.0": 2627265478,
        }
        assert await v2.walk("1.3.6.1.4.1.99999") == []
    finally:
        await v1.close()
        await v2.close()


@pytest.mark.parametrize("limit", [1, 3])
async def test_client_concurrent_requests_do_not_mix(snmpsim: SnmpSim, limit: int) -> None:
    config = snmp_config(port=snmpsim.port, community="iosxe_c9300", timeout=1.0)
    client = SnmpClient(HOST, config, max_concurrency=limit)
    columns = [f"1.3.6.1.2.1.2.2.1.{c}" for c in (2, 7, 8)] + ["1.3.6.1.2.1.31.1.1.1.1"]
    try:
        walks = await asyncio.gather(*(client.walk(c) for c in columns * 2))
    finally:
        await client.close()
    for column, rows in zip(columns * 2, walks, strict=True):
        assert len(rows) == 76
        assert all(oid.startswith(column + ".") for oid, _ in rows)


async def test_client_errors(snmpsim: SnmpSim) -> None:
    silent = SnmpClient(
        HOST, snmp_config(port=snmpsim.port, community="no-such-file", timeout=0.3, retries=1)
    )
    with pytest.raises(SnmpUnreachable, match=r"no answer to GET within 0.3 s \(2 attempts\)"):
        await silent.get_many(["1.3.6.1.2.1.1.1.0"])
    bad = SnmpClient(
        HOST,
        snmp_config(
            port=snmpsim.port,
            version="3",
            user=TEST_V3_USER.name,
            auth_protocol="sha",
            auth_key="wrong-auth-key",
            priv_protocol="aes",
            priv_key=TEST_V3_USER.priv_key,
            timeout=1.0,
        ),
    )
    with pytest.raises(SnmpFailure, match="authentication failed"):
        await bad.walk("1.3.6.1.2.1.2.2.1.8")


async def test_served_windows_recording_is_filtered(snmpsim: SnmpSim) -> None:
    """The 18 records with "xx" in their OID are left out of the served copy, so walks of
    ipAddrTable end normally instead of timing out (SOURCES.md, Known quirks)."""
    config = snmp_config(port=snmpsim.port, community="windows_svr_2019_1809", timeout=1.0)
    client = SnmpClient(HOST, config)
    try:
        rows = await client.walk("1.3.6.1.2.1.4.20")
    finally:
        await client.close()
    assert rows and all("xx" not in oid for oid, _ in rows)


def test_agent_imports_no_snmp_stack() -> None:
    """gufo loads only when an SNMP client is actually built."""
    code = (
        "import sys, agent.probes.snmp, agent.snmp_client;"
        "assert not [m for m in sys.modules if m.startswith('gufo')], 'gufo imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
