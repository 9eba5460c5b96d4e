from datetime import UTC, datetime

import orjson
import pytest

from checks.result import Result
from checks.status import Status
from checks.topics import parse_topic, topic
from checks.wire import (
    MAX_PAYLOAD_BYTES,
    Rejected,
    RejectReason,
    decode_batch,
    decode_status,
    encode_batch,
    encode_status,
    result_to_wire,
)

T = parse_topic("fieldmon/v1/site-a/agent-1/results")


def _result(**kw: object) -> Result:
    base: dict[str, object] = dict(
        target="sw-01",
        target_class="snmp-device",
        check="if.oper_status",
        item="Gi0/1",
        status=Status.CRIT,
        value="down",
        summary="link lost",
        facts={"serial": "X1"},
    )
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    r = _result(observed_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    payload = encode_batch("site-a", "agent-1", [result_to_wire(r)])
    [back] = decode_batch(payload, T)
    assert back == r


def test_numeric_value_round_trip() -> None:
    r = _result(check="cpu.usage", item="", value=42.5, unit="%", status=Status.OK)
    [back] = decode_batch(encode_batch("site-a", "agent-1", [result_to_wire(r)]), T)
    assert back.value == 42.5 and back.unit == "%"


def _reason(payload: bytes, t: object = T) -> RejectReason:
    with pytest.raises(Rejected) as exc:
        decode_batch(payload, t)  # type: ignore[arg-type]
    assert exc.value.detail
    return exc.value.reason


def test_rejections_have_reasons() -> None:
    good = orjson.loads(encode_batch("site-a", "agent-1", [result_to_wire(_result())]))
    assert _reason(b"{not json") == RejectReason.MALFORMED
    assert _reason(b"[1,2]") == RejectReason.MALFORMED
    assert _reason(b"x" * (MAX_PAYLOAD_BYTES + 1)) == RejectReason.TOO_LARGE
    assert _reason(orjson.dumps({**good, "schema": 2})) == RejectReason.SCHEMA_VERSION
    assert _reason(orjson.dumps({**good, "agent": "agent-2"})) == RejectReason.IDENTITY
    assert _reason(orjson.dumps({**good, "site": "other"})) == RejectReason.IDENTITY
    bad_status = {**good, "results": [{**good["results"][0], "status": "BROKEN"}]}
    assert _reason(orjson.dumps(bad_status)) == RejectReason.INVALID
    naive = {**good, "results": [{**good["results"][0], "observed_at": "2026-11-01T00:00:00"}]}
    assert _reason(orjson.dumps(naive)) == RejectReason.INVALID
    extra = {**good, "results": [{**good["results"][0], "surprise": 1}]}
    assert _reason(orjson.dumps(extra)) == RejectReason.INVALID
    wrong_type = {**good, "results": [{**good["results"][0], "value": {"a": 1}}]}
    assert _reason(orjson.dumps(wrong_type)) == RejectReason.INVALID
    # Nesting deeper than the parser's limit is refused, not a recursion crash.
    assert _reason(b'{"schema":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}") == (
        RejectReason.MALFORMED
    )


def test_invalid_detail_names_the_field() -> None:
    good = orjson.loads(encode_batch("site-a", "agent-1", [result_to_wire(_result())]))
    bad = {**good, "results": [{**good["results"][0], "target": "no spaces allowed"}]}
    with pytest.raises(Rejected) as exc:
        decode_batch(orjson.dumps(bad), T)
    assert "results.0.target" in exc.value.detail


def test_status_payload() -> None:
    st = parse_topic("fieldmon/v1/site-a/agent-1/status")
    assert decode_status(encode_status("site-a", "agent-1", "offline"), st).state == "offline"
    with pytest.raises(Rejected):
        decode_status(encode_status("site-a", "agent-1", "sleeping"), st)


@pytest.mark.parametrize(
    "bad",
    [
        "fieldmon/v1/site/agent",
        "fieldmon/v2/s/a/results",
        "fieldmon/v1/s/a/other",
        "fieldmon/v1/s+/a/results",
        "fieldmon/v1/s/a/results/extra",
        "fieldmon/v1//a/results",
    ],
)
def test_bad_topics(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_topic(bad)


def test_topic_round_trip() -> None:
    parts = parse_topic(topic("s1", "a.b-c", "status"))
    assert (parts.site, parts.agent, parts.kind) == ("s1", "a.b-c", "status")
