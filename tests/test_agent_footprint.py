"""The agent stays small: ``fieldmon agent run`` never loads the collector's libraries.

The agent's memory goal (idle RSS ≤ 40 MiB, measured by ``bench/agent_rss.py``) holds because
its configuration is validated with msgspec and the wire payloads are built with orjson: pydantic
alone would add about 6 MiB, FastAPI and SQLAlchemy more. One stray import in a module the agent
loads would undo that without any test noticing, so this runs the real agent under
``python -X importtime`` until it has connected and published, and reads what it imported.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiomqtt

from checks.topics import topic
from tests.support.broker import Broker

#: Libraries only the collector (or the tests) may load.
COLLECTOR_ONLY = ("pydantic", "pydantic_core", "fastapi", "starlette", "sqlalchemy", "jinja2")


def _imported(importtime_log: str) -> set[str]:
    """Top-level package names from ``-X importtime`` lines (``import time: … | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


async def test_agent_run_loads_no_collector_library(broker: Broker, tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'site = "s1"\nagent = "slim"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        '[[targets]]\nname = "this-host"\nclass = "linux-server"\n',
        encoding="utf-8",
    )
    log = tmp_path / "agent.log"
    async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
        await sub.subscribe(topic("s1", "slim", "results"), qos=1)
        with log.open("wb") as out:
            argv = ["-X", "importtime", "-m", "fieldmon", "agent", "run", "--config", str(cfg)]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                async with asyncio.timeout(60):
                    message = await anext(sub.messages)
                assert message.payload, "an empty results message"
            finally:
                proc.terminate()
                async with asyncio.timeout(30):
                    await proc.wait()
    text = log.read_text(errors="replace")
    imported = _imported(text)
    assert {"agent", "checks", "msgspec", "aiomqtt", "psutil"} <= imported, sorted(imported)
    loaded = sorted(set(COLLECTOR_ONLY) & imported)
    assert not loaded, f"the agent imported {loaded}; which module pulled them in:\n{text[-3000:]}"
