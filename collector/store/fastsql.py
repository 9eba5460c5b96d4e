"""One prepared statement, run on SQLite's own cursor: the ingest path's hot single-row work.

Why: a failing result takes a handful of one-row statements (is an incident open, how often
did the check change lately, insert the incident and its first timeline entry, …). Through
``Connection.execute`` each costs SQLAlchemy's whole per-call machinery (cache key, execution
context, result object), several times what SQLite spends running it. Here a module-level
statement is compiled once per dialect and set of parameter names; each call only runs the
column types' own bind and result processors (so what is stored and read back is exactly
what SQLAlchemy would store and return) on the DBAPI cursor of the same connection, hence
inside the caller's transaction. Other dialects take the ordinary ``Connection.execute`` path
with the same return shape, so callers stay dialect-neutral. :func:`execute_many` does the
same for the thousands of rows a batch writes per table.

Only statements built once at import time may be passed: the compiled form is cached by the
statement's identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Delete, Dialect, Insert, Select, Update
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any]

#: How SQLAlchemy's SQLite DATETIME stores a datetime by default (its ``_storage_format``).
_SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """``type_``'s bind processor on ``dialect``; for SQLite's DATETIME an equivalent one.

    Why: SQLAlchemy's formats a datetime through a dict of its seven fields and ``%``, about
    two microseconds, and a batch binds several datetimes per result. ``isoformat`` gives the
    same text ("2026-11-23 08:00:00.000000", the zone ignored as SQLAlchemy ignores it) in
    C; anything but a plain datetime (a date, a subclass) still goes to SQLAlchemy's."""
    process = type_._cached_bind_processor(dialect)
    if process is None or dialect.name != "sqlite":
        return process
    impl = type_.dialect_impl(dialect)
    storage = getattr(impl, "_storage_format", None)  # a custom format keeps SQLAlchemy's
    if isinstance(impl, SQLITE_DATETIME) and storage == _SQLITE_DATETIME_FORMAT:
        return DatetimeText(process)
    return process


class DatetimeText:
    """SQLite's DATETIME bind processor (see :func:`bind_processor`); the type tells callers
    that the same datetime object always gives the same text, so they may reuse it."""

    __slots__ = ("general",)

    def __init__(self, general: Processor) -> None:
        self.general = general

    def __call__(self, value: Any) -> Any:
        if type(value) is datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return self.general(value)


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
        binds.append(bind_processor(bind.type, dialect))
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


#: (statement, dialect name, parameter names) -> (SQL text, getter of the positional values,
#: (position, bind processor, whether it is a :class:`DatetimeText`) of the values that need
#: one)
_COMPILED: dict[
    tuple[int, str, tuple[str, ...]],
    tuple[str, Callable[[dict[str, Any]], Any], list[tuple[int, Callable[[Any], Any], bool]]],
] = {}

#: Texts of datetimes already bound, by the datetime object's id (the tuple holds the object,
#: so its id cannot be reused while the memo lives): see :func:`execute_many`.
TimeTexts = dict[int, tuple[Any, Any]]


def execute_many(
    conn: Connection,
    stmt: Insert | Update,
    rows: list[dict[str, Any]],
    times: TimeTexts | None = None,
) -> None:
    """``conn.execute(stmt, rows)``, cheaper for thousands of rows on SQLite.

    SQLAlchemy builds and processes every parameter set through its general machinery,
    which at a batch's 2,000 rows per table costs more than SQLite's own ``executemany``.
    On SQLite the statement is compiled once per set of keys (cached), each value goes
    through the column type's own bind processor (so stored values are exactly what
    SQLAlchemy would store: its DATETIME text, JSON text, booleans as integers), and the
    DBAPI cursor of the same connection (same transaction) runs them. Other dialects, and
    statements with parameters the compiled form does not take positionally, take the
    ordinary path.

    A datetime object is turned into text once per call, or once per ``times`` (a memo a
    caller passes to several calls): one result's observation time is its current row's
    ``observed_at`` and often ``since``, its inspection record's and its transition's time,
    and one receiving time stands in every ``received`` row."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    keys = tuple(rows[0])
    cache_key = (id(stmt), dialect.name, keys)
    entry = _COMPILED.get(cache_key)
    if entry is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = compiled.positiontup
        if not compiled.positional or not names or set(names) - set(keys):
            conn.execute(stmt, rows)
            return
        found: list[tuple[int, Callable[[Any], Any], bool]] = []
        for i, n in enumerate(names):
            f = bind_processor(compiled.binds[n].type, dialect)
            if f is not None:
                found.append((i, f, isinstance(f, DatetimeText)))
        first = names[0]
        getter: Callable[[dict[str, Any]], Any] = (
            itemgetter(*names) if len(names) > 1 else (lambda row: (row[first],))
        )
        entry = (compiled.string, getter, found)
        _COMPILED[cache_key] = entry
    sql, get, processors = entry
    params: list[Any]
    if not processors:
        params = [get(row) for row in rows]
    else:
        memo: TimeTexts = {} if times is None else times
        steps = [
            (i, _remembered(convert, memo) if is_time else convert)
            for i, convert, is_time in processors
        ]
        params = []
        append = params.append
        for values in map(get, rows):
            out = list(values)
            for i, convert in steps:
                out[i] = convert(out[i])
            append(out)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _remembered(convert: Processor, memo: TimeTexts) -> Processor:
    """``convert`` (a :class:`DatetimeText`), each datetime object's text made once."""

    def text_of(value: Any) -> Any:
        if value is None:
            return None
        known = memo.get(id(value))
        if known is None or known[0] is not value:
            known = memo[id(value)] = (value, convert(value))
        return known[1]

    return text_of


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
