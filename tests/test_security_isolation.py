"""Customer isolation as a property: against one running collector, a customer token of site
s1 asks every GET endpoint about generated incident numbers (s1's, s2's, and random
``FM-YYYYMM-NNNN``) and generated site names, and never receives another site's data; every
POST action on another site's incident answers 404/403 and leaves the incident unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.catalogue import load_catalogue
from checks.result import Result
from checks.status import Status
from checks.topics import NAME_RE
from collector.incidents.engine import Policy
from collector.store.db import Store
from tests.support.broker import Broker
from tests.support.configs import TOKENS, collector_toml
from tests.support.procs import Proc, http_call, http_json, wait_for

ADMIN, ENGINEER, CUSTOMER = TOKENS["admin"], TOKENS["engineer"], TOKENS["customer"]
#: Text that only s2's data carries: if a customer of s1 ever sees it, isolation is broken.
S2_MARK = "ZZ-S2-PRIVATE-7f3a"
S2_TARGET = "cam-s2-private-7f3a"
ACTIONS = ["ack", "assign", "note", "activity", "level", "pause", "resume", "onsite",
           "restore", "resolve", "close", "analysis"]  # fmt: skip
ACTION_BODY: dict[str, dict[str, Any]] = {
    "assign": {"to": "mallory"},
    "note": {"text": "mine now"},
    "activity": {"kind": "call", "text": "x"},
    "level": {"level": 1, "text": "x"},
    "pause": {"text": "x"},
    "resolve": {"text": "x"},
    "close": {"score": 1, "comment": "x"},
    "analysis": {"symptoms": "x", "handling": "x", "result": "x", "prevention": "x"},
}


@dataclass
class Sites:
    base: str
    s1: list[str]
    s2: list[str]


def _seed_results(db: Path) -> None:
    """Current state for both sites (so /status and the incident list have rows of each),
    written before the collector starts."""
    store = Store(f"sqlite:///{db}", ZoneInfo("Asia/Shanghai"))
    now = datetime.now(UTC)
    for site, target in (("s1", "cam-s1-a"), ("s2", S2_TARGET)):
        r = Result(
            target=target,
            target_class="snmp-device",
            check="snmp.reachable",
            status=Status.CRIT,
            observed_at=now,
            summary=f"{S2_MARK} down" if site == "s2" else "down",
        )
        store.ingest(site, "a-" + site, [r], load_catalogue(), Policy(), now)
    store.engine.dispose()


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    tmp = tmp_path_factory.mktemp("isolation")
    _seed_results(tmp / "collector.db")
    broker = Broker()
    broker.start()
    cfg, port = collector_toml(tmp, broker.port)
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        numbers: dict[str, list[str]] = {"s1": [], "s2": []}
        for site in ("s1", "s2"):
            for i in range(3):
                mark = S2_MARK if site == "s2" else "s1-visible"
                body = {
                    "site": site,
                    "level": 2,
                    "title": f"{mark} title {i}",
                    "target": S2_TARGET if site == "s2" else "cam-s1-a",
                    "description": f"{mark} description",
                    "caller_name": f"{mark} caller",
                }
                status, data = http_call("POST", f"{base}/api/v1/incidents", body, ENGINEER)
                assert status == 201, data
                numbers[site].append(str(data["number"]))
        # The seeded CRIT results opened automatic incidents too; s2's carries the target.
        for row in http_json(f"{base}/api/v1/incidents?site=s2", ADMIN):
            if row["number"] not in numbers["s2"]:
                numbers["s2"].append(row["number"])
        yield Sites(base, numbers["s1"], numbers["s2"])
    finally:
        proc.stop()
        broker.cleanup()


def _site_names(body: Any) -> set[str]:
    """Every ``site`` value anywhere in a JSON body."""
    found: set[str] = set()
    if isinstance(body, dict):
        for k, v in body.items():
            if k == "site" and isinstance(v, str):
                found.add(v)
            found |= _site_names(v)
    elif isinstance(body, list):
        for v in body:
            found |= _site_names(v)
    return found


def _assert_nothing_of_s2(sites: Sites, body: Any, asked: str) -> None:
    raw = orjson.dumps(body).decode() if not isinstance(body, str) else body
    assert _site_names(body) <= {"s1"}, (asked, body)
    assert S2_MARK not in raw and S2_TARGET not in raw, (asked, raw[:500])
    # A 404 may repeat the number that was asked for; it must not name any other of s2's.
    for n in sites.s2:
        if n != asked:
            assert n not in raw, (asked, n, raw[:500])


numbers_st = st.one_of(
    st.from_regex(r"\AFM-20[0-9]{2}(0[1-9]|1[0-2])-[0-9]{4}\Z"),
    st.just("S1"),
    st.just("S2"),
)
site_st = st.one_of(
    st.sampled_from(["s1", "s2", "s3", "S1", "s1 ", "s1,s2", "*", "%", ""]),
    st.from_regex(NAME_RE, fullmatch=True),
)


def _pick(sites: Sites, data: st.DataObject, drawn: str) -> str:
    if drawn == "S1":
        return str(data.draw(st.sampled_from(sites.s1)))
    if drawn == "S2":
        return str(data.draw(st.sampled_from(sites.s2)))
    return drawn


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(drawn=numbers_st, site=site_st, data=st.data())
def test_customer_never_sees_another_site(
    sites: Sites, drawn: str, site: str, data: st.DataObject
) -> None:
    number = _pick(sites, data, drawn)
    q = quote(site, safe="")
    gets = [
        f"/api/v1/incidents/{quote(number, safe='')}",
        f"/api/v1/incidents?site={q}",
        f"/api/v1/incidents?target={quote(S2_TARGET)}",
        "/api/v1/incidents",
        "/api/v1/incidents?state=open&limit=5000",
        f"/api/v1/status?site={q}",
        "/api/v1/status",
        "/api/v1/agents",
    ]
    for path in gets:
        status, body = http_call("GET", sites.base + path, None, CUSTOMER)
        assert status in (200, 403, 404, 422), (path, status, body)
        if number in sites.s2 and path.startswith("/api/v1/incidents/"):
            assert status == 404, (path, status)
        if site not in ("s1",) and "site=" in path and status == 200:
            assert body == [] or _site_names(body) <= {"s1"}, (path, body)
        _assert_nothing_of_s2(sites, body, number)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    number_index=st.integers(min_value=0, max_value=100),
    action=st.sampled_from(ACTIONS),
    # Short enough to be a valid body: an invalid one answers 422 before the number is
    # looked at, the same for every number, which tells nothing either.
    extra=st.dictionaries(
        st.sampled_from(["text", "to", "kind", "comment"]), st.text(max_size=16), max_size=2
    ),
)
def test_customer_cannot_act_on_another_site(
    sites: Sites, number_index: int, action: str, extra: dict[str, str]
) -> None:
    number = sites.s2[number_index % len(sites.s2)]
    before = http_json(f"{sites.base}/api/v1/incidents/{number}", ADMIN)
    body = {**ACTION_BODY.get(action, {}), **extra}
    status, answer = http_call(
        "POST", f"{sites.base}/api/v1/incidents/{number}/{action}", body, CUSTOMER
    )
    assert status in (403, 404), (action, status, answer)
    _assert_nothing_of_s2(sites, answer, number)
    after = http_json(f"{sites.base}/api/v1/incidents/{number}", ADMIN)
    assert after == before, (action, number)


def test_customer_cannot_open_or_schedule_for_another_site(sites: Sites) -> None:
    count = len(http_json(f"{sites.base}/api/v1/incidents?site=s2&limit=5000", ADMIN))
    for site in ("s2", "s3"):
        status, _ = http_call(
            "POST",
            f"{sites.base}/api/v1/incidents",
            {"site": site, "level": 1, "title": "x"},
            CUSTOMER,
        )
        assert status == 403
        status, _ = http_call(
            "POST",
            f"{sites.base}/api/v1/maintenance",
            {
                "site": site,
                "starts_at": "2026-11-23T10:00:00+08:00",
                "ends_at": "2026-11-23T11:00:00+08:00",
                "reason": "x",
            },
            CUSTOMER,
        )
        assert status == 403
    assert len(http_json(f"{sites.base}/api/v1/incidents?site=s2&limit=5000", ADMIN)) == count
