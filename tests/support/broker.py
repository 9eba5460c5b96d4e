"""A real Mosquitto broker per test session (or per test, when a test must stop it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fieldmon.allinone import free_port, give_to_broker_user, mosquitto_conf, wait_port
from fieldmon.processes import stop_process


class Broker:
    def __init__(self, extra_conf: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fm-broker-"))
        self.port = free_port()
        self.host = "127.0.0.1"
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None
        data = self.dir / "data"
        data.mkdir()
        give_to_broker_user(self.dir)
        give_to_broker_user(data)

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.dir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(self.port, self.dir / "data") + self.extra_conf)
        self.log = (self.dir / "broker.log").open("ab")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=self.log)
        import time

        if not wait_port(self.port, time.monotonic() + 10):
            raise RuntimeError(f"mosquitto did not start: {(self.dir / 'broker.log').read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A broker shared by the tests that only publish and subscribe."""
    b = Broker()
    b.start()
    yield b
    b.cleanup()


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A broker this test may stop and restart."""
    b = Broker()
    b.start()
    yield b
    b.cleanup()
