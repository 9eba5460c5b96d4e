"""The incident API of a running collector over real HTTP: tokens and roles, a customer
confined to its own sites, the whole life of a phoned-in incident, and bad input refused
with a clear 4xx and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import Broker
from tests.support.configs import TOKENS, collector_toml
from tests.support.procs import Proc, http_call, http_json, wait_for

ADMIN, ENGINEER, VIEWER = TOKENS["admin"], TOKENS["engineer"], TOKENS["viewer"]
CUSTOMER, OTHER = TOKENS["customer"], TOKENS["other"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("api")
    broker = Broker()
    broker.start()
    cfg, port = collector_toml(tmp, broker.port)
    proc = Proc(["collector", "run", "--config", str(cfg)], tmp / "collector.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_json(f"{base}/healthz")["status"] == "ok", 20, what="collector")
        yield base
    finally:
        proc.stop()
        broker.cleanup()


def _open(api: str, site: str, token: str = ENGINEER, **extra: object) -> str:
    body = {"site": site, "level": 2, "title": "NVR channel 5 black", **extra}
    status, data = http_call("POST", f"{api}/api/v1/incidents", body, token)
    assert status == 201, data
    return str(data["number"])


def test_every_api_endpoint_needs_a_token(api: str) -> None:
    number = _open(api, "s1")
    calls = [
        ("GET", "/api/v1/incidents"),
        ("GET", f"/api/v1/incidents/{number}"),
        ("POST", "/api/v1/incidents"),
        ("POST", f"/api/v1/incidents/{number}/note"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/agents"),
        ("POST", "/api/v1/maintenance"),
        ("GET", "/api/v1/verify"),
    ]
    for method, path in calls:
        for token in (None, "not-a-token"):
            status, _ = http_call(method, api + path, {} if method == "POST" else None, token)
            assert status == 401, (method, path, token)
    # Health and metrics stay open for probes and Prometheus.
    assert http_call("GET", f"{api}/healthz")[0] == 200
    assert http_call("GET", f"{api}/metrics")[0] == 200


def test_roles(api: str) -> None:
    number = _open(api, "s1")
    for token in (VIEWER, CUSTOMER):
        status, body = http_call("POST", f"{api}/api/v1/incidents/{number}/ack", {}, token)
        assert status == 403 and "engineer role" in body["detail"]
    assert http_call("GET", f"{api}/api/v1/verify", None, ENGINEER)[0] == 403
    status, body = http_call("GET", f"{api}/api/v1/verify", None, ADMIN)
    assert status == 200 and body["intact"] is True
    assert http_call("POST", f"{api}/api/v1/incidents/{number}/ack", {}, ENGINEER)[0] == 200


def test_customer_sees_only_its_own_sites(api: str) -> None:
    mine, theirs = _open(api, "s1"), _open(api, "s2")
    listed = http_json(f"{api}/api/v1/incidents", CUSTOMER)
    assert {i["site"] for i in listed} == {"s1"} and mine in {i["number"] for i in listed}
    assert http_call("GET", f"{api}/api/v1/incidents/{theirs}", None, CUSTOMER)[0] == 404
    assert http_call("GET", f"{api}/api/v1/incidents?site=s2", None, CUSTOMER)[0] == 403
    assert (
        http_call("POST", f"{api}/api/v1/incidents/{theirs}/note", {"text": "hi"}, CUSTOMER)[0]
        == 404
    )
    status, _ = http_call(
        "POST", f"{api}/api/v1/incidents", {"site": "s2", "level": 3, "title": "x"}, CUSTOMER
    )
    assert status == 403
    # The other customer sees the mirror image.
    assert {i["site"] for i in http_json(f"{api}/api/v1/incidents", OTHER)} == {"s2"}
    assert http_call("GET", f"{api}/api/v1/incidents/{mine}", None, OTHER)[0] == 404
    # An unknown number answers exactly like another customer's.
    assert http_call("GET", f"{api}/api/v1/incidents/FM-209912-9999", None, CUSTOMER)[0] == 404


def test_phoned_in_incident_from_call_to_survey(api: str) -> None:
    number = _open(
        api,
        "s1",
        CUSTOMER,
        caller_name="Wang Fang",
        caller_phone="13800000000",
        caller_company="East Gate PSB",
        description="picture black since 9:00",
    )
    steps = [
        (ENGINEER, "ack", {}),
        (ENGINEER, "assign", {"to": "li.wei"}),
        (CUSTOMER, "note", {"text": "still black at 10:00"}),
        (ENGINEER, "activity", {"kind": "visit", "text": "on site, PoE port dead"}),
        (ENGINEER, "level", {"level": 3, "text": "one channel only"}),
        (ENGINEER, "resolve", {"text": "moved the camera to a spare PoE port"}),
        (
            ENGINEER,
            "analysis",
            {
                "symptoms": "no picture",
                "handling": "port swapped",
                "result": "picture back",
                "prevention": "spare ports",
            },
        ),
        (CUSTOMER, "close", {"score": 5, "comment": "fast"}),
    ]
    for token, action, body in steps:
        status, data = http_call("POST", f"{api}/api/v1/incidents/{number}/{action}", body, token)
        assert status == 200, (action, data)
    detail = http_json(f"{api}/api/v1/incidents/{number}", CUSTOMER)
    assert detail["state"] == "closed" and detail["satisfaction"] == 5
    assert detail["caller"]["name"] == "Wang Fang" and detail["level"] == 3
    assert [e["kind"] for e in detail["timeline"]] == [
        "opened",
        "acknowledged",
        "assigned",
        "note",
        "activity:visit",
        "level",
        "resolved",
        "analysis",
        "closed",
    ]
    assert detail["timeline"][3]["author"] == "customer:customer"
    assert detail["timeline_intact"] is True


def test_bad_input_is_refused_and_changes_nothing(api: str) -> None:
    number = _open(api, "s1")
    before = http_json(f"{api}/api/v1/incidents/{number}")
    bad = [
        ("POST", "/api/v1/incidents", {"site": "s1", "level": 7, "title": "x"}, 422),
        ("POST", "/api/v1/incidents", {"site": "s1", "level": "high", "title": "x"}, 422),
        ("POST", "/api/v1/incidents", {"site": "../etc", "level": 1, "title": "x"}, 422),
        ("POST", "/api/v1/incidents", {"site": "s1", "level": 1, "title": "x", "evil": 1}, 422),
        ("POST", f"/api/v1/incidents/{number}/level", {"level": 9}, 422),
        ("POST", f"/api/v1/incidents/{number}/level", {"level": 1}, 400),  # no reason
        ("POST", f"/api/v1/incidents/{number}/explode", {}, 422),
        ("POST", f"/api/v1/incidents/{number}/close", {"score": 5}, 409),  # not resolved
        ("POST", f"/api/v1/incidents/{number}/note", {"text": ""}, 400),
        ("POST", "/api/v1/incidents/FM-209912-9999/note", {"text": "x"}, 404),
        ("GET", "/api/v1/incidents?level=0", None, 422),
        ("GET", "/api/v1/incidents?since=yesterday", None, 422),
        (
            "POST",
            "/api/v1/maintenance",
            {
                "site": "s1",
                "starts_at": "2026-11-23T10:00:00+08:00",
                "ends_at": "2026-11-23T09:00:00+08:00",
                "reason": "x",
            },
            400,
        ),
    ]
    for method, path, body, expected in bad:
        status, data = http_call(method, api + path, body, ENGINEER)
        assert status == expected, (path, body, data)
        assert data["detail"], "every refusal says why"
    after = http_json(f"{api}/api/v1/incidents/{number}")
    assert after == before


def test_search_filters(api: str) -> None:
    _open(api, "s1", level=1, title="core switch down", target="sw-core")
    found = http_json(f"{api}/api/v1/incidents?level=1&target=sw-core&state=open")
    assert found and all(i["level"] == 1 and i["target"] == "sw-core" for i in found)
    assert http_json(f"{api}/api/v1/incidents?since=2099-01-01T00:00:00Z") == []
