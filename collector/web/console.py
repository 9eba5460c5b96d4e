"""Routes of the web console (mounted on the collector's FastAPI app by ``WebConsole.install``).

Handlers are plain functions, like the API's: FastAPI runs them in its thread pool, so the
database work never blocks the event loop that receives MQTT messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import RowMapping

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


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: Principal
    password_hash: str
    lang: Lang = "zh-CN"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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
        self.router = self._routes()

    def install(self, app: FastAPI) -> None:
        app.include_router(self.router)
        app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")

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
        return {"left": left, "text": _duration(left), "tone": tone}

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
            mine = sorted(principal.sites) if principal.sites is not None else None
            if site and not principal.may_see(site):
                return self._refuse(request, 404, "not_found")
            rows = self.store.incidents(
                site=site or None,
                sites=mine,
                state=state or None,
                level=int(level) if level else None,
                limit=1000,
            )
            now = datetime.now(UTC)
            items: list[dict[str, Any]] = [{"row": r, "sla": self._sla(r, now)} for r in rows]
            items.sort(key=lambda i: (int(i["row"]["level"]), i["sla"]["left"]))
            if mine is not None:
                site_choices = mine
            else:
                site_choices = sorted({str(s) for s, _, _ in self.store.open_counts()} | {site})
            return self._page(
                request,
                "board.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                items=items,
                sites=[s for s in site_choices if s],
                chosen={"site": site, "level": level, "state": state},
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
