"""The collector's web console: server-rendered pages for engineers and customers.

Logins come from the configuration's ``users`` (argon2 password hashes); the session lives in
a signed, HttpOnly, SameSite=Lax cookie that also carries the CSRF token every form posts
back. Every action goes through ``Store.act``/``Store.open_manual`` with the same role table
as the API, and a customer asking for another site's incident gets the same 404 as for a
number that does not exist.

Besides the live incident board, sites and devices, engineers review the monthly and
quarterly reports (remarks, approval, downloads, mailing to the customer) and customers open
incidents themselves and download approved reports of their own sites. Failed logins are
counted per user name and per client address (``ratelimit``); the cookie key comes from
``http.session_secret``.
"""

from collector.web.console import WebConsole, WebUser

__all__ = ["WebConsole", "WebUser"]
