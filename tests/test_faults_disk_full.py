"""Disk full under the agent's outbox and under the collector's SQLite database.

Each test mounts a small tmpfs (root only) as the state folder, lets the process work, fills
the rest of the filesystem with a filler file, checks how the process behaves while nothing
can be written, deletes the filler and checks that it recovers. The tmpfs is unmounted in a
``finally`` (lazily if a process still holds it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.wire import encode_batch
from tests.support.broker import Broker
from tests.support.configs import LOCAL_TARGET, agent_toml, collector_toml
from tests.support.procs import Proc, http_json, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

#: What a process should say when its disk is full (SQLite's and the OS's wording).
DISK_FULL_WORDS = ("database or disk is full", "No space left on device", "disk full")


@contextlib.contextmanager
def small_fs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem refuses; returns its path."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return filler


def _received(db_path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        received = db.execute("SELECT count(*) FROM received").fetchone()[0]
        samples = db.execute("SELECT coalesce(sum(samples), 0) FROM inspection").fetchone()[0]
    return int(received), int(samples)


def _pub(broker: Broker, payload: bytes) -> None:
    subprocess.run(
        [
            *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1"),
            *("-t", "fieldmon/v1/s1/a1/results", "-s"),
        ],
        input=payload,
        check=True,
        timeout=10,
    )


def _results(first: int, count: int) -> list[dict[str, object]]:
    now = time.time()
    return [
        {
            "msg_id": f"diskfull-{n:06d}",
            "target": f"d{n % 20:02d}",
            "class": "linux-server",
            "check": "cpu.usage",
            "status": "OK",
            "value": 5.0,
            "observed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600 + n)),
        }
        for n in range(first, first + count)
    ]


def test_agent_outbox_disk_full_keeps_running_and_recovers(
    tmp_path: Path, own_broker: Broker
) -> None:
    coll_cfg, port = collector_toml(tmp_path, own_broker.port)
    base = f"http://127.0.0.1:{port}"
    db_path = tmp_path / "collector.db"
    collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "c.log")
    agent: Proc | None = None
    try:
        with small_fs(tmp_path / "agent-a1", "2m") as state:
            wait_for(lambda: http_json(f"{base}/healthz")["broker"], 30, what="collector")
            cfg = agent_toml(tmp_path, own_broker.port, LOCAL_TARGET)
            agent = Proc(["agent", "run", "--config", str(cfg)], tmp_path / "a.log")
            wait_for(lambda: _received(db_path)[0] > 0, 30, what="first results stored")
            filler = fill(state)
            time.sleep(15)  # three 5-second intervals with nothing writable
            alive = agent.proc.poll() is None
            said_so = any(w in agent.output() for w in DISK_FULL_WORDS)
            filler.unlink()
            before = _received(db_path)[0]
            try:
                wait_for(lambda: _received(db_path)[0] >= before + 4, 30, what="results again")
                recovered = True
            except AssertionError:
                recovered = False
            facts = {"still running": alive, "disk full logged": said_so, "recovered": recovered}
            assert all(facts.values()), f"{facts}\n{agent.output()[-3000:]}"
            assert agent.stop() == 0, agent.output()[-3000:]
            agent = None
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()


def test_collector_database_disk_full_holds_acks_and_recovers(
    tmp_path: Path, own_broker: Broker
) -> None:
    data = tmp_path / "data"
    with small_fs(data, "4m"):
        coll_cfg, port = collector_toml(data, own_broker.port)
        db_path = data / "collector.db"
        base = f"http://127.0.0.1:{port}"
        collector = Proc(["collector", "run", "--config", str(coll_cfg)], tmp_path / "c.log")
        try:
            wait_for(lambda: http_json(f"{base}/healthz")["broker"], 30, what="collector")
            _pub(own_broker, encode_batch("s1", "a1", _results(0, 1)))
            wait_for(lambda: _received(db_path)[0] == 1, 20, what="first result stored")
            filler = fill(data)
            for n in range(5):
                _pub(own_broker, encode_batch("s1", "a1", _results(1 + 100 * n, 100)))
            wait_for(
                lambda: "not acknowledged" in collector.output(), 20, what="the failure logged"
            )
            log = collector.output()
            assert any(w in log for w in DISK_FULL_WORDS), log[-3000:]
            assert collector.proc.poll() is None, "the collector must keep running"
            assert _received(db_path)[0] == 1
            filler.unlink()
            # Nothing is published again: what is stored now is what the broker kept queued.
            wait_for(lambda: _received(db_path)[0] >= 501, 60, what="stored after space returned")
            time.sleep(1)
            assert _received(db_path) == (501, 501)
            assert http_json(f"{base}/healthz")["broker"]
        finally:
            assert collector.stop() == 0, collector.output()[-3000:]
