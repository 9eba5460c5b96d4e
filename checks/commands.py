"""Requests the collector sends to agents: today one, "run the inspection now".

Why retained, with an id: the collector asks on a schedule (the monthly inspection) or when an
engineer says so, and the agent may be offline at that moment. The request is published
retained on ``fieldmon/v1/{site}/{agent}/command``, so the agent finds it whenever it next
connects; the agent remembers the last id it carried out, so a redelivery or a reconnect
never runs the same inspection twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from checks.topics import NAME_RE, PREFIX, check_name

SCHEMA_VERSION = 1
MAX_COMMAND_BYTES = 64 * 1024
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def command_topic(site: str, agent: str) -> str:
    """Where ``agent`` of ``site`` listens for requests (the broker's ACL: it may only read it)."""
    return f"{PREFIX}/{check_name('site', site)}/{check_name('agent', agent)}/command"


@dataclass(frozen=True, slots=True)
class InspectRequest:
    request_id: str
    #: Target names to inspect; empty means every target of the agent.
    targets: tuple[str, ...]
    requested_by: str
    requested_at: datetime


def encode_inspect(req: InspectRequest) -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA_VERSION,
            "command": "inspect",
            "request_id": req.request_id,
            "targets": list(req.targets),
            "requested_by": req.requested_by,
            "requested_at": req.requested_at.astimezone(UTC).isoformat(),
        }
    )


def decode_command(payload: bytes) -> InspectRequest:
    """Parse a request; ValueError naming what is wrong with it."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise ValueError(f"command of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"command is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("command is not a JSON object")
    if body.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"command schema {body.get('schema')!r} is not {SCHEMA_VERSION}")
    if body.get("command") != "inspect":
        raise ValueError(f"unknown command {body.get('command')!r}")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise ValueError(f"request_id {rid!r} is not 1-64 letters, digits, '.', '_', ':', '-'")
    targets = body.get("targets", [])
    if not isinstance(targets, list) or not all(
        isinstance(t, str) and NAME_RE.fullmatch(t) for t in targets
    ):
        raise ValueError("targets must be a list of target names")
    by = body.get("requested_by", "")
    if not isinstance(by, str) or len(by) > 64:
        raise ValueError("requested_by must be a string of at most 64 characters")
    try:
        at = datetime.fromisoformat(str(body.get("requested_at")))
    except ValueError:
        raise ValueError(f"requested_at {body.get('requested_at')!r} is not a time") from None
    if at.tzinfo is None:
        raise ValueError("requested_at needs a UTC offset")
    return InspectRequest(rid, tuple(targets), by, at)
