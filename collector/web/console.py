"""Routes of the web console (mounted on the collector's FastAPI app by ``WebConsole.install``).

Handlers are plain functions, like the API's: FastAPI runs them in its thread pool, so the
database work never blocks the event loop that receives MQTT messages.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import RowMapping

from checks.catalogue import DeviceClass
from checks.status import Status
from collector.config import CollectorConfig
from collector.http.app import ACTION_ROLE
from collector.http.auth import Principal
from collector.incidents.rules import Rules
from collector.incidents.sla import SlaPolicy, time_left
from collector.reports.changes import previous_month
from collector.store.db import ActionError, NotFound, StateConflict, Store
from collector.store.incident_ops import IngestStats, clock_of
from collector.web import reviews
from collector.web.i18n import Lang, pick_lang, translator
from collector.web.ratelimit import LoginLimiter
from collector.web.session import Session, Sessions

log = logging.getLogger(__name__)

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
WebAction = Literal["take", "ack", "note", "level", "resolve", "close", "analysis"]
STORE_ACTION: dict[str, str] = {
    "take": "assign",
    "ack": "ack",
    "note": "note",
    "resolve": "resolve",
    "close": "close",
    "level": "level",
    "analysis": "analysis",
}
#: The fault analysis report's engineer-written fields (故障分析说明).
ANALYSIS_FIELDS = ("symptoms", "handling", "result", "prevention")
Raised = Callable[[IngestStats], None]
#: How often a live board's stream asks the database whether anything changed.
POLL_SECONDS = 1.0
#: A stream ends after this long and the browser reconnects (EventSource does so by itself):
#: an open stream never holds up the collector's shutdown for long.
STREAM_SECONDS = 30.0
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {**HEADERS, "X-Accel-Buffering": "no"}
#: A report's own HTML, shown framed inside the review page: its inline style is allowed, and
#: nothing else (no script, nothing fetched), and only the console itself may frame it.
REPORT_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
#: The level an incident a customer reports starts at; an engineer re-levels it with a reason
#: once the fault is understood (the customer cannot know which devices hang off it).
CUSTOMER_LEVEL = 3
DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: Principal
    password_hash: str
    lang: Lang = "zh-CN"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _attachment(name: str, blob: bytes, fmt: str) -> Response:
    """A downloaded file: the console's security headers, and its name in UTF-8."""
    headers = {**HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    return Response(blob, media_type=reviews.MEDIA[fmt], headers=headers)


#: The SSH probe's configuration items (agent/probes/ssh.py).
CONFIG_BACKUP, CONFIG_CHANGED = "config.backup", "config.changed"


def _config_history(
    current: Sequence[Any], months: Sequence[tuple[str, Sequence[Any]]]
) -> dict[str, Any] | None:
    """What the device page shows of its configuration backups: the latest backup and change
    result, and per month how many backups differed from the one before. None when the
    device has no backup item (no SSH access configured)."""
    by_check = {str(c["check"]): c for c in current}
    backup, changed = by_check.get(CONFIG_BACKUP), by_check.get(CONFIG_CHANGED)
    if backup is None and changed is None:
        return None
    per_month = [(m, r) for m, rows in months for r in rows if str(r["check"]) == CONFIG_CHANGED]
    return {"backup": backup, "changed": changed, "months": per_month}


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


@dataclass(frozen=True, slots=True)
class BoardFilter:
    """The board's filters, as given in the URL (so a filtered board can be bookmarked and
    the live refresh asks for the same rows)."""

    site: str = ""
    level: str = ""
    state: str = "open"
    device_class: str = ""
    vendor: str = ""
    opened_from: str = ""
    opened_to: str = ""

    def query(self) -> str:
        return urlencode(
            {
                "site": self.site,
                "level": self.level,
                "state": self.state,
                "class": self.device_class,
                "vendor": self.vendor,
                "from": self.opened_from,
                "to": self.opened_to,
            }
        )


class BadFilter(ValueError):
    """A filter value that is not what its field takes (the message names the field)."""


def _day(text: str, field: str, tz: tzinfo) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=tz)
    except ValueError:
        raise BadFilter(f"{field} {text!r} is not a date (YYYY-MM-DD)") from None


def board_filter(
    site: Annotated[str, Query(max_length=64)] = "",
    level: Annotated[str, Query(pattern="^[1-4]?$")] = "",
    state: Annotated[str, Query(pattern="^(open|resolved|closed|merged)?$")] = "open",
    device_class: Annotated[str, Query(alias="class", max_length=64)] = "",
    vendor: Annotated[str, Query(max_length=64)] = "",
    opened_from: Annotated[str, Query(alias="from", pattern=DATE_PATTERN)] = "",
    opened_to: Annotated[str, Query(alias="to", pattern=DATE_PATTERN)] = "",
) -> BoardFilter:
    """The board's filters from the query string (``class``, ``from`` and ``to`` are the
    URL names)."""
    return BoardFilter(
        site, level, state, device_class.strip(), vendor.strip(), opened_from, opened_to
    )


Filter = Annotated[BoardFilter, Depends(board_filter)]


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
        config: CollectorConfig | None = None,
        classes: Mapping[str, DeviceClass] | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.users = {u.principal.name: u for u in users}
        self.store = store
        self.tz = tz
        self.rules = rules
        self.raised: Raised = on_raised or (lambda stats: None)
        #: Reports need the configuration (site covers, SLA) and the checklist catalogue;
        #: without them the report pages answer 404.
        self.config = config
        self.classes = classes
        self.limiter = limiter or LoginLimiter()
        if secret is None:
            log.warning(
                "http.session_secret is not set: console sessions are signed with a random "
                "key drawn now, so every restart signs everyone out (set session_secret_env "
                "or session_secret_file)"
            )
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

    def _board_items(self, user: WebUser, f: BoardFilter) -> list[dict[str, Any]]:
        """The board's rows, filtered in the database query (not in the page)."""
        since = _day(f.opened_from, "opened from", self.tz)
        until = _day(f.opened_to, "opened to", self.tz)
        if since and until and until < since:
            raise BadFilter(f"opened to {f.opened_to} is before opened from {f.opened_from}")
        rows = self.store.incidents(
            sites=self._scope(user, f.site),
            state=f.state or None,
            level=int(f.level) if f.level else None,
            device_class=f.device_class or None,
            vendor=f.vendor or None,
            since=since,
            # "To" names a day: everything opened during it is included.
            until=until + timedelta(days=1) if until else None,
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
            name = username.strip()
            address = request.client.host if request.client else "unknown"
            lang = pick_lang(request.headers.get("accept-language"))
            verdict = self.limiter.check(name, address)
            # A password typed into the name field must not reach the log: only known names
            # are written out.
            shown = repr(name) if name in self.users else f"<unknown, {len(name)} characters>"
            if not verdict.allowed:
                # The password is not even checked: a locked-out guesser learns nothing.
                log.warning(
                    "console login refused: too many failures for this %s "
                    "(user %s, address %s, limit %d in %.0fs, retry in %ds)",
                    verdict.reason,
                    shown,
                    address,
                    self.limiter.max_failures,
                    self.limiter.window,
                    verdict.retry_after,
                )
                refused = self._page(
                    request,
                    "login.html.j2",
                    session=session,
                    lang=lang,
                    status=429,
                    failed=False,
                    limited=verdict.retry_after,
                    username=name,
                )
                refused.headers["Retry-After"] = str(verdict.retry_after)
                return refused
            user = self.check_password(name, password)
            if user is None:
                self.limiter.failed(name, address)
                log.info("console login failed: user %s from %s", shown, address)
                return self._page(
                    request,
                    "login.html.j2",
                    session=session,
                    lang=lang,
                    status=401,
                    failed=True,
                    username=name,
                )
            self.limiter.succeeded(name)
            log.info("console login: user %r from %s", name, address)
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
        def board(request: Request, f: Filter) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            principal = user.principal
            if f.site and not principal.may_see(f.site):
                return self._refuse(request, 404, "not_found")
            if principal.sites is not None:
                site_choices = sorted(principal.sites)
            else:
                site_choices = sorted(
                    {str(s) for s, _, _ in self.store.open_counts()}
                    | set(self.store.site_names())
                    | {f.site}
                )
            error = ""
            try:
                items = self._board_items(user, f)
            except BadFilter as exc:
                items, error = [], str(exc)
            choices = self.store.incident_choices(self._scope(user, ""))
            return self._page(
                request,
                "board.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                status=400 if error else 200,
                items=items,
                sites=[s for s in site_choices if s],
                classes=sorted(set(choices["class"]) | ({f.device_class} - {""})),
                vendors=sorted(set(choices["vendor"]) | ({f.vendor} - {""})),
                chosen=f,
                error=error,
                query=f.query(),
                events_query=urlencode({"site": f.site}),
                mark=self._mark(user, f.site),
            )

        @router.get("/board/rows", response_class=HTMLResponse)
        def board_rows(request: Request, f: Filter) -> Response:
            """The board's table alone, fetched by live.js when the event stream says so."""
            who = self._who(request)
            if who is None:
                return Response(status_code=403, headers=HEADERS)
            _, user = who
            if f.site and not user.principal.may_see(f.site):
                return Response(status_code=404, headers=HEADERS)
            try:
                items = self._board_items(user, f)
            except BadFilter as exc:
                return Response(str(exc), status_code=400, headers=HEADERS)
            html = self.env.get_template("board_rows.html.j2").render(
                t=translator(user.lang),
                items=items,
                mark=self._mark(user, f.site),
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
            # This month and the last always (an empty one says so); earlier months with
            # records, up to a year, folded away on the page.
            wanted = [month, previous_month(month)]
            wanted += [m for m in self.store.inspection_months(site) if m not in wanted][:10]
            months = [
                (m, rows)
                for i, m in enumerate(wanted)
                if (rows := self.store.device_inspection_rows(site, target, m)) or i < 2
            ]
            checks_of_device = [c for c in self.store.current_rows(site) if c["target"] == target]
            config = _config_history(checks_of_device, months)
            checks = sorted(
                checks_of_device, key=lambda c: (-int(c["status"]), str(c["check_key"]))
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
                config=config,
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

        @router.get("/incidents/{number}/analysis.{fmt}")
        def analysis_download(
            request: Request, number: str, fmt: Literal["html", "pdf"]
        ) -> Response:
            """The fault analysis report (故障分析说明) as a file, for whoever may see the
            incident (the customer receives it)."""
            who = self._who(request)
            if who is None:
                return self._refuse(request, 403, "forbidden")
            if self._visible(who[1], number) is None or self.config is None:
                return self._refuse(request, 404, "not_found")
            from collector.reports.fault import build_fault, render_fault

            data = build_fault(self.store, self.config, number, who[1].lang)
            with tempfile.TemporaryDirectory(prefix="fieldmon-web-fault-") as tmp:
                (path,) = render_fault(data, [fmt], Path(tmp))
                name, blob = path.name, path.read_bytes()
            return _attachment(name, blob, fmt)

        @router.post("/incidents/{number}/{action}", response_class=HTMLResponse)
        def act(
            request: Request,
            number: str,
            action: WebAction,
            csrf: Annotated[str, Form(max_length=128)] = "",
            text: Annotated[str, Form(max_length=5000)] = "",
            score: Annotated[str, Form(pattern="^[1-5]?$")] = "",
            level: Annotated[str, Form(pattern="^[1-4]?$")] = "",
            comment: Annotated[str, Form(max_length=2000)] = "",
            symptoms: Annotated[str, Form(max_length=5000)] = "",
            handling: Annotated[str, Form(max_length=5000)] = "",
            result: Annotated[str, Form(max_length=5000)] = "",
            prevention: Annotated[str, Form(max_length=5000)] = "",
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
            elif action == "level":
                # The store refuses a missing level or reason with a message naming it.
                args = {"level": int(level or 0), "text": text.strip()}
            elif action == "analysis":
                # The store names any field left empty.
                given = (symptoms, handling, result, prevention)
                args = dict(zip(ANALYSIS_FIELDS, given, strict=True))
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

        # ------------------------------------------------------------ fault reporting

        @router.get("/report-fault", response_class=HTMLResponse)
        def fault_form(request: Request) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            return self._fault_form(request, who, {})

        @router.post("/report-fault", response_class=HTMLResponse)
        def fault_open(
            request: Request,
            csrf: Annotated[str, Form(max_length=128)] = "",
            device: Annotated[str, Form(max_length=140)] = "",
            title: Annotated[str, Form(max_length=300)] = "",
            description: Annotated[str, Form(max_length=5000)] = "",
            caller_name: Annotated[str, Form(max_length=100)] = "",
            caller_phone: Annotated[str, Form(max_length=50)] = "",
            level: Annotated[str, Form(pattern="^[1-4]?$")] = "",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return self._refuse(request, 403, "forbidden")
            session, user = who
            if not session.csrf_ok(csrf):
                return self._refuse(request, 403, "csrf")
            given = {
                "device": device,
                "title": title,
                "description": description,
                "caller_name": caller_name,
                "caller_phone": caller_phone,
                "level": level,
            }
            site, _, target = device.partition("|")
            t = translator(user.lang)
            problem = ""
            unknown_device = bool(target) and self.store.target_row(site, target) is None
            if not site or not self._site_visible(user, site) or unknown_device:
                problem = t("err_device")
            elif not title.strip():
                problem = t("err_title")
            elif user.principal.role == "customer" and not (
                caller_name.strip() and caller_phone.strip()
            ):
                problem = t("err_contact")
            if problem:
                return self._fault_form(request, who, given, error=problem, status=400)
            is_engineer = user.principal.at_least("engineer")
            site_cfg = self.config.site(site) if self.config else None
            caller = {
                k: v.strip()
                for k, v in {
                    "name": caller_name,
                    "phone": caller_phone,
                    "company": site_cfg.customer if site_cfg else "",
                    "contract": site_cfg.contract if site_cfg else "",
                    "via": "console",
                }.items()
                if v.strip()
            }
            try:
                number, stats = self.store.open_manual(
                    site=site,
                    target=target,
                    level=int(level) if is_engineer and level else CUSTOMER_LEVEL,
                    title=title,
                    description=description,
                    caller=caller,
                    author=user.principal.author,
                    now=datetime.now(UTC),
                )
            except ActionError as exc:
                return self._fault_form(request, who, given, error=str(exc), status=400)
            log.info("incident %s opened from the console by %s", number, user.principal.author)
            self.raised(stats)
            return RedirectResponse(f"/incidents/{number}", status_code=303)

        # ------------------------------------------------------------ reports

        @router.get("/reports", response_class=HTMLResponse)
        def reports_index(request: Request) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            names = (
                sorted(user.principal.sites)
                if user.principal.sites is not None
                else self.store.site_names()
            )
            if len(names) == 1:
                return RedirectResponse(f"/sites/{quote(names[0])}/reports", status_code=303)
            return self._page(
                request,
                "reports_index.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                names=names,
            )

        @router.get("/sites/{site}/reports", response_class=HTMLResponse)
        def reports_page(
            request: Request,
            site: str,
            lang: Annotated[str, Query(pattern="^(zh-CN|en)?$")] = "",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            session, user = who
            if self.config is None or not self._site_visible(user, site):
                return self._refuse(request, 404, "not_found")
            report_lang = lang or user.lang
            rows = reviews.listing(self.store, site, report_lang, datetime.now(UTC), self.tz)
            is_engineer = user.principal.at_least("engineer")
            if not is_engineer:
                rows = [r for r in rows if r.state == "approved"]
            return self._page(
                request,
                "reports.html.j2",
                session=session,
                lang=user.lang,
                user=user,
                site=site,
                rows=rows,
                report_lang=report_lang,
                langs=reviews.LANGS,
                downloads=reviews.DOWNLOADS,
                is_engineer=is_engineer,
            )

        @router.get("/sites/{site}/reports/{kind}/{period}", response_class=HTMLResponse)
        def report_page(
            request: Request,
            site: str,
            kind: str,
            period: str,
            lang: Annotated[str, Query(pattern="^(zh-CN|en)?$")] = "",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return RedirectResponse("/login", status_code=303)
            return self._report(request, who, site, kind, period, lang or who[1].lang)

        @router.get("/sites/{site}/reports/{kind}/{period}/view", response_class=HTMLResponse)
        def report_view(
            request: Request,
            site: str,
            kind: str,
            period: str,
            lang: Annotated[str, Query(pattern="^(zh-CN|en)?$")] = "",
        ) -> Response:
            """The report's own HTML, framed by the review page."""
            who = self._who(request)
            if who is None:
                return Response(status_code=403, headers=HEADERS)
            found = self._report_data(who[1], site, kind, period, lang or who[1].lang)
            if isinstance(found, str):
                return Response(status_code=404, headers=HEADERS)
            return HTMLResponse(reviews.html(found, kind), headers=REPORT_HEADERS)

        @router.get("/sites/{site}/reports/{kind}/{period}/download/{fmt}")
        def report_download(
            request: Request,
            site: str,
            kind: str,
            period: str,
            fmt: Literal["pdf", "xlsx", "html", "json"],
            lang: Annotated[str, Query(pattern="^(zh-CN|en)?$")] = "",
        ) -> Response:
            who = self._who(request)
            if who is None:
                return self._refuse(request, 403, "forbidden")
            found = self._report_data(who[1], site, kind, period, lang or who[1].lang)
            if isinstance(found, str):
                return self._refuse(request, 404, "not_found")
            try:
                name, blob = reviews.render_file(found, kind, fmt)
            except reviews.BadReport as exc:
                log.warning("report %s %s %s as %s failed: %s", kind, site, period, fmt, exc)
                return self._report(
                    request, who, site, kind, period, str(found["lang"]), error=str(exc), status=500
                )
            return _attachment(name, blob, fmt)

        @router.post("/sites/{site}/reports/{kind}/{period}/send", response_class=HTMLResponse)
        def report_send(
            request: Request,
            site: str,
            kind: str,
            period: str,
            csrf: Annotated[str, Form(max_length=128)] = "",
            lang: Annotated[str, Form(pattern="^(zh-CN|en)$")] = "zh-CN",
        ) -> Response:
            """Mail the approved report to the site's contacts (collector/reports/mail.py)."""
            who = self._who(request)
            if who is None:
                return self._refuse(request, 403, "forbidden")
            session, user = who
            if not session.csrf_ok(csrf):
                return self._refuse(request, 403, "csrf")
            if not self._site_visible(user, site):
                return self._refuse(request, 404, "not_found")
            if not user.principal.at_least("engineer"):
                return self._refuse(request, 403, "forbidden")
            ready, why = self._mail_ready(site, kind)
            if not ready:
                return self._report(request, who, site, kind, period, lang, error=why, status=409)
            from collector.reports.mail import MailError, mail_monthly

            assert self.config is not None and self.classes is not None
            try:
                with tempfile.TemporaryDirectory(prefix="fieldmon-web-mail-") as tmp:
                    _, outcome = mail_monthly(
                        self.store, self.config, self.classes, site, period, lang, Path(tmp)
                    )
            except MailError as exc:
                log.warning("mailing the %s report %s %s failed: %s", kind, site, period, exc)
                return self._report(
                    request, who, site, kind, period, lang, error=str(exc), status=409
                )
            log.info(
                "%s report %s %s (%s) mailed by %s: %s",
                kind,
                site,
                period,
                lang,
                user.principal.name,
                outcome,
            )
            target = f"/sites/{quote(site)}/reports/{kind}/{period}"
            return RedirectResponse(
                f"{target}?{urlencode({'lang': lang, 'saved': 'sent'})}", status_code=303
            )

        @router.post("/sites/{site}/reports/{kind}/{period}", response_class=HTMLResponse)
        async def report_review(request: Request, site: str, kind: str, period: str) -> Response:
            """Save the remarks typed on the page, and approve when that button was used."""
            # Every checklist row of every device is two fields (its key and its remark).
            form = await request.form(max_files=0, max_fields=200_000)
            return await run_in_threadpool(self._review_post, request, form, site, kind, period)

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
            notices=[e for e in events if e["kind"] == "notified"],
            analysis_fields=ANALYSIS_FIELDS,
            impacts=self.store.impacts(inc_id),
            intact=self.store.verify_timeline(inc_id),
            is_engineer=user.principal.at_least("engineer"),
            is_customer=user.principal.role == "customer",
            error=error,
        )

    # ------------------------------------------------------------------ fault reporting

    def _fault_form(
        self,
        request: Request,
        who: tuple[Session, WebUser],
        given: Mapping[str, str],
        *,
        error: str = "",
        status: int = 200,
    ) -> Response:
        """The fault report form: what a customer would otherwise say on the phone."""
        session, user = who
        names = (
            sorted(user.principal.sites)
            if user.principal.sites is not None
            else self.store.site_names()
        )
        devices = [
            (site, [str(r["target"]) for r in self.store.target_rows(site)]) for site in names
        ]
        return self._page(
            request,
            "fault.html.j2",
            session=session,
            lang=user.lang,
            user=user,
            status=status,
            devices=devices,
            given=given,
            error=error,
            is_engineer=user.principal.at_least("engineer"),
            customer_level=CUSTOMER_LEVEL,
        )

    # ------------------------------------------------------------------ reports

    def _report_data(
        self, user: WebUser, site: str, kind: str, period: str, lang: str
    ) -> dict[str, Any] | str:
        """The report as it stands, or why it is not shown (every reason answers 404: a
        customer cannot tell another site's report, a draft and a bad period apart)."""
        if self.config is None or self.classes is None:
            return "reports are not configured"
        if not self._site_visible(user, site):
            return "not your site"
        try:
            data = reviews.build(
                self.store,
                self.config,
                self.classes,
                kind,
                site,
                period,
                lang,
                datetime.now(UTC),
                log.warning,
            )
        except reviews.BadReport as exc:
            return str(exc)
        if not user.principal.at_least("engineer") and data["review"]["state"] != "approved":
            return "not approved"
        return data

    def _report(
        self,
        request: Request,
        who: tuple[Session, WebUser],
        site: str,
        kind: str,
        period: str,
        lang: str,
        *,
        error: str = "",
        status: int = 200,
    ) -> Response:
        session, user = who
        found = self._report_data(user, site, kind, period, lang)
        if isinstance(found, str):
            return self._refuse(request, 404, "not_found")
        query = urlencode({"lang": lang})
        base = f"/sites/{quote(site)}/reports/{kind}/{period}"
        return self._page(
            request,
            "report.html.j2",
            session=session,
            lang=user.lang,
            user=user,
            status=status,
            site=site,
            kind=kind,
            period=period,
            report_lang=lang,
            review=found["review"],
            devices=reviews.remark_rows(found),
            dangers=reviews.danger_rows(found),
            has_dangers="dangers" in found,
            approvable_from=reviews.approvable_from(kind, period),
            base=base,
            query=query,
            downloads=reviews.DOWNLOADS[kind],
            is_engineer=user.principal.at_least("engineer"),
            over=reviews.period_over(kind, period, datetime.now(UTC), self.tz),
            mail=self._mail_ready(site, kind),
            contacts=self.config.site(site).contacts if self.config else [],
            saved=request.query_params.get("saved", ""),
            error=error,
        )

    def _mail_ready(self, site: str, kind: str) -> tuple[bool, str]:
        """Whether "send to the customer" can work for this report, and if not, why: only
        monthly reports are mailed, through the ``[reports] mail_channel`` e-mail channel, to
        the site's ``contacts``."""
        if kind != "monthly" or self.config is None or self.classes is None:
            return False, "only the monthly report is mailed to customers"
        try:
            from collector.reports.mail import MailError, email_channel
        except ImportError as exc:  # an install without the SMTP client
            return False, f"mailing reports is not available: {exc}"
        if not self.config.site(site).contacts:
            return False, f"site {site!r} has no contacts ([[sites]] contacts)"
        try:
            email_channel(self.config)
        except MailError as exc:
            return False, str(exc)
        return True, ""

    def _review_post(
        self, request: Request, form: Any, site: str, kind: str, period: str
    ) -> Response:
        who = self._who(request)
        if who is None:
            return self._refuse(request, 403, "forbidden")
        session, user = who
        if not session.csrf_ok(str(form.get("csrf") or "")):
            return self._refuse(request, 403, "csrf")
        if not self._site_visible(user, site):
            return self._refuse(request, 404, "not_found")
        if not user.principal.at_least("engineer"):
            return self._refuse(request, 403, "forbidden")
        lang = str(form.get("lang") or user.lang)
        action = str(form.get("do") or "save")
        keys = [str(k) for k in form.getlist("key")]
        texts = [str(v) for v in form.getlist("remark")]
        problem = ""
        if action not in ("save", "approve"):
            problem = f"unknown review action {action!r} (save or approve)"
        elif len(keys) != len(texts):
            problem = f"{len(keys)} remark keys but {len(texts)} remark texts"
        elif any(len(k) > 400 for k in keys) or any(len(v) > 2000 for v in texts):
            problem = "a remark is longer than 2000 characters"
        elif action == "approve" and not reviews.period_over(
            kind, period, datetime.now(UTC), self.tz
        ):
            problem = translator(user.lang)("not_over").format(
                period=period, date=reviews.approvable_from(kind, period)
            )
        if not problem:
            remarks = {k: v.strip() for k, v in zip(keys, texts, strict=True)}
            if self.config is None or self.classes is None:
                return self._refuse(request, 404, "not_found")
            try:
                reviews.save(
                    self.store,
                    self.config,
                    self.classes,
                    kind,
                    site,
                    period,
                    lang,
                    remarks,
                    approve=action == "approve",
                    reviewer=user.principal.name,
                    now=datetime.now(UTC),
                )
            except reviews.BadReport as exc:
                problem = str(exc)
            except StateConflict as exc:
                return self._report(
                    request, who, site, kind, period, lang, error=str(exc), status=409
                )
        if problem:
            return self._report(request, who, site, kind, period, lang, error=problem, status=400)
        if action == "approve":
            log.info(
                "%s report %s %s (%s) approved by %s", kind, site, period, lang, user.principal.name
            )
        target = f"/sites/{quote(site)}/reports/{kind}/{period}"
        return RedirectResponse(
            f"{target}?{urlencode({'lang': lang, 'saved': action})}", status_code=303
        )
