"""The collector's web console: server-rendered pages for engineers and customers.

Logins come from the configuration's ``users`` (argon2 password hashes); the session lives in
a signed, HttpOnly, SameSite=Lax cookie that also carries the CSRF token every form posts
back. Every action goes through ``Store.act``/``Store.open_manual`` with the same role table
as the API, and a customer asking for another site's incident gets the same 404 as for a
number that does not exist.
"""

from collector.web.console import WebConsole, WebUser

__all__ = ["WebConsole", "WebUser"]
