"""Wire schema v1: the JSON payloads agents publish and the collector accepts.

Every rejection raises :class:`Rejected` with a machine reason (a bounded set, used as a
metrics label) and a human detail naming the field. The collector never crashes on a payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
)

from checks.result import Result
from checks.status import Status
from checks.topics import NAME_RE, TopicParts

SCHEMA_VERSION = 1
#: Bigger payloads are refused before parsing; a batch of 500 results is about 150 KiB.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_RESULTS_PER_BATCH = 2000


class RejectReason(StrEnum):
    """Why a payload was refused. Bounded: these are metrics label values."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed_json"
    SCHEMA_VERSION = "schema_version"
    INVALID = "invalid_field"
    IDENTITY = "identity_mismatch"
    TOPIC = "bad_topic"
    #: Valid on the wire, but processing failed (a bug): counted and skipped, never retried.
    PROCESSING = "processing_error"


class Rejected(Exception):
    """A payload the collector refuses; ``reason`` is for counting, ``detail`` for the log."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


Name = Annotated[str, Field(pattern=NAME_RE.pattern)]

#: Timestamps outside these years are a broken clock or a forged payload, never data.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2100


def _sane_time(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("time cannot be expressed in UTC") from None
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(f"time must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return utc


Stamp = Annotated[AwareDatetime, AfterValidator(_sane_time)]
CheckId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
WireValue = StrictInt | StrictFloat | Annotated[str, Field(max_length=512)] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WireResult(_Strict):
    msg_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    target: Name
    target_class: Annotated[str, Field(alias="class", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    check: CheckId
    item: Annotated[str, Field(max_length=256)] = ""
    status: Literal["OK", "WARN", "UNKNOWN", "CRIT"]
    value: WireValue = None
    unit: Annotated[str, Field(max_length=16)] = ""
    summary: Annotated[str, Field(max_length=1024)] = ""
    observed_at: Stamp
    facts: Annotated[
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=4096)]],
        # A factory, not ``= {}``: pydantic deep-copies a mutable default for every result.
        Field(max_length=64, default_factory=dict),
    ]


class WireGap(_Strict):
    """Results an agent's outbox had to drop (full, or too old): reported, never hidden."""

    gap_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    dropped: Annotated[int, Field(ge=1)]
    first_observed: Stamp | None = None
    last_observed: Stamp | None = None
    recorded_at: Stamp


class WireBatch(_Strict):
    schema_: Annotated[Literal[1], Field(alias="schema")]
    site: Name
    agent: Name
    sent_at: Stamp
    results: Annotated[list[WireResult], Field(max_length=MAX_RESULTS_PER_BATCH)]
    gaps: Annotated[list[WireGap], Field(max_length=100, default_factory=list)]


class WireStatus(_Strict):
    schema_: Annotated[Literal[1], Field(alias="schema")]
    site: Name
    agent: Name
    #: "offline" is the last will (the agent vanished); "stopped" is a deliberate shutdown.
    state: Literal["online", "offline", "stopped"]
    at: Stamp
    version: Annotated[str, Field(max_length=32)] = ""


#: The last (datetime, text) :func:`_iso` produced. Why: the results of one collection share
#: one ``observed_at`` object, and formatting it again for each of them (every interface of
#: every poll) was a visible part of the agent's per-poll cost. One tuple, read and replaced
#: whole, so that a caller in another thread can never pair one time with another's text.
_iso_last: tuple[datetime | None, str] = (None, "")


def _iso(dt: datetime) -> str:
    global _iso_last
    last, text = _iso_last
    if last is dt:
        return text
    text = dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    _iso_last = (dt, text)
    return text


def result_to_wire(result: Result) -> dict[str, Any]:
    """The JSON object of one result (also the agent outbox's storage form)."""
    out: dict[str, Any] = {
        "msg_id": result.msg_id,
        "target": result.target,
        "class": result.target_class,
        "check": result.check,
        "status": result.status.name,
        "observed_at": _iso(result.observed_at),
    }
    if result.item:
        out["item"] = result.item
    if result.value is not None:
        out["value"] = result.value
    if result.unit:
        out["unit"] = result.unit
    if result.summary:
        out["summary"] = result.summary
    if result.facts:
        out["facts"] = result.facts
    return out


def encode_batch(
    site: str,
    agent: str,
    results: Sequence[dict[str, Any]],
    sent_at: datetime | None = None,
    gaps: Sequence[dict[str, Any]] = (),
) -> bytes:
    """Serialise already-wire-shaped results (see :func:`result_to_wire`) into one payload."""
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "site": site,
        "agent": agent,
        "sent_at": _iso(sent_at or datetime.now(UTC)),
        "results": list(results),
    }
    if gaps:
        body["gaps"] = list(gaps)
    return orjson.dumps(body)


def encode_status(site: str, agent: str, state: str, version: str = "") -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA_VERSION,
            "site": site,
            "agent": agent,
            "state": state,
            "at": _iso(datetime.now(UTC)),
            "version": version,
        }
    )


def _load(payload: bytes, topic: TopicParts) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(
            RejectReason.TOO_LARGE, f"{len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit"
        )
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(RejectReason.MALFORMED, str(exc)) from None
    if not isinstance(data, dict):
        raise Rejected(RejectReason.MALFORMED, f"top level is {type(data).__name__}, not object")
    version = data.get("schema")
    if version != SCHEMA_VERSION:
        raise Rejected(
            RejectReason.SCHEMA_VERSION,
            f"schema {version!r} is not supported (this collector reads {SCHEMA_VERSION})",
        )
    if data.get("site") != topic.site or data.get("agent") != topic.agent:
        raise Rejected(
            RejectReason.IDENTITY,
            f"payload says site={data.get('site')!r} agent={data.get('agent')!r} but was "
            f"published under site={topic.site!r} agent={topic.agent!r}",
        )
    return data


def _explain(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def decode_batch(payload: bytes, topic: TopicParts) -> list[Result]:
    """Validate a results payload received on ``topic``; raise :class:`Rejected` if bad."""
    return decode_payload(payload, topic)[0]


def decode_payload(payload: bytes, topic: TopicParts) -> tuple[list[Result], list[WireGap]]:
    """Results and gap records of one payload; :class:`Rejected` if anything is wrong."""
    data = _load(payload, topic)
    try:
        batch = WireBatch.model_validate(data)
    except ValidationError as exc:
        raise Rejected(RejectReason.INVALID, _explain(exc)) from None
    return _results(batch), list(batch.gaps)


def _results(batch: WireBatch) -> list[Result]:
    return [
        Result(
            msg_id=r.msg_id,
            target=r.target,
            target_class=r.target_class,
            check=r.check,
            item=r.item,
            status=Status[r.status],
            value=float(r.value) if isinstance(r.value, int) else r.value,
            unit=r.unit,
            summary=r.summary,
            observed_at=r.observed_at.astimezone(UTC),
            facts=dict(r.facts),
        )
        for r in batch.results
    ]


def decode_status(payload: bytes, topic: TopicParts) -> WireStatus:
    """Validate a retained status payload received on ``topic``."""
    data = _load(payload, topic)
    try:
        return WireStatus.model_validate(data)
    except ValidationError as exc:
        raise Rejected(RejectReason.INVALID, _explain(exc)) from None
