from datetime import UTC, datetime, timedelta

from checks.status import Status
from collector.incidents.engine import (
    OpenIncident,
    Policy,
    offline_too_long,
    on_agent_state,
    on_result,
)

P = Policy()
INC = OpenIncident(id=1, level=2, occurrences=1)


def test_crit_opens_once_then_repeats() -> None:
    assert on_result(None, Status.CRIT, 0, P).action == "open"
    assert on_result(INC, Status.CRIT, 0, P).action == "repeat"


def test_warn_and_unknown_do_not_open_by_default() -> None:
    assert on_result(None, Status.WARN, 0, P).action == "none"
    assert on_result(None, Status.UNKNOWN, 0, P).action == "none"
    warn_policy = Policy(open_on=frozenset({Status.WARN, Status.CRIT}))
    assert on_result(None, Status.WARN, 0, warn_policy).action == "open"


def test_resolve_needs_ok_streak() -> None:
    p = Policy(resolve_after_ok=3)
    assert on_result(INC, Status.OK, 1, p).action == "none"
    assert on_result(INC, Status.OK, 2, p).action == "none"
    assert on_result(INC, Status.OK, 3, p).action == "resolve"


def test_unknown_never_resolves() -> None:
    assert on_result(INC, Status.UNKNOWN, 0, P).action == "none"
    assert on_result(INC, Status.WARN, 0, P).action == "none"


def test_agent_state() -> None:
    none = timedelta(0)
    assert on_agent_state(None, "offline", none).action == "open"
    assert on_agent_state(INC, "offline", none).action == "repeat"
    assert on_agent_state(INC, "online", none).action == "resolve"
    assert on_agent_state(None, "online", none).action == "none"
    assert on_agent_state(None, "stopped", none).action == "none"
    assert on_agent_state(INC, "stopped", none).action == "none"


def test_agent_offline_waits_for_the_grace() -> None:
    grace = timedelta(seconds=90)
    # A last will inside the grace (a broker restart, a short network cut) opens nothing yet.
    assert on_agent_state(None, "offline", grace).action == "hold"
    # An incident already open for the agent is repeated, not held.
    assert on_agent_state(INC, "offline", grace).action == "repeat"
    p = Policy(agent_offline_grace=grace)
    since = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    assert not offline_too_long("offline", since, since + timedelta(seconds=89), p)
    assert offline_too_long("offline", since, since + timedelta(seconds=90), p)
    assert offline_too_long("silent", since, since + timedelta(seconds=91), p)
    assert not offline_too_long("online", since, since + timedelta(hours=1), p)
    assert not offline_too_long("stopped", since, since + timedelta(hours=1), p)
