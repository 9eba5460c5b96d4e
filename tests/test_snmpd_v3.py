"""SNMPv3 authPriv against net-snmp's snmpd: the agent's SNMP probe polls this machine as a
``server-snmp`` target and must read the same values the kernel reports, fail with a reason
when a key is wrong (UNKNOWN naming the problem, not "down": the device is up), and never let
a key into what it publishes."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest

from agent.config import TargetConfig
from agent.evaluate import to_results
from agent.probes import snmp_usm as usm
from agent.probes.snmp import SUPPORTED, SnmpProbe
from agent.probes.snmp_community import CHECK as COMMUNITY_CHECK
from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from tests.support.snmpd import Snmpd, SnmpdUser

CLASS = load_catalogue()["server-snmp"]
#: What the probe is asked for: the class's SNMP items, less the inspection-only security
#: item (it has a test of its own below) and CPU load (net-snmp reports hrProcessorLoad
#: only after it has run for a minute).
CHECKS = ({i.id for i in CLASS.items if i.method == "snmp"} & SUPPORTED) - {
    COMMUNITY_CHECK,
    "cpu.usage",
}

SHA_AES = SnmpdUser("fm-sha-aes", auth_key="Auth-Key-7f3a91", priv_key="Priv-Key-c2e8b4")
SHA256_AES256 = SnmpdUser(
    "fm-sha256-aes256",
    auth_key="Auth-Key-51d0e6",
    priv_key="Priv-Key-9a7c33",
    auth_protocol="sha256",
    priv_protocol="aes256",
)
USERS = [SHA_AES, SHA256_AES256]
WRONG = "Wrong-Key-000000"


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Snmpd]:
    with Snmpd(USERS) as server:
        yield server


@pytest.fixture
async def probe() -> AsyncIterator[SnmpProbe]:
    p = SnmpProbe({})
    yield p
    await p.close()


async def poll(probe: SnmpProbe, target: TargetConfig, checks: set[str]) -> list[Result]:
    """Observations turned into results with the catalogue's thresholds, as the agent
    publishes them."""
    return to_results(target, CLASS, await probe.collect(target, checks))


def by_key(results: list[Result]) -> dict[str, Result]:
    return {r.key: r for r in results}


def published_text(results: list[Result]) -> str:
    return "\n".join(
        f"{r.value} {r.summary} {' '.join(f'{k}={v}' for k, v in r.facts.items())}" for r in results
    )


def assert_no_keys(results: list[Result], *keys: str) -> None:
    text = published_text(results)
    for key in keys:
        assert key not in text, f"a key leaked into the results: {text[:2000]}"


@pytest.mark.parametrize("user", USERS, ids=lambda u: f"{u.auth_protocol}-{u.priv_protocol}")
async def test_auth_priv_reads_this_machine(
    snmpd: Snmpd, probe: SnmpProbe, user: SnmpdUser
) -> None:
    target = snmpd.target(user)
    results = by_key(await poll(probe, target, CHECKS))

    reachable = results["snmp.reachable"]
    assert reachable.value == "up" and reachable.status is Status.OK
    assert reachable.summary.startswith("SNMPv3 answered")

    # sysDescr is net-snmp's uname line.
    uname = os.uname()
    descr = f"{uname.sysname} {uname.nodename} {uname.release} {uname.version} {uname.machine}"
    assert results["inventory.system"].value == descr
    assert results["inventory.system"].facts["sys_location"] == "fieldmon test bench, loopback"

    # Every kernel interface, by name; loopback is up.
    names = {name for _, name in socket.if_nameindex()}
    seen = {r.item for r in results.values() if r.check == "if.oper_status"}
    assert seen == names
    assert results["if.oper_status[lo]"].value == "up"

    # HOST-RESOURCES storage: the root file system as the kernel counts it (blocks in use
    # over blocks), within a point for writes by other processes in between.
    st = os.statvfs("/")
    used = (st.f_blocks - st.f_bfree) / st.f_blocks * 100
    root = results["disk.usage[/]"]
    assert isinstance(root.value, float) and root.unit == "%"
    assert abs(root.value - used) < 1.0, (root.value, used)
    memory = results["mem.usage"]
    assert isinstance(memory.value, float) and 0 < memory.value < 100
    assert f"of {psutil.virtual_memory().total / 2**30:.1f} GiB" in memory.summary

    assert_no_keys(list(results.values()), user.auth_key, user.priv_key)


def assert_refused_not_down(results: list[Result], reason: str, report: str) -> Result:
    """A device that refuses our SNMPv3 credentials is up: reachability is UNKNOWN naming the
    problem (never "down"/CRIT), every other item UNKNOWN with the same reason, no key shown."""
    found = by_key(results)
    reachable = found["snmp.reachable"]
    assert reachable.status is Status.UNKNOWN and reachable.value is None, reachable
    assert reachable.summary.startswith(reason), reachable.summary
    assert reachable.facts["snmpv3_problem"] == reason
    assert reachable.facts.get("usm_report", "") == report
    measured = [r for r in results if r.check != "snmp.reachable"]
    assert measured and all(r.status is Status.UNKNOWN for r in measured)
    for r in measured:
        assert r.summary.startswith(f"SNMPv3 credentials refused: {reason}"), r.summary
    return reachable


async def test_wrong_auth_key_is_unknown_with_the_reason(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """snmpd answers a bad digest with a usmStatsWrongDigests report; gufo only says
    "authentication failed", the diagnosis reads the report's OID."""
    target = snmpd.target(SHA_AES, auth_key=WRONG, timeout=1.0)
    results = await poll(probe, target, CHECKS)
    reachable = assert_refused_not_down(results, usm.AUTH_FAILED, "usmStatsWrongDigests")
    assert "it is up, only our credentials fail" in reachable.summary
    assert_no_keys(results, WRONG, SHA_AES.auth_key, SHA_AES.priv_key)


async def test_wrong_auth_protocol_reads_as_wrong_auth(snmpd: Snmpd, probe: SnmpProbe) -> None:
    target = snmpd.target(SHA_AES, auth_protocol="md5", timeout=1.0)
    results = await poll(probe, target, {"snmp.reachable", "inventory.system"})
    assert_refused_not_down(results, usm.AUTH_FAILED, "usmStatsWrongDigests")


async def test_wrong_priv_key_is_unknown_with_the_reason(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """net-snmp cannot decrypt the request and drops it without a report (its log says "error
    parsing ScopedPDU"); the device still answers a plain request for the user, so silence to
    encrypted ones is read as a wrong priv key."""
    target = snmpd.target(SHA_AES, priv_key=WRONG, timeout=1.0, retries=1)
    started = time.monotonic()
    results = await poll(probe, target, CHECKS)
    took = time.monotonic() - started
    reachable = assert_refused_not_down(results, usm.DECRYPTION_FAILED, "")
    assert f"knows user '{SHA_AES.name}'" in reachable.summary
    # The original failure is kept in the summary: gufo's discovery step stayed unanswered.
    assert re.search(
        r"no answer to (SNMPv3 engine discovery|GET) within 1 s \(2 attempts\)",
        reachable.summary,
    ), reachable.summary
    print(f"wrong priv key diagnosed in {took:.2f}s (2 x 1 s timeouts + 1 s diagnosis)")
    assert_no_keys(results, WRONG, SHA_AES.auth_key, SHA_AES.priv_key)


async def test_unknown_user_is_refused(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """An unknown user name gets a usmStatsUnknownUserNames report from snmpd."""
    target = snmpd.target(SHA_AES, user="nobody-here", timeout=1.0)
    results = await poll(probe, target, {"snmp.reachable", "inventory.system"})
    reachable = assert_refused_not_down(results, usm.UNKNOWN_USER, "usmStatsUnknownUserNames")
    assert "the device has no SNMPv3 user 'nobody-here'" in reachable.summary


@pytest.mark.parametrize("black_hole", [True, False], ids=["silent", "port-unreachable"])
async def test_v3_device_that_is_gone_is_still_down(probe: SnmpProbe, black_hole: bool) -> None:
    """snmpd stopped: its port either swallows everything (a socket bound there that never
    answers, like a host that drops the packets) or answers "port unreachable". Both stay
    "down"; only the silent one is diagnosed, at the cost of about one more timeout."""
    server = Snmpd([SHA_AES])
    await asyncio.to_thread(server.start)
    target = server.target(SHA_AES, timeout=0.5, retries=0)
    await asyncio.to_thread(server.stop)
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if black_hole:
            hole.bind((server.host, server.port))
        started = time.monotonic()
        found = by_key(await poll(probe, target, {"snmp.reachable", "inventory.system"}))
        took = time.monotonic() - started
    finally:
        hole.close()
        await asyncio.to_thread(server.close)
    reachable = found["snmp.reachable"]
    assert reachable.value == "down" and reachable.status is Status.CRIT, reachable
    assert "snmpv3_problem" not in reachable.facts
    assert found["inventory.system"].summary.startswith("device not answering SNMP: ")
    if black_hole:
        assert "no answer to SNMPv3 engine discovery within 0.5 s" in reachable.summary
        assert 0.9 < took < 4.0, took  # gufo 0.5 s, the diagnosis 0.5 s + pysnmp start-up
    else:
        assert "port unreachable" in reachable.summary
        assert took < 0.5, took
    print(f"gone v3 device ({'silent' if black_hole else 'refused'}): {took:.2f}s")


async def test_v3_only_agent_refuses_default_communities(snmpd: Snmpd, probe: SnmpProbe) -> None:
    target = snmpd.target(SHA_AES, timeout=1.0)
    [result] = await poll(probe, target, {COMMUNITY_CHECK})
    assert result.value == "refused" and result.status is Status.OK


async def test_v3_agent_still_answering_public_is_caught(probe: SnmpProbe) -> None:
    """A net-snmp agent with SNMPv3 users and a leftover ``rocommunity public``: the worst
    case of the default-community item, against the real thing."""
    server = Snmpd([SHA_AES], communities=("public",))
    try:
        await asyncio.to_thread(server.start)
        [result] = await poll(probe, server.target(SHA_AES, timeout=1.0), {COMMUNITY_CHECK})
    finally:
        await asyncio.to_thread(server.close)
    assert result.value == "public" and result.status is Status.CRIT
    assert result.facts["worst_case"] == "SNMPv3 device answers SNMPv2c"
    uname = os.uname()
    assert result.facts["answer_public"].startswith(f"{uname.sysname} {uname.nodename}")
    assert_no_keys([result], SHA_AES.auth_key, SHA_AES.priv_key)
