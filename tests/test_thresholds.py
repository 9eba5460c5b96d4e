import pytest

from checks.status import Status, worst
from checks.thresholds import Threshold, evaluate, parse_threshold


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10.0, Status.OK),
        (84.9, Status.OK),
        (85.0, Status.WARN),
        (94.99, Status.WARN),
        (95.0, Status.CRIT),
        (100.0, Status.CRIT),
        ("90", Status.WARN),
        (None, Status.UNKNOWN),
        ("n/a", Status.UNKNOWN),
    ],
)
def test_upper(value: float | str | None, expected: Status) -> None:
    assert evaluate(value, parse_threshold({"upper": [85, 95]})) == expected


def test_lower_detects_reboot() -> None:
    thr = parse_threshold({"lower": [3600, 0]})
    assert evaluate(600, thr) == Status.WARN
    assert evaluate(86400, thr) == Status.OK
    assert evaluate(0, thr) == Status.CRIT


def test_match_and_otherwise() -> None:
    thr = parse_threshold({"match": ["up", "admin down"], "otherwise": "WARN"})
    assert evaluate("up", thr) == Status.OK
    assert evaluate("admin down", thr) == Status.OK
    assert evaluate("down", thr) == Status.WARN
    assert parse_threshold({"match": "up"}).otherwise == Status.CRIT


def test_single_bound_is_crit() -> None:
    thr = parse_threshold({"upper": 90})
    assert thr == Threshold("upper", crit=90.0)
    assert evaluate(89, thr) == Status.OK
    assert evaluate(90, thr) == Status.CRIT


def test_no_threshold_is_informational() -> None:
    assert evaluate("anything", None) == Status.OK
    assert evaluate(None, None) == Status.UNKNOWN


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "exactly one"),
        ({"upper": [1, 2], "lower": [1]}, "exactly one"),
        ({"upper": [95, 85]}, "beyond its crit"),
        ({"lower": [5, 10]}, "beyond its crit"),
        ({"upper": "x"}, "numbers"),
        ({"upper": [True, 2]}, "numbers"),
        ({"match": []}, "non-empty"),
        ({"upper": [1], "otherwise": "CRIT"}, "only applies"),
        ({"match": ["up"], "otherwise": "BAD"}, "unknown status"),
        ({"upper": [1], "x": 1}, "x"),
    ],
)
def test_bad_thresholds_say_why(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_threshold(table)


def test_worst_order() -> None:
    assert worst([]) == Status.OK
    assert worst([Status.OK, Status.WARN]) == Status.WARN
    assert worst([Status.WARN, Status.UNKNOWN]) == Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.CRIT, Status.OK]) == Status.CRIT


def test_describe() -> None:
    assert parse_threshold({"upper": [85, 95]}).describe() == "warn ≥ 85, crit ≥ 95"
    assert parse_threshold({"match": ["up"]}).describe() == "= up"
