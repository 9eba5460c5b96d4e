"""Failed console logins, counted per user name and per client address.

Password guessing is cheap for an attacker and expensive for us (argon2 on every try), so
after ``max_failures`` failures within ``window`` for a name *or* an address, further
attempts are refused with 429 before the password is even checked, until the oldest failure
leaves the window. Counting per name stops one account being guessed from many addresses;
counting per address stops one address trying many names. A successful login clears the
name's count (the owner got in) but not the address's, so a valid account of one's own does
not reset a guessing run. Counts live in memory: a restart forgets them, which at worst
gives a guesser one fresh window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: Keys remembered at most; the oldest-touched are forgotten first, so a flood of made-up
#: names cannot grow memory without bound.
MAX_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an attempt may go ahead, and if not, for how long it stays refused."""

    allowed: bool
    retry_after: int = 0
    #: "user" or "address": which count is full (for the log line).
    reason: str = ""


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window <= 0:
            raise ValueError("max_failures must be >= 1 and window > 0")
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def check(self, user: str, address: str) -> Verdict:
        """Before checking a password: is this name or this address locked out?"""
        now = self._clock()
        with self._lock:
            for reason, key in (("user", f"u:{user.lower()}"), ("address", f"a:{address}")):
                q = self._recent(key, now)
                if len(q) >= self.max_failures:
                    wait = self.window - (now - q[0])
                    return Verdict(False, max(1, int(wait + 0.999)), reason)
        return Verdict(True)

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in (f"u:{user.lower()}", f"a:{address}"):
                q = self._recent(key, now)
                q.append(now)
                self._fails.pop(key, None)
                self._fails[key] = q  # re-inserted: dict order is least recently touched first
            while len(self._fails) > MAX_KEYS:
                del self._fails[next(iter(self._fails))]

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._fails.pop(f"u:{user.lower()}", None)
