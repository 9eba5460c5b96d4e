"""FastAPI application. Handlers are plain functions: FastAPI runs them in its thread pool,
so database reads never block the event loop that receives MQTT messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import RowMapping, text

from checks.status import Status
from collector.store.db import Store, utc


def _iso(dt: datetime | None) -> str | None:
    value = utc(dt)
    return value.isoformat().replace("+00:00", "Z") if value else None


def incident_json(row: RowMapping) -> dict[str, Any]:
    return {
        "number": row["number"],
        "site": row["site"],
        "target": row["target"],
        "check": row["check"],
        "item": row["item"],
        "level": row["level"],
        "state": row["state"],
        "title": row["title"],
        "summary": row["summary"],
        "opened_at": _iso(row["opened_at"]),
        "resolved_at": _iso(row["resolved_at"]),
        "last_seen_at": _iso(row["last_seen_at"]),
        "occurrences": row["occurrences"],
    }


def event_json(row: RowMapping) -> dict[str, Any]:
    return {
        "at": _iso(row["at"]),
        "kind": row["kind"],
        "author": row["author"],
        "text": row["text"],
        "data": row["data"],
        "hash": row["hash"],
    }


def create_app(
    store: Store, registry: CollectorRegistry, mqtt_connected: Callable[[], bool]
) -> FastAPI:
    app = FastAPI(
        title="fieldmon collector",
        version="1",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )

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

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/incidents")
    def list_incidents(
        site: str | None = None,
        state: str | None = Query(None, pattern="^(open|resolved)$"),
        limit: int = Query(200, ge=1, le=5000),
    ) -> list[dict[str, Any]]:
        return [incident_json(r) for r in store.incidents(site=site, state=state, limit=limit)]

    @app.get("/api/incidents/{number}")
    def get_incident(number: str) -> dict[str, Any]:
        found = store.incident(number)
        if found is None:
            raise HTTPException(404, f"no incident {number}")
        row, events = found
        out = incident_json(row)
        out["timeline"] = [event_json(e) for e in events]
        out["timeline_intact"] = store.verify_timeline(int(row["id"]))
        return out

    @app.get("/api/agents")
    def list_agents() -> list[dict[str, Any]]:
        return [
            {
                "site": r["site"],
                "agent": r["agent"],
                "state": r["state"],
                "state_since": _iso(r["state_since"]),
                "last_seen": _iso(r["last_seen"]),
                "version": r["version"],
            }
            for r in store.agent_rows()
        ]

    @app.get("/api/status")
    def current_status(site: str | None = None) -> list[dict[str, Any]]:
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
                "observed_at": _iso(r["observed_at"]),
                "since": _iso(r["since"]),
            }
            for r in store.current_rows(site)
        ]

    return app
