"""kill -9 of a process in the middle of outbox writes, again and again on the same file.

The writer is a real process using the agent's :class:`agent.outbox.Outbox`: it puts batches
as fast as it can and acknowledges (deletes) older ones as a publisher would, printing each
step only after the call returned. It is killed with SIGKILL at a random moment, restarted on
the same file, killed again. After every kill the file must open without being moved aside,
and hold exactly the results that were committed and not acknowledged: nothing the writer
reported as stored is missing, nothing acknowledged comes back, nothing twice, in order.
A result whose ``put`` had not returned when the kill came may or may not be there — the
transaction is all or nothing, so it is either the whole batch or none of it.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.outbox import Outbox

BATCH = 20
ROUNDS = 12

WRITER = r"""
import sys, itertools
from datetime import UTC, datetime
from pathlib import Path
from agent.outbox import Outbox

path, start = Path(sys.argv[1]), int(sys.argv[2])
box = Outbox(path, max_results=10_000_000)
now = datetime.now(UTC).isoformat()
n = start
for step in itertools.count():
    batch = [
        {"msg_id": f"m{i:09d}", "target": "h", "class": "linux-server", "check": "cpu.usage",
         "status": "OK", "value": 1.0, "observed_at": now}
        for i in range(n, n + {BATCH})
    ]
    box.put(batch)
    n += {BATCH}
    print(f"put {n - 1}", flush=True)
    if step % 5 == 4:
        seq, body = box.peek({BATCH} * 2)[-1]
        print(f"acking {body['msg_id'][1:]}", flush=True)
        box.ack(seq)
        print(f"ack {body['msg_id'][1:]}", flush=True)
""".replace("{BATCH}", str(BATCH))


def _number(msg_id: str) -> int:
    return int(msg_id[1:])


def test_kill9_during_outbox_writes_loses_and_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    rng = random.Random(20261204)
    next_id = 0
    acked_up_to = -1
    kills = 0
    for _ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(next_id)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        time.sleep(rng.uniform(0.4, 1.2))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        lines = out.splitlines()
        committed = max(
            [int(x.split()[1]) for x in lines if x.startswith("put ")], default=next_id - 1
        )
        acked_up_to = max(
            [acked_up_to, *(int(x.split()[1]) for x in lines if x.startswith("ack "))]
        )
        # An acknowledgement under way when the kill came either happened or did not.
        maybe_acked = max(
            [acked_up_to, *(int(x.split()[1]) for x in lines if x.startswith("acking "))]
        )

        box = Outbox(path, max_results=10_000_000)
        try:
            ids = [_number(body["msg_id"]) for _, body in box.peek(10_000_000)]
        finally:
            box.close()
        assert not list(tmp_path.glob("*.corrupt-*")), "the killed outbox was taken as corrupt"
        assert ids == sorted(set(ids)), "duplicates or out of order"
        # Nothing acknowledged comes back; everything committed and not acknowledged is there.
        assert all(i > acked_up_to for i in ids)
        if maybe_acked > acked_up_to and (not ids or ids[0] > maybe_acked):
            acked_up_to = maybe_acked
        must = set(range(acked_up_to + 1, committed + 1))
        assert must <= set(ids), f"lost {sorted(must - set(ids))[:5]}…"
        # At most the one batch whose put was under way when the kill came is beyond it.
        beyond = [i for i in ids if i > committed]
        assert beyond in ([], list(range(committed + 1, committed + 1 + BATCH)))
        # The next writer continues after whatever is there (the all-or-nothing batch too).
        next_id = max([committed, *ids]) + 1
    assert kills == ROUNDS and next_id > ROUNDS * BATCH
