"""Routes of the web console (mounted on the collector's FastAPI app by ``WebConsole.install``).

Handlers are plain functions, like the API's: FastAPI runs them in its thread pool, so the
database work never blocks the event loop that receives MQTT messages.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import RowMapping

from checks.status import Status
from collector.http.app import ACTION_ROLE
from collector.http.auth import Principal
from collector.incidents.rules import Rules
from collector.incidents.sla import SlaPolicy, time_left
from collector.store.db import ActionError, NotFound, StateConflict, Store
from collector.store.incident_ops import IngestStats, clock_of
from collector.web.i18n import Lang, pick_lang, translator
from collector.web.session import Session, Sessions

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/static/console"
#: Security headers on every page: no framing, nothing loaded from anywhere else.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: What the console's forms can do, and the Store action each one is.
WebAction = Literal["take", "ack", "note", "resolve", "close"]
STORE_ACTION: dict[str, str] = {
    "take": "assign",
    "ack": "ack",
    "note": "note",
    "resolve": "resolve",
    "close": "close",
}
Raised = Callable[[IngestStats], None]
#: How often a live board's stream asks the database whether anything changed.
POLL_SECONDS = 1.0
#: A stream ends after this long and the browser reconnects (EventSource does so by itself):
#: an open stream never holds up the collector's shutdown for long.
STREAM_SECONDS = 30.0
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {**HEADERS, "X-Accel-Buffering": "no"}


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: Principal
    password_hash: str
    lang: Lang = "zh-CN"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _month_before(month: str) -> str:
    year, mon = (int(x) for x in month.split("-"))
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"


def _status_name(value: Any) -> str:
    try:
        return Status(int(value)).name
    except (TypeError, ValueError):
        return "UNKNOWN"


def _duration(left: timedelta) -> str:
    minutes = int(abs(left.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    text = f"{rest // 60}h {rest % 60:02d}m"
    return ("-" if left < timedelta(0) else "") + (f"{days}d {text}" if days else text)


class WebConsole:
    def __init__(
        self,
        users: Sequence[WebUser],
        store: Store,
        *,
        tz: tzinfo = UTC,
        rules: Rules | None = None,
        on_raised: Raised | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.users = {u.principal.name: u for u in users}
        self.store = store
        self.tz = tz
        self.rules = rules
        self.raised: Raised = on_raised or (lambda stats: None)
        # Without a configured secret, sessions last as long as the process.
        self.sessions = Sessions(secret or secrets.token_bytes(32))
        self.hasher = PasswordHasher()
        # Checked when the user is unknown, so that the answer takes as long as a wrong password.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False
        )
        self.env.filters["local"] = self._local
        self.env.filters["status"] = _status_name
        self._closing = False
        self.router = self._routes()

    def install(self, app: FastAPI) -> None:
        app.include_router(self.router)
        app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")

    def close(self) -> None:
        """Ask open event streams to end (at their next poll): call when the collector stops."""
        self._closing = True

    # ------------------------------------------------------------------ helpers

    def _local(self, value: datetime | None) -> str:
        at = _utc(value)
        return at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S") if at else ""

    def _policy(self, site: str) -> SlaPolicy:
        return self.rules.sla_for(site) if self.rules else SlaPolicy()

    def check_password(self, name: str, password: str) -> WebUser | None:
        user = self.users.get(name)
        try:
            self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    def _who(self, request: Request) -> tuple[Session, WebUser] | None:
        session = self.sessions.read(request)
        if session is None or session.user is None:
            return None
        user = self.users.get(session.user)
        return (session, user) if user else None

    def _page(
        self,
        request: Request,
        template: str,
        *,
        session: Session,
        lang: str,
        user: WebUser | None = None,
        status: int = 200,
        new_cookie: bool = False,
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            t=translator(lang),
            lang=lang,
            user=user,
            csrf=session.csrf,
            static=STATIC_PREFIX,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if new_cookie:
            self.sessions.write(request, response, session)
        return response

    def _refuse(self, request: Request, status: int, message_key: str) -> HTMLResponse:
        who = self._who(request)
        session = who[0] if who else (self.sessions.read(request) or Session.fresh())
        lang = who[1].lang if who else pick_lang(request.headers.get("accept-language"))
        return self._page(
            request,
            "error.html.j2",
            session=session,
            lang=lang,
            user=who[1] if who else None,
            status=status,
            code=status,
            message_key=message_key,
        )

    def _visible(self, user: WebUser, number: str) -> tuple[RowMapping, list[RowMapping]] | None:
        found = self.store.incident(number)
        if found is None or not user.principal.may_see(str(found[0]["site"])):
            return None
        return found

    def _sla(self, row: RowMapping, now: datetime) -> dict[str, Any]:
        policy = self._policy(str(row["site"]))
        left = time_left(clock_of(row), policy, now)
        total = policy.for_level(int(row["level"])).resolve
        used = 1 - left / total if total else 1.0
        tone = "red" if left < timedelta(0) else ("amber" if used >= policy.tier2_share else "ok")
        # The clock stands still while paused or once resolved: the page must not tick then.
        running = time_left(clock_of(row), policy, now + timedelta(minutes=1)) != left
        return {
            "left": left,
            "text": _duration(left),
            "tone": tone,
            "left_ms": int(left.total_seconds() * 1000),
            "total_ms": int(total.total_seconds() * 1000),
            "warn": policy.tier2_share,
            "running": running,
        }

    def _scope(self, user: WebUser, site: str) -> list[str] | None:
        """The sites a query may cover: the chosen one, within what the user may see."""
        mine = sorted(user.principal.sites) if user.principal.sites is not None else None
        if site:
            return [site] if user.principal.may_see(site) else []
        return mine

    def _board_items(
        self, user: WebUser, site: str, level: str, state: str
    ) -> list[dict[str, Any]]:
        rows = self.store.incidents(
            sites=self._scope(user, site),
            state=state or None,
            level=int(level) if level else None,
            limit=1000,
        )
        now = datetime.now(UTC)
        items: list[dict[str, Any]] = [{"row": r, "sla": self._sla(r, now)} for r in rows]
        items.sort(key=lambda i: (int(i["row"]["level"]), i["sla"]["left"]))
        return items

    def _mark(self, user: WebUser, site: str) -> str:
        return "-".join(str(n) for n in self.store.change_mark(self._scope(user, site)))

    def _month(self, at: datetime) -> str:
        return at.astimezone(self.tz).strftime("%Y-%m")

    def _site_visible(self, user: WebUser, site: str) -> bool:
        if not user.principal.may_see(site):
            return False
        return user.principal.sites is not None or site in self.store.site_names()

    async def _stream(self, request: Request, user: WebUser, site: str) -> AsyncIterator[str]:
        """Server-sent events: ``change`` with the new mark whenever the mark moves."""
        yield "retry: 2000\n\n"
        started = last_beat = time.monotonic()
        last = ""
        while not self._closing and time.monotonic() - started < STREAM_SECONDS:
            if await request.is_disconnected():
                return
            mark = await run_in_threadpool(self._mark, user, site)
            if mark != last:
                last = mark
                yield f"event: change\ndata: {mark}\n\n"
                last_beat = time.monotonic()
            elif time.monotonic() - last_beat >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                last_beat = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------ routes

    def _routes(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/login", response_class=HTMLResponse)
        def login_page(request: Request) -> Response:
            who = self._who(request)
            if who is not None:
                return RedirectResponse("/", status_code=303)
            session = self.sessions.read(request)
            lang = pick_lang(request.headers.get("accept-language"))
            return self._page(
                request,
                "login.html.j2",
                session=session or Session.fresh(),
                lang=lang,
                new_cookie=session is None,
                failed=False,
            )

        @router.post("/login", response_class=HTMLResponse)
        def login(
            request: Request,
            username: Annotated[str, Form(max_length=64)] = "",
            password: Annotated[str, Form(max_length=1024)] = "",
            csrf: Annotated[str, Form(max_length=128)] = "",
        ) -> Response:
            session = self.sessions.read(request)
            if session is None or not session.csrf_ok(csrf):
                return self._refuse(request, 403, "csrf")
            user = self.check_password(username.strip(), password)
            if user is None:
                lang = pick_lang(request.headers.get("accept-language"))
                return self._page(
                    request, "login.html.j2", session=session, lang=lang, status=401, failed=True
                )
            response = RedirectResponse("/", status_code=303)
            # A fresh token on signing in: nothing learnt before it is of any use after.
            self.sessions.write(request, response, Session.fresh(user.principal.name))
            return response

        @router.post("/logout")
        def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
            session = self.sessions.read(request)
            if session is None or not session.csrf_ok(csrf):
                return self._refuse(request, 403, "csrf")
            response = RedirectResponse("/login", status_code=303)
            self.sessions.clear(response)
            return response

        @router.get("/", response_class=HTMLResponse)
        def board(
            request: Request,
            site: Annotated[str, Query(max_length=64)] = "",
            level: Annotated[str, Query(pattern="^[1-4]?$")] = "",
            state: Annotated[str, Query(pattern="^(open|resolved|closed|merged)?$")] = "open",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            principal = user.principal
            if site and not principal.may_see(site):
                return self._refuse(request, 404, "not_found")
            if principal.sites is not None:
                site_choices = sorted(principal.sites)
            else:
                site_choices = sorted({str(s) for s, _, _ in self.store.open_counts()} | {site})
            chosen = {"site": site, "level": level, "state": state}
            return self._page(
                request,
                "board.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                items=self._board_items(user, site, level, state),
                sites=[s for s in site_choices if s],
                chosen=chosen,
                query=urlencode(chosen),
                events_query=urlencode({"site": site}),
                mark=self._mark(user, site),
            )

        @router.get("/board/rows", response_class=HTMLResponse)
        def board_rows(
            request: Request,
            site: Annotated[str, Query(max_length=64)] = "",
            level: Annotated[str, Query(pattern="^[1-4]?$")] = "",
            state: Annotated[str, Query(pattern="^(open|resolved|closed|merged)?$")] = "open",
        ) -> Response:
            """The board's table alone, fetched by board.js when the event stream says so."""
            who = self._who(request)
            if who is None:
                return Response(status_code=403, headers=HEADERS)
            _, user = who
            if site and not user.principal.may_see(site):
                return Response(status_code=404, headers=HEADERS)
            html = self.env.get_template("board_rows.html.j2").render(
                t=translator(user.lang),
                items=self._board_items(user, site, level, state),
                mark=self._mark(user, site),
            )
            return HTMLResponse(html, headers=HEADERS)

        @router.get("/events")
        async def events(
            request: Request, site: Annotated[str, Query(max_length=64)] = ""
        ) -> Response:
            who = self._who(request)
            if who is None:
                return Response(status_code=403, headers=HEADERS)
            _, user = who
            if site and not user.principal.may_see(site):
                return Response(status_code=404, headers=HEADERS)
            return StreamingResponse(
                self._stream(request, user, site),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )

        @router.get("/sites", response_class=HTMLResponse)
        def sites_page(request: Request) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            if user.principal.sites is not None:
                names = sorted(user.principal.sites)
            else:
                names = self.store.site_names()
            counts: dict[str, list[int]] = {}
            for s, lv, n in self.store.open_counts():
                counts.setdefault(s, [0, 0, 0, 0, 0])[lv if 1 <= lv <= 4 else 0] += n
            rows = [
                {
                    "site": name,
                    "devices": len(self.store.target_rows(name)),
                    "open": sum(counts.get(name, [0])),
                    "p1": counts.get(name, [0, 0])[1],
                }
                for name in names
            ]
            return self._page(
                request, "sites.html.j2", session=session, lang=user.lang, user=user, rows=rows
            )

        @router.get("/sites/{site}", response_class=HTMLResponse)
        def site_page(request: Request, site: str) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            if not self._site_visible(user, site):
                return self._refuse(request, 404, "not_found")
            worst: dict[str, int] = {}
            for c in self.store.current_rows(site):
                name = str(c["target"])
                worst[name] = max(worst.get(name, 0), int(c["status"]))
            open_by_target: dict[str, int] = {}
            for inc in self.store.incidents(site=site, state="open", limit=1000):
                open_by_target[str(inc["target"])] = open_by_target.get(str(inc["target"]), 0) + 1
            devices = [
                {
                    "row": r,
                    "facts": r["facts"] if isinstance(r["facts"], dict) else {},
                    "worst": worst.get(str(r["target"])),
                    "open": open_by_target.get(str(r["target"]), 0),
                }
                for r in self.store.target_rows(site)
            ]
            return self._page(
                request,
                "site.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                site=site,
                devices=devices,
            )

        @router.get("/sites/{site}/devices/{target}", response_class=HTMLResponse)
        def device_page(request: Request, site: str, target: str) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            if not user.principal.may_see(site):
                return self._refuse(request, 404, "not_found")
            row = self.store.target_row(site, target)
            if row is None:
                return self._refuse(request, 404, "not_found")
            now = datetime.now(UTC)
            month = self._month(now)
            months = [
                (m, self.store.device_inspection_rows(site, target, m))
                for m in (month, _month_before(month))
            ]
            checks = sorted(
                (c for c in self.store.current_rows(site) if c["target"] == target),
                key=lambda c: (-int(c["status"]), str(c["check_key"])),
            )
            incs = self.store.incidents(site=site, target=target, limit=200)
            return self._page(
                request,
                "device.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                site=site,
                dev=row,
                facts=row["facts"] if isinstance(row["facts"], dict) else {},
                checks=checks,
                months=months,
                open_incs=[
                    {"row": r, "sla": self._sla(r, now)} for r in incs if r["state"] == "open"
                ],
                past_incs=[r for r in incs if r["state"] != "open"],
            )

        @router.get("/incidents/{number}", response_class=HTMLResponse)
        def incident_page(request: Request, number: str) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            return self._incident(request, who, number)

        @router.post("/incidents/{number}/{action}", response_class=HTMLResponse)
        def act(
            request: Request,
            number: str,
            action: WebAction,
            csrf: Annotated[str, Form(max_length=128)] = "",
            text: Annotated[str, Form(max_length=5000)] = "",
            score: Annotated[str, Form(pattern="^[1-5]?$")] = "",
            comment: Annotated[str, Form(max_length=2000)] = "",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return self._refuse(request, 403, "forbidden")
            session, user = who
            if not session.csrf_ok(csrf):
                return self._refuse(request, 403, "csrf")
            if self._visible(user, number) is None:
                return self._refuse(request, 404, "not_found")
            store_action = STORE_ACTION[action]
            if not user.principal.at_least(ACTION_ROLE[store_action]):
                return self._refuse(request, 403, "forbidden")
            args: dict[str, Any] = {}
            if action == "take":
                args["to"] = user.principal.name
            elif action == "close":
                args = {"comment": comment.strip()}
                if score:
                    args["score"] = int(score)
            elif text.strip():
                args["text"] = text
            try:
                stats = self.store.act(
                    number, store_action, user.principal.author, datetime.now(UTC), **args
                )
            except NotFound:
                return self._refuse(request, 404, "not_found")
            except StateConflict as exc:
                return self._incident(request, who, number, error=str(exc), status=409)
            except ActionError as exc:
                return self._incident(request, who, number, error=str(exc), status=400)
            self.raised(stats)
            return RedirectResponse(f"/incidents/{number}", status_code=303)

        return router

    def _incident(
        self,
        request: Request,
        who: tuple[Session, WebUser],
        number: str,
        *,
        error: str = "",
        status: int = 200,
    ) -> Response:
        session, user = who
        found = self._visible(user, number)
        if found is None:
            return self._refuse(request, 404, "not_found")
        row, events = found
        inc_id = int(row["id"])
        return self._page(
            request,
            "incident.html.j2",
            session=session,
            lang=user.lang,
            user=user,
            status=status,
            inc=row,
            sla=self._sla(row, datetime.now(UTC)),
            events=events,
            impacts=self.store.impacts(inc_id),
            intact=self.store.verify_timeline(inc_id),
            is_engineer=user.principal.at_least("engineer"),
            is_customer=user.principal.role == "customer",
            error=error,
        )
