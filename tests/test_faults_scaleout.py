"""Two collectors sharing one broker subscription and one PostgreSQL, under faults.

A separate publisher streams results (unique ``msg_id``, QoS 1) through a real Mosquitto to
two collectors in one shared subscription, on a PostgreSQL server of the test's own. In the
middle of the stream one collector is killed with SIGKILL and, later, PostgreSQL is restarted
under the survivor (every connection cut). The survivor must carry on through both; once the
killed collector is started again — as systemd would — every result is stored exactly once
and every failing check has exactly one incident.

Mosquitto keeps the messages it had handed to the killed member (sent, not acknowledged), and
its further share of the round-robin, in that member's persistent session rather than giving
them to the other member. The first test turns session adoption off and records how many
results waited for the killed collector to come back; the second leaves adoption on
(collector/peers.py) and proves the survivor stores them without it, then lets the session go
when the killed collector returns.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.support.broker import Broker
from tests.support.configs import collector_toml
from tests.support.postgres import OwnPostgres
from tests.support.procs import Proc, http_json, wait_for
from tests.support.stream import start_publisher, write_payloads

SITE, AGENT = "s1", "a1"
TARGETS, ROUNDS, BATCH = 100, 80, 50
CRIT_TARGETS, CRIT_ROUNDS = 10, (25, 55)


def _config(folder: Path, broker: Broker, db_url: str, name: str, takeover: float = 0) -> Path:
    folder.mkdir(exist_ok=True)
    cfg, _ = collector_toml(
        folder,
        broker.port,
        client_id=f"fieldmon-{name}",
        extra="[incidents]\nstale_intervals = 100\n",
    )
    text = cfg.read_text()
    text = text.replace(f'url = "sqlite:///{folder}/collector.db"', f'url = "{db_url}"')
    cfg.write_text(
        text.replace(
            "max_backoff = 2\n",
            f"max_backoff = 2\nshared = true\ntakeover_after_seconds = {takeover}\n",
        )
    )
    return cfg


def _http_port(cfg: Path) -> int:
    return int(cfg.read_text().split("port = ")[-1].split("\n")[0])


def _wait_subscribed(name: str, cfg: Path) -> None:
    port = _http_port(cfg)
    wait_for(
        lambda: http_json(f"http://127.0.0.1:{port}/healthz")["broker"],
        60,
        what=f"{name} subscribed",
    )


def _start_two(
    tmp_path: Path, broker: Broker, db_url: str, takeover: float
) -> tuple[dict[str, Path], dict[str, Proc]]:
    """Collectors c1 and c2 in one shared subscription, both subscribed when this returns."""
    cfgs = {n: _config(tmp_path / n, broker, db_url, n, takeover) for n in ("c1", "c2")}
    procs = {
        n: Proc(["collector", "run", "--config", str(c)], tmp_path / f"{n}.log")
        for n, c in cfgs.items()
    }
    for name in procs:
        _wait_subscribed(name, cfgs[name])
    return cfgs, procs


def _stream_and_kill_c1(
    tmp_path: Path,
    broker: Broker,
    procs: dict[str, Proc],
    received: Callable[[], int],
    total: int,
) -> subprocess.Popen[bytes]:
    """Start the stream of ``tmp_path/payloads``; SIGKILL c1 once a fifth is stored."""
    publisher = start_publisher(
        broker.port, tmp_path / "payloads", f"fieldmon/v1/{SITE}/{AGENT}/results", 0.05
    )
    wait_for(lambda: received() >= total // 5, 90, interval=0.1, what="a fifth stored")
    procs["c1"].stop(signal.SIGKILL)
    return publisher


def _count(dsn: str, sql: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as db:
            row = db.execute(sql).fetchone()
    except psycopg.OperationalError:
        return -1  # the server is restarting
    return int(row[0]) if row and row[0] is not None else 0


def test_survivor_carries_on_through_a_kill_and_a_database_restart(
    tmp_path: Path, own_broker: Broker, own_postgres: OwnPostgres
) -> None:
    db_url = own_postgres.create_db("fieldmon")
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    total = write_payloads(
        tmp_path / "payloads",
        SITE,
        AGENT,
        targets=TARGETS,
        rounds=ROUNDS,
        batch=BATCH,
        crit_targets=CRIT_TARGETS,
        crit_rounds=CRIT_ROUNDS,
        tag="scale",
    )
    cfgs, procs = _start_two(tmp_path, own_broker, db_url, takeover=0)

    def received() -> int:
        return _count(dsn, "SELECT count(*) FROM received")

    publisher: subprocess.Popen[bytes] | None = None
    try:
        publisher = _stream_and_kill_c1(tmp_path, own_broker, procs, received, total)
        at_kill = received()
        assert at_kill < total // 2, "the kill came too late in the stream to prove anything"
        wait_for(lambda: received() >= at_kill + 500, 60, what="the survivor carries on alone")

        own_postgres.restart()
        after_restart = received()
        wait_for(
            lambda: received() >= after_restart + 500, 90, what="the survivor reconnects to PG"
        )
        assert publisher.wait(120) == 0, "the broker did not acknowledge every batch"
        # Everything not held for the dead member reaches the survivor.
        wait_for(
            lambda: received() == (settled := received()) and settled > 0,
            30,
            interval=3,
            what="the survivor settles",
        )
        held = total - received()

        procs["c1"] = Proc(["collector", "run", "--config", str(cfgs["c1"])], tmp_path / "c1b.log")
        wait_for(lambda: received() >= total, 90, interval=0.5, what="every result stored")
        samples = _count(dsn, "SELECT coalesce(sum(samples), 0) FROM inspection")
        assert received() == total
        assert samples == total, f"{samples} samples for {total} results"
        with psycopg.connect(dsn) as db:
            per_check = db.execute(
                "SELECT target, count(*) FROM incidents WHERE \"check\" = 'mem.usage' "
                "GROUP BY target ORDER BY target"
            ).fetchall()
        assert per_check == [(f"t{t:03d}", 1) for t in range(CRIT_TARGETS)]
        print(f"held for the killed collector until it returned: {held} of {total}")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        codes = {name: proc.stop() for name, proc in procs.items()}
    survivor = procs["c2"].output()
    assert codes["c2"] == 0, survivor[-3000:]
    assert "Traceback" not in survivor, survivor[-3000:]


def _ingested(cfg: Path) -> float:
    """The collector's own count of stored results, from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{_http_port(cfg)}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("fieldmon_ingest_results_total")
    )


def test_survivor_adopts_a_dead_collectors_session_and_lets_it_go(
    tmp_path: Path, own_broker: Broker, own_postgres: OwnPostgres
) -> None:
    db_url = own_postgres.create_db("fieldmon")
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    total = write_payloads(
        tmp_path / "payloads", SITE, AGENT, targets=TARGETS, rounds=40, batch=BATCH, tag="adopt"
    )
    cfgs, procs = _start_two(tmp_path, own_broker, db_url, takeover=3)

    def received() -> int:
        return _count(dsn, "SELECT count(*) FROM received")

    publisher: subprocess.Popen[bytes] | None = None
    try:
        publisher = _stream_and_kill_c1(tmp_path, own_broker, procs, received, total)
        assert received() < total // 2, "the kill came too late in the stream to prove anything"
        assert publisher.wait(120) == 0, "the broker did not acknowledge every batch"
        # Nobody restarts c1: the survivor adopts its session and stores its share.
        wait_for(lambda: received() >= total, 60, interval=0.5, what="every result stored")
        assert received() == total
        assert "taking over its session" in procs["c2"].output()

        # c1 returns: the survivor lets the session go, and the two split the load again.
        procs["c1"] = Proc(["collector", "run", "--config", str(cfgs["c1"])], tmp_path / "c1b.log")
        _wait_subscribed("c1", cfgs["c1"])
        wait_for(lambda: "letting its session go" in procs["c2"].output(), 30, what="c2 lets go")
        more = write_payloads(
            tmp_path / "more", SITE, AGENT, targets=TARGETS, rounds=10, batch=BATCH, tag="more"
        )
        publisher = start_publisher(
            own_broker.port, tmp_path / "more", f"fieldmon/v1/{SITE}/{AGENT}/results", 0.02
        )
        assert publisher.wait(120) == 0
        wait_for(lambda: received() >= total + more, 60, interval=0.5, what="the rest stored")
        assert received() == total + more
        assert _ingested(cfgs["c1"]) > 0, "the returned collector got no share"
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        codes = {name: proc.stop() for name, proc in procs.items()}
    survivor = procs["c2"].output()
    assert codes["c2"] == 0, survivor[-3000:]
    assert "Traceback" not in survivor, survivor[-3000:]
