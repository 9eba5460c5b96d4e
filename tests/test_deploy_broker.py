"""``fieldmon deploy broker`` against a real Mosquitto started with the generated files.

The ACL is what makes "the collector trusts the topic" safe, so it is tested the way an
attacker would meet it: wrong passwords, another agent's topic, a client that does not trust
the CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fieldmon.allinone import free_port, give_to_broker_user, wait_port
from fieldmon.deploy import COLLECTOR_USER, make_ca
from tests.support.procs import fieldmon

SITE = "s1"


@dataclass
class Deployed:
    dir: Path
    port: int
    passwords: dict[str, str]
    log: Path


def _read_passwords(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    for line in path.read_text().splitlines():
        user, pw = line.split(" ", 1)
        users[user] = pw
    return users


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """The command's output, run by a real Mosquitto on a free loopback port."""
    root = Path(tempfile.mkdtemp(prefix="fm-deploy-"))
    root.chmod(0o755)  # the broker drops to the mosquitto user and must reach its files
    data = root / "data"
    data.mkdir()
    give_to_broker_user(data)
    port = free_port()
    out = root / "broker"
    done = fieldmon(
        "deploy", "broker", "--site", SITE, "--agents", "a1,a2", "--out", str(out),
        "--port", str(port), "--bind", "127.0.0.1", "--data-dir", str(data),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    passwords = _read_passwords(out / "credentials" / "all.txt")
    for user, pw in passwords.items():  # printed once, and the same as in the 0600 file
        assert user in done.stdout and pw in done.stdout
    log = root / "broker.log"
    with log.open("ab") as fh:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        proc = subprocess.Popen([exe, "-c", str(out / "mosquitto.conf")], stdout=fh, stderr=fh)
    try:
        if not wait_port(port, time.monotonic() + 10):
            raise RuntimeError(f"mosquitto did not start: {log.read_text()}")
        yield Deployed(out, port, passwords, log)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


class Client:
    """A paho client driven synchronously: connect, report the broker's answer, collect."""

    def __init__(self, d: Deployed, user: str, password: str, ca: Path | None) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.time_ns()}")
        self.c.username_pw_set(user, password)
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
        self.c.tls_set_context(ctx)
        self.answer: threading.Event = threading.Event()
        self.refused: bool | None = None
        self.received: list[str] = []
        self.subscribed = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, msg: self.received.append(msg.topic)
        self.c.on_subscribe = lambda *_a: self.subscribed.set()
        self.d = d

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        self.refused = bool(getattr(rc, "is_failure", False))
        self.answer.set()

    def connect(self) -> bool:
        """True if the broker accepted us."""
        self.c.connect("127.0.0.1", self.d.port, keepalive=10)
        self.c.loop_start()
        assert self.answer.wait(10), "no CONNACK"
        return not self.refused

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _connect(d: Deployed, user: str, password: str) -> Client:
    c = Client(d, user, password, d.dir / "ca.crt")
    assert c.connect(), f"{user} was refused: {d.log.read_text()}"
    return c


def test_files_private_and_complete(deployed: Deployed) -> None:
    assert set(deployed.passwords) == {COLLECTOR_USER, "a1", "a2"}
    for name in ("ca.key", "server.key", "passwd", "acl"):
        assert (deployed.dir / name).stat().st_mode & 0o007 == 0, name
    for snippet in (deployed.dir / "credentials").iterdir():
        assert snippet.stat().st_mode & 0o077 == 0, snippet
    assert "topic write fieldmon/v1/s1/a1/#" in (deployed.dir / "acl").read_text()


def test_wrong_password_refused(deployed: Deployed) -> None:
    c = Client(deployed, "a1", deployed.passwords["a2"], deployed.dir / "ca.crt")
    try:
        assert not c.connect()
    finally:
        c.close()
    unknown = Client(deployed, "intruder", "x", deployed.dir / "ca.crt")
    try:
        assert not unknown.connect()
    finally:
        unknown.close()


def test_agent_only_reaches_its_own_topic(deployed: Deployed) -> None:
    coll = _connect(deployed, COLLECTOR_USER, deployed.passwords[COLLECTOR_USER])
    a1 = _connect(deployed, "a1", deployed.passwords["a1"])
    try:
        coll.c.subscribe("fieldmon/v1/#", qos=1)
        assert coll.subscribed.wait(10)
        foreign = a1.c.publish(f"fieldmon/v1/{SITE}/a2/results", b"{}", qos=1)
        other_site = a1.c.publish("fieldmon/v1/s2/a1/results", b"{}", qos=1)
        own = a1.c.publish(f"fieldmon/v1/{SITE}/a1/results", b"{}", qos=1)
        for info in (foreign, other_site, own):
            info.wait_for_publish(10)
        deadline = time.monotonic() + 10
        while f"fieldmon/v1/{SITE}/a1/results" not in coll.received:
            assert time.monotonic() < deadline, "the agent's own result never arrived"
            time.sleep(0.05)
        time.sleep(0.5)  # anything forged would have been routed by now, in publish order
        assert coll.received == [f"fieldmon/v1/{SITE}/a1/results"]
    finally:
        a1.close()
        coll.close()


def test_agent_cannot_read_others(deployed: Deployed) -> None:
    a1 = _connect(deployed, "a1", deployed.passwords["a1"])
    a2 = _connect(deployed, "a2", deployed.passwords["a2"])
    try:
        a1.c.subscribe("fieldmon/v1/#", qos=1)
        assert a1.subscribed.wait(10)
        a2.c.publish(f"fieldmon/v1/{SITE}/a2/results", b"{}", qos=1).wait_for_publish(10)
        time.sleep(0.5)
        assert a1.received == []
    finally:
        a1.close()
        a2.close()


def test_tls_needs_the_generated_ca(deployed: Deployed, tmp_path: Path) -> None:
    ok = _connect(deployed, "a1", deployed.passwords["a1"])
    ok.close()
    # Another CA (and, separately, the system's public roots) must not be trusted.
    _, other = make_ca("someone else")
    from cryptography.hazmat.primitives.serialization import Encoding

    other_ca = tmp_path / "other.crt"
    other_ca.write_bytes(other.public_bytes(Encoding.PEM))
    for ca in (other_ca, None):
        c = Client(deployed, "a1", deployed.passwords["a1"], ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            c.connect()


def test_given_ca_is_used(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from fieldmon.deploy import pem_key

    key, cert = make_ca("customer CA")
    (tmp_path / "ca.crt").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(pem_key(key))
    out = tmp_path / "b"
    done = fieldmon(
        "deploy", "broker", "--site", SITE, "--agents", "a1", "--out", str(out),
        "--ca-cert", str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "ca.key"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (out / "ca.key").exists()
    server = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert server.issuer == cert.subject


@pytest.mark.parametrize(
    "args",
    [
        ["--agents", "a/1"],
        ["--agents", "a1,a1"],
        ["--agents", COLLECTOR_USER],
        ["--agents", "a1", "--ca-cert", "/nonexistent"],
    ],
)
def test_bad_requests_write_nothing(args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "b"
    done = fieldmon("deploy", "broker", "--site", SITE, "--out", str(out), *args)
    assert done.returncode == 2
    assert "fieldmon:" in done.stderr
    assert not out.exists()


def test_collector_uses_its_snippet(deployed: Deployed, tmp_path: Path) -> None:
    """The printed [mqtt] block is enough for the real collector to connect over TLS."""
    from tests.support.procs import Proc, http_json, wait_for

    snippet = (deployed.dir / "credentials" / f"{COLLECTOR_USER}.toml").read_text()
    http = free_port()
    cfg = tmp_path / "collector.toml"
    # The test broker listens on 127.0.0.1 only; "localhost" may resolve to ::1 first.
    cfg.write_text(
        snippet.replace('host = "localhost"', 'host = "127.0.0.1"')
        + f'[database]\nurl = "sqlite:///{tmp_path}/c.db"\n'
        + f'[http]\nlisten = "127.0.0.1"\nport = {http}\n[[sites]]\nname = "{SITE}"\n'
    )
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp_path / "collector.log")
    try:
        wait_for(
            lambda: http_json(f"http://127.0.0.1:{http}/healthz")["broker"],
            20,
            what="collector connected to the TLS broker",
        )
    finally:
        assert proc.stop() == 0, proc.output()
