"""The collector's HTTP side: health and metrics (open, for probes and Prometheus) and the
incident API under /api/v1 (bearer tokens with roles).

Handlers are plain functions: FastAPI runs them in its thread pool, so database work never
blocks the event loop that receives MQTT messages. A customer never learns that another
site's incident exists: asking for one answers 404, exactly like a number that does not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import RowMapping, text

from checks.status import Status
from checks.topics import NAME_RE
from collector.http.auth import Principal, Role, TokenBook
from collector.metrics import exposition
from collector.store.db import ActionError, NotFound, StateConflict, Store
from collector.store.incident_ops import IngestStats
from collector.store.times import iso

if TYPE_CHECKING:
    from collector.web import WebConsole

Raised = Callable[[IngestStats], None]


def incident_json(row: RowMapping) -> dict[str, Any]:
    return {
        "number": row["number"],
        "site": row["site"],
        "target": row["target"],
        "check": row["check"],
        "item": row["item"],
        "device_class": row["device_class"],
        "vendor": row["vendor"],
        "level": row["level"],
        "state": row["state"],
        "source": row["source"],
        "title": row["title"],
        "summary": row["summary"],
        "opened_at": iso(row["opened_at"]),
        "resolved_at": iso(row["resolved_at"]),
        "closed_at": iso(row["closed_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
        "occurrences": row["occurrences"],
        "tier": row["tier"],
        "flapping": bool(row["flapping"]),
        "assignee": row["assignee"],
        "impact_count": row["impact_count"],
        "responded_at": iso(row["responded_at"]),
        "breaches": list(row["breaches"] or []),
        "satisfaction": row["satisfaction"],
    }


def event_json(row: RowMapping) -> dict[str, Any]:
    return {
        "at": iso(row["at"]),
        "kind": row["kind"],
        "author": row["author"],
        "text": row["text"],
        "data": row["data"],
        "hash": row["hash"],
    }


class Problem(BaseModel):
    """Every refusal says why."""

    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Declared error answers, so the OpenAPI document says everything the API can answer."""
    meaning = {
        400: "invalid input (the detail names it)",
        401: "no token or an unknown one",
        403: "the role or the site does not allow it",
        404: "no such incident (or not one of your sites)",
        409: "the incident's state does not allow it",
    }
    return {c: {"model": Problem, "description": meaning[c]} for c in codes}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewIncident(_Body):
    site: Annotated[str, Field(pattern=NAME_RE.pattern)]
    target: Annotated[str, Field(max_length=64)] = ""
    level: Annotated[int, Field(ge=1, le=4)]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    description: Annotated[str, Field(max_length=5000)] = ""
    caller_name: Annotated[str, Field(max_length=100)] = ""
    caller_company: Annotated[str, Field(max_length=200)] = ""
    caller_phone: Annotated[str, Field(max_length=50)] = ""
    caller_email: Annotated[str, Field(max_length=200)] = ""
    caller_address: Annotated[str, Field(max_length=300)] = ""
    contract: Annotated[str, Field(max_length=100)] = ""


class ActionBody(_Body):
    text: Annotated[str, Field(max_length=5000)] = ""
    to: Annotated[str, Field(max_length=64)] = ""
    kind: Annotated[str, Field(max_length=16)] = ""
    level: Annotated[int, Field(ge=1, le=4)] | None = None
    score: Annotated[int, Field(ge=1, le=5)] | None = None
    comment: Annotated[str, Field(max_length=2000)] = ""
    symptoms: Annotated[str, Field(max_length=5000)] = ""
    handling: Annotated[str, Field(max_length=5000)] = ""
    result: Annotated[str, Field(max_length=5000)] = ""
    prevention: Annotated[str, Field(max_length=5000)] = ""


class NewWindow(_Body):
    site: Annotated[str, Field(pattern=NAME_RE.pattern)]
    target: Annotated[str, Field(max_length=64)] = ""
    starts_at: datetime
    ends_at: datetime
    reason: Annotated[str, Field(min_length=1, max_length=500)]


Action = Literal[
    "ack",
    "assign",
    "note",
    "activity",
    "level",
    "pause",
    "resume",
    "onsite",
    "restore",
    "resolve",
    "close",
    "analysis",
]
#: Who may do what. Customers: notes, and the survey when closing their own incidents.
ACTION_ROLE: dict[str, Role] = {
    "note": "customer",
    "close": "customer",
    "ack": "engineer",
    "assign": "engineer",
    "activity": "engineer",
    "level": "engineer",
    "pause": "engineer",
    "resume": "engineer",
    "onsite": "engineer",
    "restore": "engineer",
    "resolve": "engineer",
    "analysis": "engineer",
}


_bearer = HTTPBearer(auto_error=False)


def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling: 401 without a token or with one nobody issued."""
    if creds is None:
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    book: TokenBook = request.app.state.tokens
    who = book.lookup(creds.credentials)
    if who is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return who


Who = Annotated[Principal, Depends(principal)]


def create_app(
    store: Store,
    registry: CollectorRegistry,
    mqtt_connected: Callable[[], bool],
    tokens: TokenBook | None = None,
    on_raised: Raised | None = None,
    web: WebConsole | None = None,
) -> FastAPI:
    app = FastAPI(
        title="fieldmon collector",
        version="1",
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.tokens = tokens or TokenBook([])
    raised = on_raised or (lambda stats: None)

    def require(who: Principal, role: Role) -> None:
        if not who.at_least(role):
            raise HTTPException(403, f"this needs the {role} role; you are {who.role}")

    def visible(who: Principal, number: str) -> RowMapping:
        found = store.incident(number)
        if found is None or not who.may_see(found[0]["site"]):
            raise HTTPException(404, f"no incident {number}")
        return found[0]

    @app.get("/healthz")
    def healthz(response: Response) -> dict[str, Any]:
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            db_ok = True
        except Exception:
            db_ok = False
        mqtt_ok = mqtt_connected()
        if not (db_ok and mqtt_ok):
            response.status_code = 503
        return {
            "status": "ok" if db_ok and mqtt_ok else "degraded",
            "database": db_ok,
            "broker": mqtt_ok,
        }

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/incidents",
        responses=_errors(401, 403),
        response_model=list[dict[str, Any]],
    )
    def list_incidents(
        who: Who,
        site: Annotated[str | None, Query(max_length=64)] = None,
        state: Annotated[str | None, Query(pattern="^(open|resolved|closed|merged)$")] = None,
        level: Annotated[int | None, Query(ge=1, le=4)] = None,
        vendor: Annotated[str | None, Query(max_length=64)] = None,
        device_class: Annotated[str | None, Query(alias="class", max_length=64)] = None,
        check: Annotated[str | None, Query(max_length=64)] = None,
        target: Annotated[str | None, Query(max_length=64)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        if site is not None and not who.may_see(site):
            raise HTTPException(403, f"site {site!r} is not yours")
        rows = store.incidents(
            site=site,
            sites=sorted(who.sites) if who.sites is not None else None,
            state=state,
            level=level,
            vendor=vendor,
            device_class=device_class,
            check=check,
            target=target,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        # Encoded here (orjson) rather than by FastAPI's response validation: the rows are
        # plain JSON values already, and checking 200 of them against list[dict[str, Any]]
        # cost more than the query.
        return Response(
            orjson.dumps([incident_json(r) for r in rows]), media_type="application/json"
        )

    @app.get("/api/v1/incidents/{number}", responses=_errors(401, 404))
    def get_incident(number: str, who: Who) -> dict[str, Any]:
        row = visible(who, number)
        found = store.incident(number)
        assert found is not None
        out = incident_json(row)
        out["caller"] = row["caller"]
        out["analysis"] = row["analysis"]
        out["analysis_due"] = iso(row["analysis_due"])
        out["timeline"] = [event_json(e) for e in found[1]]
        out["timeline_intact"] = store.verify_timeline(int(row["id"]))
        out["impacts"] = [
            {
                "target": i["target"],
                "check": i["check_key"],
                "since": iso(i["first_at"]),
                "cleared_at": iso(i["cleared_at"]),
            }
            for i in store.impacts(int(row["id"]))
        ]
        return out

    @app.post("/api/v1/incidents", status_code=201, responses=_errors(400, 401, 403))
    def open_incident(body: NewIncident, who: Who) -> dict[str, Any]:
        if not who.may_see(body.site):
            raise HTTPException(403, f"site {body.site!r} is not yours")
        caller = {
            k: v
            for k, v in {
                "name": body.caller_name,
                "company": body.caller_company,
                "phone": body.caller_phone,
                "email": body.caller_email,
                "address": body.caller_address,
                "contract": body.contract,
            }.items()
            if v
        }
        try:
            number, stats = store.open_manual(
                site=body.site,
                target=body.target,
                level=body.level,
                title=body.title,
                description=body.description,
                caller=caller,
                author=who.author,
                now=datetime.now(UTC),
            )
        except ActionError as exc:
            raise HTTPException(400, str(exc)) from None
        raised(stats)
        return {"number": number}

    @app.post("/api/v1/incidents/{number}/{action}", responses=_errors(400, 401, 403, 404, 409))
    def act(number: str, action: Action, body: ActionBody, who: Who) -> dict[str, Any]:
        require(who, ACTION_ROLE[action])
        visible(who, number)
        args: dict[str, Any] = {k: v for k, v in body.model_dump().items() if v not in (None, "")}
        try:
            stats = store.act(number, action, who.author, datetime.now(UTC), **args)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except StateConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except ActionError as exc:
            raise HTTPException(400, str(exc)) from None
        raised(stats)
        row = visible(who, number)
        return incident_json(row)

    @app.get("/api/v1/status", responses=_errors(401, 403))
    def current_status(
        who: Who, site: Annotated[str | None, Query(max_length=64)] = None
    ) -> list[dict[str, Any]]:
        if site is not None and not who.may_see(site):
            raise HTTPException(403, f"site {site!r} is not yours")
        return [
            {
                "site": r["site"],
                "target": r["target"],
                "check": r["check"],
                "item": r["item"],
                "status": Status(r["status"]).name,
                "value": r["value"],
                "unit": r["unit"],
                "summary": r["summary"],
                "observed_at": iso(r["observed_at"]),
                "since": iso(r["since"]),
            }
            for r in store.current_rows(site)
            if who.may_see(r["site"])
        ]

    @app.get("/api/v1/agents", responses=_errors(401))
    def list_agents(who: Who) -> list[dict[str, Any]]:
        return [
            {
                "site": r["site"],
                "agent": r["agent"],
                "state": r["state"],
                "state_since": iso(r["state_since"]),
                "last_seen": iso(r["last_seen"]),
                "version": r["version"],
            }
            for r in store.agent_rows()
            if who.may_see(r["site"])
        ]

    @app.post("/api/v1/maintenance", status_code=201, responses=_errors(400, 401, 403))
    def add_window(body: NewWindow, who: Who) -> dict[str, Any]:
        require(who, "engineer")
        if not who.may_see(body.site):
            raise HTTPException(403, f"site {body.site!r} is not yours")
        if body.starts_at.tzinfo is None or body.ends_at.tzinfo is None:
            raise HTTPException(400, "times need a time zone offset")
        try:
            window_id = store.add_window(
                body.site, body.target, body.starts_at, body.ends_at, body.reason, who.author
            )
        except ActionError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"id": window_id}

    @app.get("/api/v1/verify", responses=_errors(401, 403))
    def verify(who: Who) -> dict[str, Any]:
        require(who, "admin")
        broken = store.verify_all()
        return {
            "intact": not broken,
            "broken": [{"number": n, "first_bad_entry": e} for n, e in broken],
        }

    if web is not None:  # the web console: its pages and its static files
        web.install(app)
    return app
