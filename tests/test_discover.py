"""``fieldmon agent discover`` against every recorded device: the proposed class, and a
[[targets]] block that the agent's own configuration loader accepts as it is."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import pytest

from agent.config import SnmpConfig, load_agent_config
from agent.discover import (
    FALLBACK_CLASS,
    DiscoverError,
    Identity,
    classify,
    discover,
    parse_host,
    render,
)
from checks.catalogue import load_catalogue
from tests.support.procs import fieldmon
from tests.support.snmpsim import HOST, TEST_V3_USER, SnmpSim, all_recordings, free_udp_port

#: Each recording in shared/fixtures/snmprec and the class it must get.
EXPECTED = {
    "apc_smtl1000-nmc3": "ups",
    "axiscam_p5676-le": "camera",
    "comware_a5500": "switch",
    "cumulus_cumulus": "switch",
    "dahua-nvr": "nvr",
    "dsm": "nas",
    "hikvision-cam": "camera",
    "hikvision-nvr": "nvr",
    "ios_c3560": "switch",
    "iosxe_c9300": "switch",
    "ipolis": "camera",
    "junos_qfx5130-32cd-evo": "switch",
    "linux_powermon": "server-snmp",
    "routeros_crs317": "switch",
    "ruijie": "switch",
    "vivotek": "camera",
    "vrp_5720-32x-ei": "switch",
    "windows_svr_2019_1809": "windows-server",
    "yunshan_s5735-v2": "switch",
}


def config(sim: SnmpSim, community: str, **fields: Any) -> SnmpConfig:
    return SnmpConfig.from_dict(
        {"port": sim.port, "community": community, "timeout": 1.0, **fields}
    )


def test_every_recording_is_listed() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in all_recordings())
    assert set(EXPECTED.values()) <= set(load_catalogue())


@pytest.mark.parametrize(("community", "device_class"), sorted(EXPECTED.items()))
async def test_recording_gets_its_class(
    snmpsim: SnmpSim, community: str, device_class: str
) -> None:
    found = await discover(HOST, config(snmpsim, community), trial=False)
    assert found.device_class == device_class, found.reason
    assert not found.trial


@pytest.mark.parametrize(
    ("community", "disabled"),
    [
        ("vrp_5720-32x-ei", {"hw.psu"}),
        ("apc_smtl1000-nmc3", {"ups.battery_status"}),
        ("dsm", {"clock.drift"}),
        (
            "hikvision-cam",
            {
                "clock.drift",
                "disk.status",
                "hw.temperature",
                "if.oper_status",
                "inventory.system",
                "snmp.uptime",
            },
        ),
    ],
)
async def test_block_is_a_valid_target_with_unexposed_items_disabled(
    snmpsim: SnmpSim, community: str, disabled: set[str]
) -> None:
    found = await discover(HOST, config(snmpsim, community))
    assert found.trial and not found.problems
    assert set(found.disabled) == disabled
    block = render(found)
    parsed = tomllib.loads(block)
    cfg = load_agent_config(None, {"site": "s", "agent": "a", **parsed})
    target = cfg.targets[0]
    assert target.device_class == EXPECTED[community]
    assert set(target.disabled) == disabled
    assert target.snmp is not None
    assert target.snmp.community.get_secret_value() == community
    assert target.snmp.port == snmpsim.port
    for check in disabled:  # each disabled item says why, as a comment
        assert f'"{check}",  # ' in block


def test_rendered_block_shape(snmpsim: SnmpSim) -> None:
    """What an operator pastes: identity comments, then the table (no trial: no disabled)."""
    found = asyncio.run(discover(HOST, config(snmpsim, "dahua-nvr"), trial=False))
    assert render(found) == (
        "# 127.0.0.1: class 'nvr' (Dahua recorder (model names NVR/DVR/XVR))\n"
        "# sysObjectID 1.3.6.1.4.1.1004849.3.2.10\n"
        "# sysDescr DH-NVR4108HS-8P-4KS2\n"
        "# 1.3.6.1.4.1.1004849.2.1.2.6.0 = DH-NVR4108HS-8P-4KS2\n"
        "[[targets]]\n"
        'name = "nvr-127-0-0-1"\n'
        'class = "nvr"\n'
        'address = "127.0.0.1"\n'
        "[targets.snmp]\n"
        'version = "2c"\n'
        'community = "dahua-nvr"\n'
        f"port = {snmpsim.port}\n"
        "timeout = 1.0\n"
    )


async def test_snmpv3_discovery(snmpsim: SnmpSim) -> None:
    v3 = config(
        snmpsim,
        "unused",
        version="3",
        user=TEST_V3_USER.name,
        auth_protocol="sha",
        auth_key=TEST_V3_USER.auth_key,
        priv_protocol="aes",
        priv_key=TEST_V3_USER.priv_key,
    )
    found = await discover(HOST, v3, trial=False)
    assert found.device_class == "nvr"  # the v3 user is served dahua-nvr
    parsed = tomllib.loads(render(found))["targets"][0]["snmp"]
    assert parsed["user"] == TEST_V3_USER.name
    assert parsed["priv_protocol"] == "aes"
    assert "community" not in parsed


async def test_snmpv1_discovery(snmpsim: SnmpSim) -> None:
    """On SNMPv1 one unknown OID fails a whole GET; the identity OIDs the device lacks must
    not hide the ones it has."""
    found = await discover(HOST, config(snmpsim, "ipolis", version="1"))
    assert found.device_class == "camera"
    assert found.identity.sys_descr == "SAMSUNG iPolis H.264 Premium Level IP Camera"
    assert 'version = "1"' in render(found)


async def test_silent_device() -> None:
    dead = SnmpConfig.from_dict({"port": free_udp_port(), "timeout": 0.3, "retries": 0})
    with pytest.raises(DiscoverError, match=r"nothing answers|no answer"):
        await discover(HOST, dead)


@pytest.mark.parametrize(
    ("descr", "sys_object_id", "device_class"),
    [
        ("Huawei AR6280 Huawei Versatile Routing Platform", "1.3.6.1.4.1.2011.2.224.1", "router"),
        (
            "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M)",
            "1.3.6.1.4.1.9.1.1043",
            "router",
        ),
        ("Cisco Adaptive Security Appliance Version 9.8(4)", "1.3.6.1.4.1.9.1.2313", "router"),
        ("Cisco IOS Software, C2960X Software", "1.3.6.1.4.1.9.1.1208", "switch"),
        ("H3C Comware Platform Software, H3C MSR3620", "1.3.6.1.4.1.25506.11.1.160", "router"),
        ("Juniper Networks, Inc. srx340 internet router", "1.3.6.1.4.1.2636.1.1.1.2.135", "router"),
        (
            "Juniper Networks, Inc. ex4300-48t Ethernet Switch",
            "1.3.6.1.4.1.2636.1.1.1.2.63",
            "switch",
        ),
        ("RouterOS RB4011iGS+", "1.3.6.1.4.1.14988.1", "router"),
        ("Ruijie Gateway(RG-EG3250)", "1.3.6.1.4.1.4881.1.1.10.1.99", "router"),
        ("DH-IPC-HFW2431S", "1.3.6.1.4.1.1004849.3.1.1", "camera"),
        ("; AXIS S3008 Recorder; Network Video Recorder; 11.0", "1.3.6.1.4.1.368.1.1", "nvr"),
        ("Some Vendor PoE Switch", "1.3.6.1.4.1.99999.1", "switch"),
        ("FreeBSD gateway 13.2-RELEASE", "1.3.6.1.4.1.99999.2", "server-snmp"),
        ("", "", FALLBACK_CLASS),
    ],
)
def test_rules_beyond_the_recordings(descr: str, sys_object_id: str, device_class: str) -> None:
    """The rule table covers the router/firewall lines and cameras no recording has."""
    assert classify(Identity(descr, sys_object_id))[0] == device_class


def test_hikvision_recorder_by_model() -> None:
    nvr = Identity(vendor={"1.3.6.1.4.1.39165.1.1.0": "DS-7608NI-K2"})
    cam = Identity(vendor={"1.3.6.1.4.1.39165.1.1.0": "DS-2CD2185FWD-I"})
    assert classify(nvr)[0] == "nvr"
    assert classify(cam)[0] == "camera"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("192.0.2.10", ("192.0.2.10", None)),
        ("192.0.2.10:1161", ("192.0.2.10", 1161)),
        ("sw1.example.net:161", ("sw1.example.net", 161)),
        ("[2001:db8::1]:161", ("2001:db8::1", 161)),
        ("2001:db8::1", ("2001:db8::1", None)),
    ],
)
def test_parse_host(spec: str, expected: tuple[str, int | None]) -> None:
    assert parse_host(spec) == expected


@pytest.mark.parametrize("spec", ["", ":161", "host:0", "host:http", "[::1]:99999"])
def test_parse_host_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_host(spec)


def test_cli(snmpsim: SnmpSim) -> None:
    done = fieldmon(
        "agent",
        "discover",
        "--snmp",
        f"{HOST}:{snmpsim.port}",
        "--community",
        "dsm",
        "--timeout",
        "1",
    )
    assert done.returncode == 0, done.stderr
    target = tomllib.loads(done.stdout)["targets"][0]
    assert (target["class"], target["disabled"]) == ("nas", ["clock.drift"])
    silent = fieldmon(
        "agent",
        "discover",
        "--snmp",
        f"{HOST}:{free_udp_port()}",
        "--timeout",
        "0.3",
        "--retries",
        "0",
    )
    assert silent.returncode == 1
    assert silent.stderr.startswith("fieldmon: discover: ")
    bad = fieldmon("agent", "discover", "--snmp", "host:http")
    assert bad.returncode == 2
    assert "port must be a number" in bad.stderr
