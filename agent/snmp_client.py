"""A small SNMP client of our own over gufo-snmp's asyncio session.

Why a layer of our own: probes should not know gufo's exception zoo, its missing retry support
or its per-session socket rules. This module gives them two calls (:meth:`SnmpClient.get_many`
and :meth:`SnmpClient.walk`), the configured timeout and retries on every request, a per-device
concurrency limit, and exactly two failure types with a readable message.

gufo-snmp is imported lazily (inside functions), so an agent that only watches its own host
never loads the SNMP stack.

Facts about gufo-snmp 0.13 this module relies on (checked against snmpsim 1.2.2):

* values come back as ``bytes`` (OCTET STRING), ``str`` (OBJECT IDENTIFIER, IpAddress) or
  ``int`` (INTEGER, Counter, Gauge, TimeTicks in 1/100 s); ``None`` stands for "no value";
* ``get_many`` silently leaves out OIDs the agent reports as noSuchObject/noSuchInstance, while
  ``get`` raises ``NoSuchInstance``;
* on SNMPv1 a GET with one unknown OID fails as a whole (noSuchName) and gufo returns ``{}``;
* there is no retry: each request waits once; an ICMP "port unreachable" shows up as an
  immediate ``TimeoutError``; responses to earlier (timed-out) requests are discarded by
  request id;
* the address must be an IP literal (a host name raises ``OSError: invalid address``);
* a session has no ``close()``: its socket is closed when the object is dropped;
* there is no SNMPv3 context name parameter: requests always use the empty context;
* a GETBULK iterator keeps the rest of the last answer in its ``_buffer`` list (``None`` marks
  the end of the MIB view) and only sends a request when that list is empty;
* a session's own ``timeout`` bounds each wait for an answer: when it passes, gufo raises
  ``TimeoutError`` no earlier than ``timeout`` after sending; a "connection refused" also comes
  back as ``TimeoutError``, but at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from agent.config import SnmpConfig

if TYPE_CHECKING:
    from gufo.snmp import User
    from gufo.snmp.aio import SnmpSession
    from gufo.snmp.typing import ValueType

__all__ = [
    "SnmpClient",
    "SnmpClientError",
    "SnmpFailure",
    "SnmpUnreachable",
    "SnmpValue",
]

#: What a variable binding can hold once "no value" has been filtered out.
SnmpValue = str | bytes | int | float

T = TypeVar("T")

#: SNMPv3 engine time is only accepted within a 150 s window; refresh before reusing a session
#: that has been idle for longer than this.
_V3_RESYNC_AFTER = 120.0

#: gufo's error classes (SnmpAuthError, SnmpDecodeError, SnmpError), imported on first use and
#: kept: an ``import`` statement in the per-request path costs more than the request's own
#: Python code.
_GUFO_ERRORS: tuple[type[Exception], type[Exception], type[Exception]] | None = None


def _gufo_errors() -> tuple[type[Exception], type[Exception], type[Exception]]:
    global _GUFO_ERRORS
    if _GUFO_ERRORS is None:
        from gufo.snmp import SnmpAuthError, SnmpDecodeError, SnmpError

        _GUFO_ERRORS = (SnmpAuthError, SnmpDecodeError, SnmpError)
    return _GUFO_ERRORS


class SnmpClientError(Exception):
    """Any SNMP problem reported by :class:`SnmpClient`; the message says what and where."""


class SnmpUnreachable(SnmpClientError):
    """No answer: timeout after all retries, nothing listening, or the name does not resolve."""


class SnmpFailure(SnmpClientError):
    """The device answered but the exchange failed (authentication, protocol error, …)."""


@dataclass(slots=True)
class _Held:
    """One open gufo session and when it last completed an exchange."""

    session: SnmpSession
    last_ok: float
    generation: int


async def _next_or_none(it: AsyncIterator[tuple[str, ValueType]]) -> tuple[str, ValueType] | None:
    """One step of a walk; ``None`` at the end, so the step can run under a timeout."""
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return None


def _oid_key(oid: str) -> tuple[int, ...]:
    """Numeric sort key of a dotted OID (lexicographic order of arcs, as SNMP defines it)."""
    return tuple(map(int, oid.strip(".").split("."))) if oid.strip(".") else ()


def _norm_oid(oid: str) -> str:
    """gufo wants numeric OIDs without a leading dot."""
    return oid.strip().lstrip(".")


class SnmpClient:
    """SNMP access to one device with the timeout, retries and version of its configuration.

    Requests to one device go through a semaphore (``max_concurrency``, default 1) so that a
    device is never flooded; each concurrent slot owns its own gufo session (socket) because a
    session can only wait for one answer at a time. Devices do not share anything, so a dead
    device only ever delays callers that talk to it.

    Sessions are opened on first use, reused, and dropped by :meth:`close` or after a failed
    exchange (a fresh session also redoes SNMPv3 engine discovery, which heals a device that
    rebooted or was replaced). After :meth:`close` the client can still be used; it reopens.
    """

    def __init__(self, address: str, config: SnmpConfig, *, max_concurrency: int = 1) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.address = address
        self.config = config
        self._where = f"[{address}]:{config.port}" if ":" in address else f"{address}:{config.port}"
        self._slots = asyncio.Semaphore(max_concurrency)
        self._idle: list[_Held] = []
        self._generation = 0
        self._engine_id: bytes | None = None
        # Built now so that a bad protocol name fails at start-up, not at the first poll.
        self._user: User | None = _make_user(config) if config.version == "3" else None

    def __repr__(self) -> str:
        return f"SnmpClient({self._where}, v{self.config.version})"

    # ----------------------------------------------------------------------------- public API

    async def get_many(self, oids: Iterable[str]) -> dict[str, SnmpValue]:
        """GET several OIDs in one request; the result holds only the OIDs the device has.

        On SNMPv1, where one unknown OID fails the whole request, the missing OIDs are asked
        one by one so that the known ones are still returned.
        """
        wanted = list(dict.fromkeys(_norm_oid(o) for o in oids))
        if not wanted:
            return {}

        async def run(session: SnmpSession) -> dict[str, SnmpValue]:
            got = await self._exchange(lambda: session.get_many(wanted), "GET")
            result = {k: v for k, v in got.items() if v is not None}
            if self.config.version == "1" and len(result) < len(wanted):
                for oid in wanted:
                    if oid not in result:
                        value = await self._exchange(partial(_get_or_none, session, oid), "GET")
                        if value is not None:
                            result[oid] = value
            return result

        return await self._with_session(run)

    async def walk(self, oid: str) -> list[tuple[str, SnmpValue]]:
        """All (oid, value) pairs under ``oid``, in order; GETBULK on v2c/v3, GETNEXT on v1.

        Each GETBULK/GETNEXT step gets the configured timeout and retries. The walk stops at
        the end of the subtree or of the MIB view; an agent that answers with OIDs out of
        order is reported as a failure instead of looping forever.
        """
        base = _norm_oid(oid)
        prefix = base + "."
        cut = len(prefix)
        bulk = self.config.version != "1"
        what = f"walk of {base}"

        async def run(session: SnmpSession) -> list[tuple[str, SnmpValue]]:
            it = (
                session.getbulk(base, self.config.max_repetitions)
                if bulk
                else session.getnext(base)
            )
            step_now = partial(_next_or_none, it)
            rows: list[tuple[str, SnmpValue]] = []
            # Order is checked on the part after ``prefix`` only: every OID compared has that
            # prefix (the walk ends at the first one without it), so comparing the rest is
            # comparing the whole OID, and the rest of a table column is usually one arc.
            last: tuple[int, ...] = ()
            last_oid = base
            while True:
                # The rest of the last GETBULK answer is taken straight from gufo's buffer:
                # no I/O, so no timeout, retries or coroutine per varbind (those cost more
                # than the decoding). Only a step that sends a request goes through
                # ``_exchange``.
                buffer = getattr(it, "_buffer", None) if bulk else None
                step: tuple[str, ValueType] | None
                if buffer:
                    step = buffer.pop(0)  # None: the end of the MIB view
                else:
                    step = await self._exchange(step_now, what)
                if step is None:
                    return rows
                got, value = step
                got = _norm_oid(got)
                if not got.startswith(prefix):
                    return rows
                rest = got[cut:]
                key = (int(rest),) if rest.isdecimal() else _oid_key(rest)
                if key <= last:
                    raise SnmpFailure(
                        f"{self._where}: walk of {base}: agent returned {got} after "
                        f"{last_oid} (OIDs not increasing)"
                    )
                last, last_oid = key, got
                if value is not None:
                    rows.append((got, value))

        return await self._with_session(run)

    async def close(self) -> None:
        """Drop every session (gufo closes a socket when its session object goes away)."""
        self._generation += 1
        self._idle.clear()

    # ------------------------------------------------------------------------------ internals

    async def _with_session(self, fn: Callable[[SnmpSession], Awaitable[T]]) -> T:
        """Run ``fn`` on a session from the pool, within this device's concurrency limit.

        A session that saw any error is dropped rather than returned to the pool. If a reused
        SNMPv3 session fails with an SNMP error (typically "not in time window" after the
        device rebooted), the request is tried once more on a freshly discovered session.
        """
        async with self._slots:
            for attempt in (1, 2):
                held = self._idle_session()
                reused = held is not None
                if held is None:
                    held = await self._open()
                elif self._user is not None and time.monotonic() - held.last_ok > _V3_RESYNC_AFTER:
                    await self._exchange(held.session.refresh, "SNMPv3 time synchronisation")
                    held.last_ok = time.monotonic()
                try:
                    result = await fn(held.session)
                except SnmpFailure:
                    if attempt == 1 and reused and self._user is not None:
                        self._engine_id = None
                        continue
                    raise
                held.last_ok = time.monotonic()
                if held.generation == self._generation:
                    self._idle.append(held)
                return result
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    def _idle_session(self) -> _Held | None:
        """An idle session of the current generation, or None (then a new one is opened).

        Synchronous on purpose: it runs before every request, and the common case (a session
        is waiting) needs no await; only an SNMPv3 session idle for too long is re-synchronised
        by the caller.
        """
        while self._idle:
            held = self._idle.pop()
            if held.generation == self._generation:
                return held
        return None

    async def _open(self) -> _Held:
        from gufo.snmp import SnmpVersion
        from gufo.snmp.aio import SnmpSession

        host = await self._resolve()
        version = {"1": SnmpVersion.v1, "2c": SnmpVersion.v2c, "3": SnmpVersion.v3}
        try:
            session = SnmpSession(
                addr=host,
                port=self.config.port,
                community=self.config.community.get_secret_value(),
                engine_id=self._engine_id,
                user=self._user,
                version=version[self.config.version],
                # gufo's timer bounds every attempt (see _exchange): a second timer of our own
                # per request doubled the event loop's timer work for nothing.
                timeout=self.config.timeout,
                max_repetitions=self.config.max_repetitions,
            )
        except (OSError, ValueError) as exc:
            raise SnmpFailure(f"{self._where}: cannot open an SNMP session: {exc}") from exc
        if self._user is not None:
            await self._exchange(session.refresh, "SNMPv3 engine discovery")
            self._engine_id = session.get_engine_id()
        return _Held(session, time.monotonic(), self._generation)

    async def _resolve(self) -> str:
        """The device's IP address; names are resolved without blocking the event loop."""
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            pass
        else:
            return self.address
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.config.timeout * (self.config.retries + 1)):
                infos = await loop.getaddrinfo(
                    self.address, self.config.port, type=socket.SOCK_DGRAM
                )
        except (OSError, TimeoutError) as exc:
            raise SnmpUnreachable(
                f"{self._where}: cannot resolve {self.address!r}: {exc or 'timed out'}"
            ) from exc
        if not infos:
            raise SnmpUnreachable(f"{self._where}: {self.address!r} has no address")
        return str(infos[0][4][0])

    async def _exchange(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """One request/response with the configured timeout and retries, errors translated.

        The timeout is gufo's own (the session is opened with the configured ``timeout``), so
        a request arms one timer, not two. gufo reports both "no answer in time" and "ICMP port
        unreachable" as ``TimeoutError``; they are told apart by the time taken: a timeout
        comes no earlier than ``timeout`` after the request, a refusal at once.
        """
        auth_error, decode_error, snmp_error = _GUFO_ERRORS or _gufo_errors()
        timeout = self.config.timeout
        tries = self.config.retries + 1
        loop = asyncio.get_running_loop()
        for _ in range(tries):
            started = loop.time()
            try:
                return await op()
            except TimeoutError as exc:
                if loop.time() - started >= timeout / 2:
                    continue  # no answer in time: retry
                # gufo raised long before its deadline: the socket got "connection refused"
                raise SnmpUnreachable(
                    f"{self._where}: {what}: nothing answers on UDP port {self.config.port}"
                    " (port unreachable)"
                ) from exc
            except auth_error as exc:
                detail = "" if str(exc) == "authentication failed" else f": {exc}"
                raise SnmpFailure(
                    f"{self._where}: {what}: SNMPv3 authentication failed (check user, "
                    f"protocols and keys){detail}"
                ) from exc
            except decode_error as exc:
                raise SnmpFailure(f"{self._where}: {what}: undecodable answer: {exc}") from exc
            except snmp_error as exc:
                raise SnmpFailure(f"{self._where}: {what}: {exc or type(exc).__name__}") from exc
            except OSError as exc:
                raise SnmpUnreachable(f"{self._where}: {what}: {exc.strerror or exc}") from exc
        plural = "attempt" if tries == 1 else "attempts"
        raise SnmpUnreachable(
            f"{self._where}: no answer to {what} within {timeout:g} s ({tries} {plural})"
        )


async def _get_or_none(session: SnmpSession, oid: str) -> ValueType:
    """Single GET for the SNMPv1 fallback: a missing OID is ``None``, not an error."""
    from gufo.snmp import NoSuchInstance

    try:
        return await session.get(oid)
    except NoSuchInstance:
        return None


def _make_user(config: SnmpConfig) -> User:
    """The gufo SNMPv3 user for ``config`` (passwords as keys, Blumenthal AES expansion)."""
    from gufo.snmp import (
        Aes128Key,
        Aes192Key,
        Aes256Key,
        BaseAuthKey,
        BasePrivKey,
        DesKey,
        Md5Key,
        Sha1Key,
        Sha224Key,
        Sha256Key,
        Sha384Key,
        Sha512Key,
        User,
    )

    auth_types: dict[str, type[BaseAuthKey]] = {
        "md5": Md5Key,
        "sha": Sha1Key,
        "sha224": Sha224Key,
        "sha256": Sha256Key,
        "sha384": Sha384Key,
        "sha512": Sha512Key,
    }
    priv_types: dict[str, type[BasePrivKey]] = {
        "des": DesKey,
        "aes": Aes128Key,
        "aes192": Aes192Key,
        "aes256": Aes256Key,
    }
    if not config.user:
        raise ValueError("SNMPv3 needs 'user'")
    auth_key: BaseAuthKey | None = None
    priv_key: BasePrivKey | None = None
    if config.auth_protocol:
        if config.auth_key is None:
            raise ValueError("'auth_key' is required with auth_protocol")
        auth_key = auth_types[config.auth_protocol](config.auth_key.get_secret_value().encode())
    if config.priv_protocol:
        if config.priv_key is None:
            raise ValueError("'priv_key' is required with priv_protocol")
        priv_key = priv_types[config.priv_protocol](config.priv_key.get_secret_value().encode())
    return User(config.user, auth_key=auth_key, priv_key=priv_key)
