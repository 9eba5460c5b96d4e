"""Wire schema v1: the JSON payloads agents publish and the collector accepts.

Every rejection raises :class:`Rejected` with a machine reason (a bounded set, used as a
metrics label) and a human detail naming the field. The collector never crashes on a payload.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson

from checks.result import Result
from checks.status import Status
from checks.topics import NAME_PATTERN, TopicParts

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


# The decoding side is msgspec, not pydantic: the agent imports this module for the encoding
# side only, and pydantic cost it about 6 MiB of memory; msgspec also validates straight from
# the payload's bytes, several times faster. Patterns end in ``\Z``, not ``$``: msgspec runs
# Python's ``re``, where ``$`` also matches before a trailing newline ("name\n").

CHECK_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}\Z"
CLASS_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}\Z"
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
MsgId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}\Z")]
#: Aware timestamps only; the years are checked by :func:`_sane_time`.
Stamp = Annotated[datetime, msgspec.Meta(tz=True)]
#: A number (an integer arrives as a float: msgspec converts it, as :class:`Result` wants) or
#: a short text.
WireValue = float | Annotated[str, msgspec.Meta(max_length=512)] | None
Facts = Annotated[
    dict[
        Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=4096)]
    ],
    msgspec.Meta(max_length=64),
]
#: SQLite's largest integer: a gap record's count is stored as one.
MAX_DROPPED = 2**63 - 1

#: Timestamps outside these years are a broken clock or a forged payload, never data.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2100
_EARLIEST = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
_AFTER_LATEST = datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)
_TIME_RANGE = f"time must be between {EARLIEST_YEAR} and {LATEST_YEAR}"


def _sane_time(field: str, value: datetime) -> datetime:
    """``value`` in UTC; ValueError naming ``field`` outside the accepted years. Comparing
    aware times never overflows, where converting year 1 or 9999 to UTC could."""
    if not _EARLIEST <= value < _AFTER_LATEST:
        raise ValueError(f"{field}: {_TIME_RANGE}")
    return value.astimezone(UTC)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """Unknown fields are refused. Each subclass says ``frozen`` again for mypy, and
    ``kw_only`` to list its fields in wire order. ``gc=False``: these hold only strings,
    numbers, times and a dict of strings, so they can never be part of a reference cycle."""


class WireResult(_Strict, frozen=True, kw_only=True):
    """One result as sent. Its ``observed_at`` years, and the patterns of ``target``,
    ``class`` and ``check``, are checked when it becomes a :class:`Result` (:func:`_results`):
    a hook per result would cost every result a call, and those names repeat in every
    batch, so each distinct one is matched once (:class:`_Names`), not once per result."""

    msg_id: MsgId
    target: str
    target_class: str = msgspec.field(name="class")
    check: str
    item: Annotated[str, msgspec.Meta(max_length=256)] = ""
    status: Literal["OK", "WARN", "UNKNOWN", "CRIT"]
    value: WireValue = None
    unit: Annotated[str, msgspec.Meta(max_length=16)] = ""
    summary: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    observed_at: Stamp
    facts: Facts = msgspec.field(default_factory=dict)


class WireGap(_Strict, frozen=True, kw_only=True):
    """Results an agent's outbox had to drop (full, or too old): reported, never hidden."""

    gap_id: MsgId
    dropped: Annotated[int, msgspec.Meta(ge=1, le=MAX_DROPPED)]
    first_observed: Stamp | None = None
    last_observed: Stamp | None = None
    recorded_at: Stamp

    def __post_init__(self) -> None:
        for field in ("first_observed", "last_observed", "recorded_at"):
            value = getattr(self, field)
            if value is not None:
                msgspec.structs.force_setattr(self, field, _sane_time(field, value))


class WireBatch(_Strict, frozen=True, kw_only=True):
    schema_: Literal[1] = msgspec.field(name="schema")
    site: Name
    agent: Name
    sent_at: Stamp
    results: Annotated[list[WireResult], msgspec.Meta(max_length=MAX_RESULTS_PER_BATCH)]
    gaps: Annotated[list[WireGap], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "sent_at", _sane_time("sent_at", self.sent_at))


class WireStatus(_Strict, frozen=True, kw_only=True):
    schema_: Literal[1] = msgspec.field(name="schema")
    site: Name
    agent: Name
    #: "offline" is the last will (the agent vanished); "stopped" is a deliberate shutdown.
    state: Literal["online", "offline", "stopped"]
    at: Stamp
    version: Annotated[str, msgspec.Meta(max_length=32)] = ""

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "at", _sane_time("at", self.at))


_BATCH = msgspec.json.Decoder(WireBatch)
_STATUS = msgspec.json.Decoder(WireStatus)
_Wire = TypeVar("_Wire", WireBatch, WireStatus)


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


def _too_large(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(
            RejectReason.TOO_LARGE, f"{len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit"
        )


def _identity(site: object, agent: object, topic: TopicParts) -> None:
    if site != topic.site or agent != topic.agent:
        raise Rejected(
            RejectReason.IDENTITY,
            f"payload says site={site!r} agent={agent!r} but was "
            f"published under site={topic.site!r} agent={topic.agent!r}",
        )


def _decode(
    decoder: msgspec.json.Decoder[_Wire], kind: type[_Wire], payload: bytes, topic: TopicParts
) -> _Wire:
    """Validate ``payload`` straight from its bytes; only a payload that fails takes
    :func:`_refused`, which finds the reason the same way for every kind of fault."""
    _too_large(payload)
    try:
        wire = decoder.decode(payload)
    except msgspec.DecodeError:  # ValidationError included
        return _refused(kind, payload, topic)
    _identity(wire.site, wire.agent, topic)
    return wire


def _refused(kind: type[_Wire], payload: bytes, topic: TopicParts) -> _Wire:
    """Why a payload failed, in the order the reasons are checked: malformed JSON (orjson's
    verdict: any syntax error, nesting deeper than 1024, a number beyond a double), a top
    level that is not an object, the schema version, the identity, then the fields.

    The fields are validated from the parsed object, where a repeated key counts once with
    its last value: a payload valid that way is accepted, as it always was."""
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
    _identity(data.get("site"), data.get("agent"), topic)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise Rejected(RejectReason.INVALID, _explain(str(exc))) from None


#: msgspec's message: "<what> - at `$<path>`" (the path left out at the top level), or
#: "<what> - at `key` in `$<path>`" for a dict key.
_AT = re.compile(r"^(?P<what>.*) - at (?P<key>`key` in )?`\$(?P<path>.*)`$", re.DOTALL)
#: Messages that name a field of the object at the path: the field joins the path.
_NAMED = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<field>.*)`$")
#: Messages of this module's own checks: "<field>: <what>".
_OWN = re.compile(r"^(?P<field>[a-z_]+): (?P<what>.*)$", re.DOTALL)


def _explain(message: str) -> str:
    """``results[3].target: Expected `str` matching regex ...``: the offending field first."""
    found = _AT.match(message)
    what, path = (found["what"], found["path"]) if found else (message, "")
    if found and found["key"]:
        path += " key"
    if named := _NAMED.match(what):
        path += f".{named['field']}"
        what = "missing" if named["kind"] == "missing required" else "not a field of schema v1"
    elif own := _OWN.match(what):
        path, what = f"{path}.{own['field']}", own["what"]
    return f"{path.removeprefix('.') or 'payload'}: {what}"


def decode_batch(payload: bytes, topic: TopicParts) -> list[Result]:
    """Validate a results payload received on ``topic``; raise :class:`Rejected` if bad."""
    return decode_payload(payload, topic)[0]


def decode_payload(payload: bytes, topic: TopicParts) -> tuple[list[Result], list[WireGap]]:
    """Results and gap records of one payload; :class:`Rejected` if anything is wrong."""
    batch = _decode(_BATCH, WireBatch, payload, topic)
    return _results(batch), list(batch.gaps)


_STATUS_OF = {s.name: s for s in Status}


class _Names:
    """Strings already found to match one pattern (at most ``limit``, then it starts over):
    a set lookup instead of a regular expression for names that come again and again."""

    def __init__(self, pattern: str, limit: int = 50_000) -> None:
        self.pattern = re.compile(pattern)
        self.text = pattern
        self.limit = limit
        self.valid: set[str] = set()

    def invalid(self, name: str) -> bool:
        if name in self.valid:
            return False
        if self.pattern.search(name) is None:
            return True
        if len(self.valid) >= self.limit:
            self.valid = set()
        self.valid.add(name)
        return False


_TARGETS, _CLASSES, _CHECKS = _Names(NAME_PATTERN), _Names(CLASS_PATTERN), _Names(CHECK_PATTERN)


def _results(batch: WireBatch) -> list[Result]:
    out: list[Result] = []
    append = out.append
    earliest, after = _EARLIEST, _AFTER_LATEST
    targets, classes, checks = _TARGETS.valid, _CLASSES.valid, _CHECKS.valid
    for r in batch.results:
        at = r.observed_at
        if not earliest <= at < after:
            index = batch.results.index(r)
            raise Rejected(RejectReason.INVALID, f"results[{index}].observed_at: {_TIME_RANGE}")
        if not (r.target in targets and r.target_class in classes and r.check in checks):
            _check_names(batch, r)
            targets, classes, checks = _TARGETS.valid, _CLASSES.valid, _CHECKS.valid
        append(
            Result(
                msg_id=r.msg_id,
                target=r.target,
                target_class=r.target_class,
                check=r.check,
                item=r.item,
                status=_STATUS_OF[r.status],
                value=r.value,
                unit=r.unit,
                summary=r.summary,
                observed_at=at.astimezone(UTC),
                # A dict of its own per result already (decoded for this result alone).
                facts=r.facts,
            )
        )
    return out


def _check_names(batch: WireBatch, r: WireResult) -> None:
    """:class:`Rejected` naming the first of ``r``'s names that does not match its pattern
    (in the words msgspec uses for the patterns it checks itself)."""
    for field, value, names in (
        ("target", r.target, _TARGETS),
        ("class", r.target_class, _CLASSES),
        ("check", r.check, _CHECKS),
    ):
        if names.invalid(value):
            index = batch.results.index(r)
            raise Rejected(
                RejectReason.INVALID,
                f"results[{index}].{field}: Expected `str` matching regex {names.text!r}",
            )


def decode_status(payload: bytes, topic: TopicParts) -> WireStatus:
    """Validate a retained status payload received on ``topic``."""
    return _decode(_STATUS, WireStatus, payload, topic)
