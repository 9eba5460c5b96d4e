"""A high-rate result stream for fault tests: payload files written ahead, then sent by a
separate publisher process, so killing or restarting what receives them cannot slow the
sender down or share its fate."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checks.wire import encode_batch

#: The publisher process: paho-mqtt, QoS 1, every payload file in name order, an optional
#: pause between files (the stream's rate), waits for all PUBACKs from the broker, exits 0
#: only when every one came.
PUBLISHER = r"""
import sys, time, pathlib, paho.mqtt.client as mqtt
port, folder, topic = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
pause = float(sys.argv[4])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fault-publisher")
c.max_inflight_messages_set(50)
c.connect("127.0.0.1", port)
c.loop_start()
infos = []
for p in sorted(folder.glob("*.json")):
    infos.append(c.publish(topic, p.read_bytes(), qos=1))
    if pause:
        time.sleep(pause)
for i in infos:
    i.wait_for_publish(60)
ok = all(i.is_published() for i in infos)
c.disconnect(); c.loop_stop()
sys.exit(0 if ok else 1)
"""


def write_payloads(
    folder: Path,
    site: str,
    agent: str,
    *,
    targets: int,
    rounds: int,
    batch: int,
    crit_targets: int = 0,
    crit_rounds: tuple[int, ...] = (),
    tag: str = "stream",
) -> int:
    """``targets × rounds`` results with unique ``msg_id`` in batches of ``batch``, round by
    round over the targets; the first ``crit_targets`` report ``mem.usage`` CRIT in each of
    ``crit_rounds`` (twice in different batches, so a repeat would show as a second incident).
    Returns the number of results."""
    folder.mkdir()
    base = datetime.now(UTC) - timedelta(seconds=rounds + 30)
    results: list[dict[str, object]] = []
    for rnd in range(rounds):
        at = (base + timedelta(seconds=rnd)).isoformat().replace("+00:00", "Z")
        for t in range(targets):
            crit = t < crit_targets and rnd in crit_rounds
            results.append(
                {
                    "msg_id": f"{tag}-{rnd:04d}-{t:04d}",
                    "target": f"t{t:03d}",
                    "class": "linux-server",
                    "check": "mem.usage" if crit else "cpu.usage",
                    "status": "CRIT" if crit else "OK",
                    "value": 99.0 if crit else 10.0,
                    "unit": "%",
                    "observed_at": at,
                }
            )
    for n in range(0, len(results), batch):
        (folder / f"{n // batch:05d}.json").write_bytes(
            encode_batch(site, agent, results[n : n + batch])
        )
    return len(results)


def start_publisher(
    broker_port: int, folder: Path, topic: str, pause: float = 0.0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(broker_port), str(folder), topic, str(pause)]
    )
