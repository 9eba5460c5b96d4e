"""API tokens and roles.

Tokens are configured by their SHA-256 (so the configuration file does not hold usable
credentials) or given through the environment/a file. Roles, weakest first: ``customer`` (its
own sites: read, add notes, open an incident, answer the survey), ``viewer`` (read all),
``engineer`` (work incidents), ``admin`` (everything, including timeline verification).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["customer", "viewer", "engineer", "admin"]
RANK: dict[str, int] = {"customer": 0, "viewer": 1, "engineer": 2, "admin": 3}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    #: Sites this principal may see; None = all (only for non-customer roles).
    sites: frozenset[str] | None

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]

    def may_see(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    @property
    def author(self) -> str:
        return f"customer:{self.name}" if self.role == "customer" else self.name


@dataclass(frozen=True, slots=True)
class TokenEntry:
    digest: str
    principal: Principal


class TokenBook:
    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        self._entries = list(entries)

    def lookup(self, token: str) -> Principal | None:
        digest = token_digest(token)
        found: Principal | None = None
        for entry in self._entries:  # compare against all: no timing hint of which matched
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found
