"""``sec.snmp_default_community`` against snmpsim serving recorded devices (no mocks).

snmpsim answers a community only when a data file of that name exists, so a device that
"still answers public" is a recording served under ``public.snmprec`` beside its own name,
and a locked-down device is one served under its own name only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.config import TargetConfig
from agent.evaluate import to_results
from agent.probes import snmp_community as community
from agent.probes.base import Observation
from agent.probes.snmp import SUPPORTED, SnmpProbe
from agent.scheduler import TargetSchedule
from agent.snmp_client import SnmpUnreachable
from checks.catalogue import load_catalogue
from checks.status import Status
from tests.support.snmpsim import TEST_V3_USER, SnmpSim, free_udp_port, recordings_dir

CHECK = community.CHECK
#: A configured community that must never show up in any result text.
SECRET = "Fm-Secret-Comm-42"
CLASSES = load_catalogue()


def served(folder: Path, recording: str, names: list[str]) -> list[Path]:
    """``recording`` offered under each of ``names`` (symlinks named ``<name>.snmprec``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        link = folder / f"{name}.snmprec"
        link.symlink_to(recordings_dir() / f"{recording}.snmprec")
        out.append(link)
    return out


def start(sim: SnmpSim) -> Iterator[SnmpSim]:
    try:
        sim.start()
        yield sim
    finally:
        sim.close()


@pytest.fixture(scope="module")
def open_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """A Hikvision NVR that answers its own community, the secret one, ``public``, and the
    SNMPv3 user of the fixtures."""
    folder = tmp_path_factory.mktemp("open")
    files = served(folder, "hikvision-nvr", ["hikvision-nvr", "public", SECRET])
    yield from start(SnmpSim(files, v3_user=TEST_V3_USER, v3_recording="hikvision-nvr"))


@pytest.fixture(scope="module")
def private_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """A Samsung iPolis camera (an SNMPv1 agent) that still answers ``private``."""
    folder = tmp_path_factory.mktemp("private")
    yield from start(SnmpSim(served(folder, "ipolis", ["ipolis", "private"])))


@pytest.fixture(scope="module")
def closed_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """A Synology NAS answering only the secret community (and its recording name)."""
    folder = tmp_path_factory.mktemp("closed")
    yield from start(SnmpSim(served(folder, "dsm", ["dsm", SECRET])))


@pytest.fixture
async def probe() -> AsyncIterator[SnmpProbe]:
    p = SnmpProbe({})
    yield p
    await p.close()


async def observe(probe: SnmpProbe, target: TargetConfig) -> Observation:
    """Collect the item through the SNMP probe, as the scheduler does at inspection time."""
    out = await probe.collect(target, {"snmp.reachable", CHECK})
    by_check = {o.check: o for o in out}
    assert by_check["snmp.reachable"].value == "up", by_check["snmp.reachable"].summary
    return by_check[CHECK]


def assert_secret_hidden(obs: Observation) -> None:
    text = " ".join([str(obs.value), obs.summary, *obs.facts.keys(), *obs.facts.values()])
    assert SECRET not in text


async def test_device_answering_public_fails(open_device: SnmpSim, probe: SnmpProbe) -> None:
    target = open_device.target(SECRET, name="nvr-1", device_class="nvr")
    obs = await observe(probe, target)
    assert obs.value == "public"
    assert obs.facts["answered"] == "public"
    assert obs.facts["communities_tried"] == "public, private"
    assert obs.facts["answer_public"] == "Hikvision company products"  # its sysDescr
    assert "answers the default community 'public'" in obs.summary
    assert_secret_hidden(obs)
    [result] = to_results(target, CLASSES["nvr"], [obs])
    assert result.status is Status.CRIT  # the catalogue's threshold, not the probe's


async def test_snmpv3_device_answering_v2c_public_is_the_worst_case(
    open_device: SnmpSim, probe: SnmpProbe
) -> None:
    target = open_device.target(
        "unused",
        name="nvr-v3",
        device_class="nvr",
        version="3",
        user=TEST_V3_USER.name,
        auth_protocol="sha",
        auth_key=TEST_V3_USER.auth_key,
        priv_protocol="aes",
        priv_key=TEST_V3_USER.priv_key,
    )
    obs = await observe(probe, target)
    assert obs.value == "public"
    assert obs.facts["worst_case"] == "SNMPv3 device answers SNMPv2c"
    assert obs.facts["configured_version"] == "3"
    assert "configured for SNMPv3 but still answers SNMPv2c" in obs.summary
    text = obs.summary + " ".join(obs.facts.values())
    for key in (TEST_V3_USER.auth_key, TEST_V3_USER.priv_key):
        assert key is not None and key not in text


async def test_agent_polling_with_public_is_itself_the_finding(
    open_device: SnmpSim, probe: SnmpProbe
) -> None:
    """Configured with ``public``: it is not sent again (the poll itself proved it), only
    ``private`` is tried, and the summary says to change both sides."""
    obs = await observe(probe, open_device.target("public", name="nvr-pub", device_class="nvr"))
    assert obs.value == "public"
    assert obs.facts["communities_tried"] == "private"
    assert "this agent itself polls with the default community 'public'" in obs.summary
    assert "answer_public" not in obs.facts  # nothing was sent with it


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_device_answering_private(
    private_device: SnmpSim, probe: SnmpProbe, version: str
) -> None:
    """SNMPv1 targets are asked in SNMPv1 (an old camera may speak nothing else)."""
    target = private_device.target("ipolis", name="cam-1", device_class="camera", version=version)
    obs = await observe(probe, target)
    assert obs.value == "private"
    assert obs.facts["answer_private"] == "SAMSUNG iPolis H.264 Premium Level IP Camera"
    [result] = to_results(target, CLASSES["camera"], [obs])
    assert result.status is Status.CRIT


async def test_locked_down_device_passes(closed_device: SnmpSim, probe: SnmpProbe) -> None:
    target = closed_device.target(SECRET, name="nas-1", device_class="nas")
    obs = await observe(probe, target)
    assert obs.value == community.REFUSED
    assert "no answer to the default communities public, private" in obs.summary
    assert_secret_hidden(obs)
    [result] = to_results(target, CLASSES["nas"], [obs])
    assert result.status is Status.OK


async def test_device_gone_midway_is_unknown_not_refused(closed_device: SnmpSim) -> None:
    """Silence proves nothing once the device stopped answering the collection itself."""
    target = closed_device.target(SECRET)
    assert target.address is not None and target.snmp is not None
    dead = SnmpUnreachable("127.0.0.1:1: no answer to walk within 1 s")
    obs = await community.check(target.address, target.snmp, dead)
    assert obs.status is Status.UNKNOWN and obs.value is None
    assert "stopped answering" in obs.summary


async def test_unreachable_device_leaves_it_unknown(probe: SnmpProbe) -> None:
    """The collection's own GET fails first: no default community is sent at all."""
    target = TargetConfig.from_dict(
        {
            "name": "gone",
            "class": "switch",
            "address": "127.0.0.1",
            "snmp": {"port": free_udp_port(), "community": SECRET, "timeout": 0.5, "retries": 0},
        }
    )
    obs = {o.check: o for o in await probe.collect(target, {CHECK})}
    assert obs[CHECK].status is Status.UNKNOWN
    assert obs[CHECK].summary.startswith("device not answering SNMP")


def test_catalogue_item_runs_at_the_inspection_interval() -> None:
    for name in ("snmp-device", "switch", "camera", "nvr", "ups", "server-snmp"):
        item = CLASSES[name].item(CHECK)
        assert item is not None, name
        assert item.category == "security" and item.method == "snmp"
        assert item.interval is None  # inspection only, never every poll
        assert item.title["zh-CN"] and item.title["en"]
    assert CHECK in SUPPORTED
    target = TargetConfig.from_dict(
        {"name": "sw", "class": "switch", "address": "127.0.0.1", "snmp": {"community": SECRET}}
    )
    schedule = TargetSchedule(target, CLASSES["switch"], inspection_interval=86_400)
    assert schedule.intervals[CHECK] == 86_400
    assert schedule.intervals["snmp.reachable"] == 60


async def test_probe_notes_where_it_sent_default_communities(closed_device: SnmpSim) -> None:
    """Before the requests leave, the address goes into the registry the agent's trap
    receiver reads, so the authenticationFailure traps they cause are not taken for an
    intrusion (tests/test_traps.py shows that against snmpd's real traps)."""
    target = closed_device.target(SECRET)
    assert target.address is not None and target.snmp is not None
    probed = community.OwnProbes()
    assert probed.since(target.address) is None
    obs = await community.check(target.address, target.snmp, None, probed)
    assert obs.value == community.REFUSED
    since = probed.since(target.address)
    assert since is not None and 0 <= since < 10
    # A device that stopped answering is not sent anything, so nothing is noted.
    gone = community.OwnProbes()
    dead = SnmpUnreachable("127.0.0.1:1: no answer to walk within 1 s")
    await community.check(target.address, target.snmp, dead, gone)
    assert gone.since(target.address) is None
