from checks.status import Status
from collector.incidents.engine import OpenIncident, Policy, on_agent_state, on_result

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
    assert on_agent_state(None, "offline").action == "open"
    assert on_agent_state(INC, "offline").action == "repeat"
    assert on_agent_state(INC, "online").action == "resolve"
    assert on_agent_state(None, "online").action == "none"
    assert on_agent_state(None, "stopped").action == "none"
    assert on_agent_state(INC, "stopped").action == "none"
