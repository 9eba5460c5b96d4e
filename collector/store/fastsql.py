"""One prepared statement, run on SQLite's own cursor: the ingest path's hot single-row work.

Why: a failing result takes a handful of one-row statements (is an incident open, how often
did the check change lately, insert the incident and its first timeline entry, …). Through
``Connection.execute`` each costs SQLAlchemy's whole per-call machinery (cache key, execution
context, result object), several times what SQLite spends running it. Here a module-level
statement is compiled once per dialect and set of parameter names; each call only runs the
column types' own bind and result processors (so what is stored and read back is exactly
what SQLAlchemy would store and return) on the DBAPI cursor of the same connection, hence
inside the caller's transaction. Other dialects take the ordinary ``Connection.execute`` path
with the same return shape, so callers stay dialect-neutral.

Only statements built once at import time may be passed: the compiled form is cached by the
statement's identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Delete, Insert, Select, Update

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a statement gave back: rows as tuples (already converted to Python values),
    how many rows it changed, and the new row's id of a one-row INSERT."""

    rows: list[tuple[Any, ...]]
    rowcount: int
    lastrowid: int | None

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    #: Per positional parameter: the caller's parameter name, or None for a constant bound
    #: into the statement itself (``state == "open"``), whose value is in ``constants``.
    names: tuple[str | None, ...]
    constants: tuple[Any, ...]
    binds: tuple[Processor | None, ...]
    #: (column position, result processor) of the columns whose values need converting.
    results: tuple[tuple[int, Processor], ...]
    #: Names of the expanding parameters (``column.in_(bindparam(name, expanding=True))``):
    #: their placeholder in ``sql`` becomes one ``?`` per element at each call.
    expanding: frozenset[str]


_PREPARED: dict[tuple[int, str, tuple[str, ...]], _Prepared | None] = {}

Statement = Select[Any] | Insert | Update | Delete


def _prepare(conn: Connection, stmt: Statement, keys: tuple[str, ...]) -> _Prepared | None:
    """The compiled form, or None when it cannot be run positionally (parameters neither
    given nor bound to a constant, literal-rendered ones): those take the ordinary path."""
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    if not compiled.positional or compiled.positiontup is None:
        return None
    names: list[str | None] = []
    constants: list[Any] = []
    binds: list[Processor | None] = []
    expanding: set[str] = set()
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if bind.literal_execute or (bind.expanding and name not in keys):
            return None
        if bind.expanding:
            expanding.add(name)
        if name in keys:
            names.append(name)
            constants.append(None)
        elif bind.callable is None and bind.value is not None:
            names.append(None)
            constants.append(bind.value)
        else:
            return None
        binds.append(bind.type._cached_bind_processor(dialect))
    results = tuple(
        (i, f)
        for i, f in enumerate(
            col.type._cached_result_processor(dialect, None) for col in compiled._result_columns
        )
        if f is not None
    )
    return _Prepared(
        compiled.string,
        tuple(names),
        tuple(constants),
        tuple(binds),
        results,
        frozenset(expanding),
    )


def run(conn: Connection, stmt: Statement, params: Mapping[str, Any]) -> Outcome:
    """``conn.execute(stmt, params)`` for a statement built once; see the module docstring."""
    if conn.dialect.name != "sqlite" or conn._has_events or conn.engine._has_events:
        # Someone listens to cursor events (tracing, bench.ingest's statement count): let
        # them see this statement like any other.
        return _ordinary(conn, stmt, params)
    keys = tuple(params)
    cache_key = (id(stmt), conn.dialect.name, keys)
    try:
        prepared = _PREPARED[cache_key]
    except KeyError:
        prepared = _PREPARED[cache_key] = _prepare(conn, stmt, keys)
    if prepared is None:
        return _ordinary(conn, stmt, params)
    sql = prepared.sql
    values: list[Any] = []
    for name, constant, convert in zip(
        prepared.names, prepared.constants, prepared.binds, strict=True
    ):
        if name is None:
            values.append(constant if convert is None else convert(constant))
        elif name in prepared.expanding:
            items = list(params[name])
            if not items:
                return _ordinary(conn, stmt, params)  # SQLAlchemy's own empty-IN form
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(items)), 1)
            values.extend(items if convert is None else [convert(v) for v in items])
        else:
            value = params[name]
            values.append(value if convert is None else convert(value))
    cursor = _cursor(conn)
    cursor.execute(sql, values)
    raw = cursor.fetchall() if cursor.description is not None else []
    rowcount, lastrowid = cursor.rowcount, cursor.lastrowid
    converters = prepared.results
    if not raw or not converters:
        return Outcome(raw, rowcount, lastrowid)
    rows: list[tuple[Any, ...]] = []
    for found in raw:
        row = list(found)
        for i, convert in converters:
            value = row[i]
            if value is not None:  # every processor maps NULL to None
                row[i] = convert(value)
        rows.append(tuple(row))
    return Outcome(rows, rowcount, lastrowid)


def _cursor(conn: Connection) -> Any:
    """The DBAPI connection's own cursor for :func:`run`, made once and kept with it.

    Making and closing a sqlite3 cursor per statement cost about as much as running a
    one-row lookup. One cursor per connection can be reused because :func:`run` fetches
    everything before returning and a connection serves one thread at a time. It is kept in
    the pool's per-connection ``info`` (cleared when the connection is replaced) and checked
    against the current DBAPI connection all the same."""
    fairy = conn.connection
    driver = fairy.driver_connection
    cursor = fairy.info.get(_CURSOR_KEY)
    if cursor is None or cursor.connection is not driver:
        cursor = fairy.info[_CURSOR_KEY] = driver.cursor()  # type: ignore[union-attr]
    return cursor


_CURSOR_KEY = "fieldmon.fastsql.cursor"


def _ordinary(conn: Connection, stmt: Statement, params: Mapping[str, Any]) -> Outcome:
    result = conn.execute(stmt, dict(params))
    if isinstance(stmt, Insert):
        key = result.inserted_primary_key
        lastrowid = int(key[0]) if key and key[0] is not None else None
        return Outcome([], result.rowcount, lastrowid)
    rows = [tuple(row) for row in result] if result.returns_rows else []
    return Outcome(rows, result.rowcount, None)
