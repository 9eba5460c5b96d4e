"""The session cookie: signed (itsdangerous), HttpOnly, SameSite=Lax, with the CSRF token.

The cookie holds only the user's name and the CSRF token; role, sites and language are looked
up in the configuration on every request, so a user removed from it is signed out at once.
Visitors who have not signed in get a session without a name so that the login form has a
CSRF token too; signing in issues a fresh token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "fieldmon_session"
#: Sessions end after this long, signed in or not.
MAX_AGE = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    user: str | None
    csrf: str

    @staticmethod
    def fresh(user: str | None = None) -> Session:
        return Session(user, secrets.token_urlsafe(32))

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), (given or "").encode())


class Sessions:
    def __init__(self, secret: bytes) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="fieldmon-web-session")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user, csrf = data.get("u"), data.get("c")
        if not isinstance(csrf, str) or not (user is None or isinstance(user, str)):
            return None
        return Session(user, csrf)

    def write(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self._signer.dumps({"u": session.user, "c": session.csrf}),
            max_age=MAX_AGE,
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
