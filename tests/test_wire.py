import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest

from checks.result import Result
from checks.status import Status
from checks.topics import parse_topic, topic
from checks.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_RESULTS_PER_BATCH,
    Rejected,
    RejectReason,
    decode_batch,
    decode_payload,
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
    assert exc.value.detail.startswith("results[0].target: ")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"target": "sw-01\n"}, "results[0].target"),  # "$" would match before the newline
        ({"msg_id": "short"}, "results[0].msg_id"),
        ({"class": "Linux"}, "results[0].class"),
        ({"observed_at": "2026-11-01T00:00:00"}, "results[0].observed_at"),  # naive
        ({"observed_at": "1969-12-31T23:59:59Z"}, "results[0].observed_at"),
        ({"observed_at": "2101-01-01T00:00:00Z"}, "results[0].observed_at"),
        ({"observed_at": "0001-01-01T00:00:00+01:00"}, "results[0].observed_at"),
        ({"value": True}, "results[0].value"),
        ({"value": "x" * 513}, "results[0].value"),
        ({"facts": {str(n): "v" for n in range(65)}}, "results[0].facts"),
        ({"facts": {"k" * 65: "v"}}, "results[0].facts key"),
        ({"surprise": 1}, "results[0].surprise"),
    ],
)
def test_invalid_results_are_refused_naming_the_field(
    change: dict[str, object], where: str
) -> None:
    good = orjson.loads(encode_batch("site-a", "agent-1", [result_to_wire(_result())]))
    bad = {**good, "results": [{**good["results"][0], **change}]}
    with pytest.raises(Rejected) as exc:
        decode_batch(orjson.dumps(bad), T)
    assert exc.value.reason == RejectReason.INVALID
    assert exc.value.detail.startswith(f"{where}: "), exc.value.detail


def test_missing_field_and_batch_limits() -> None:
    good = orjson.loads(encode_batch("site-a", "agent-1", [result_to_wire(_result())]))
    missing = {**good, "results": [{k: v for k, v in good["results"][0].items() if k != "check"}]}
    too_many = {**good, "results": good["results"] * (MAX_RESULTS_PER_BATCH + 1)}
    late_batch = {**good, "sent_at": "2200-01-01T00:00:00Z"}
    for bad, where in [
        (missing, "results[0].check: missing"),
        (too_many, "results: "),
        (late_batch, "sent_at: time must be between 1970 and 2100"),
    ]:
        with pytest.raises(Rejected) as exc:
            decode_batch(orjson.dumps(bad), T)
        assert exc.value.reason == RejectReason.INVALID
        assert exc.value.detail.startswith(where), exc.value.detail


def test_times_become_utc_and_integers_floats() -> None:
    good = orjson.loads(encode_batch("site-a", "agent-1", [result_to_wire(_result())]))
    body = {
        **good,
        "results": [{**good["results"][0], "value": 7, "observed_at": "2026-11-23T16:00:00+08:00"}],
        "gaps": [
            {
                "gap_id": "gap-0001",
                "dropped": 3,
                "first_observed": None,
                "last_observed": "2026-11-23T16:00:00+08:00",
                "recorded_at": "2026-11-23T08:00:00.5Z",
            }
        ],
    }
    [r], [gap] = decode_payload(orjson.dumps(body), T)
    assert r.value == 7.0 and isinstance(r.value, float)
    assert r.observed_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert r.observed_at.tzinfo is UTC
    assert (gap.gap_id, gap.dropped, gap.first_observed) == ("gap-0001", 3, None)
    assert gap.last_observed is not None and gap.last_observed.tzinfo is UTC
    assert gap.recorded_at == datetime(2026, 11, 23, 8, 0, 0, 500000, tzinfo=UTC)
    for dropped in (0, 2.0, "2", True):
        bad = {**body, "gaps": [{**body["gaps"][0], "dropped": dropped}]}
        with pytest.raises(Rejected) as exc:
            decode_payload(orjson.dumps(bad), T)
        assert exc.value.detail.startswith("gaps[0].dropped: "), exc.value.detail


def test_decoding_does_not_load_pydantic() -> None:
    """The agent imports this module (for the encoding side); pydantic would cost it about
    6 MiB of memory."""
    code = "import sys, checks.wire; assert 'pydantic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_status_payload() -> None:
    st = parse_topic("fieldmon/v1/site-a/agent-1/status")
    assert decode_status(encode_status("site-a", "agent-1", "offline"), st).state == "offline"
    with pytest.raises(Rejected):
        decode_status(encode_status("site-a", "agent-1", "sleeping"), st)
    with pytest.raises(Rejected) as exc:
        decode_status(encode_status("site-a", "agent-2", "online"), st)
    assert exc.value.reason == RejectReason.IDENTITY
    body = orjson.loads(encode_status("site-a", "agent-1", "online"))
    at = decode_status(orjson.dumps({**body, "at": "2026-11-23T16:00:00+08:00"}), st).at
    assert at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC) and at.tzinfo is UTC
    with pytest.raises(Rejected) as exc:
        decode_status(orjson.dumps({**body, "at": "2026-11-23T16:00:00"}), st)
    assert exc.value.reason == RejectReason.INVALID and exc.value.detail.startswith("at: ")


@pytest.mark.parametrize(
    "bad",
    [
        "fieldmon/v1/site/agent",
        "fieldmon/v2/s/a/results",
        "fieldmon/v1/s/a/other",
        "fieldmon/v1/s+/a/results",
        "fieldmon/v1/s/a/results/extra",
        "fieldmon/v1//a/results",
        # Python's ``$`` would let a final newline through; names are matched whole.
        "fieldmon/v1/s\n/a/results",
    ],
)
def test_bad_topics(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_topic(bad)


def test_topic_round_trip() -> None:
    parts = parse_topic(topic("s1", "a.b-c", "status"))
    assert (parts.site, parts.agent, parts.kind) == ("s1", "a.b-c", "status")
