"""Tables. Current state, transitions, incidents with their timelines, monthly inspection
records; raw samples are not kept (metric history belongs to Prometheus)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite needs INTEGER for rowid aliasing


def _latest_result() -> list[Column[Any]]:
    """The columns holding one result as last seen (current state and inspection record)."""
    return [
        Column("check", String(64), nullable=False),
        Column("item", String(256), nullable=False),
        Column("status", Integer, nullable=False),
        Column("value", Text),
        Column("unit", String(16), nullable=False),
        Column("summary", Text, nullable=False),
        Column("observed_at", DateTime(timezone=True), nullable=False),
    ]


#: Every msg_id ever accepted (pruned after the redelivery horizon): the deduplication key.
received = Table(
    "received",
    metadata,
    Column("msg_id", String(64), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
)

agents = Table(
    "agents",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("agent", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("state_since", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("version", String(32), nullable=False, server_default=""),
)

targets = Table(
    "targets",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("agent", String(64), nullable=False),
    Column("class", String(64), nullable=False),
    Column("facts", JSON, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

current = Table(
    "current",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("check_key", String(330), primary_key=True),
    *_latest_result(),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("ok_streak", Integer, nullable=False),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("check_key", String(330), nullable=False),
    Column("from_status", Integer),
    Column("to_status", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_transitions_target", "site", "target", "at"),
)

#: One row per (month, target, check): the inspection record (巡检记录表) built as results arrive.
inspection = Table(
    "inspection",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("check_key", String(330), primary_key=True),
    *_latest_result(),
    Column("worst", Integer, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("failed_samples", Integer, nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("number", String(32), unique=True),
    Column("site", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("check_key", String(330), nullable=False),
    Column("check", String(64), nullable=False),
    Column("item", String(256), nullable=False),
    Column("level", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("occurrences", Integer, nullable=False),
    Index("ix_incidents_site_opened", "site", "opened_at"),
    # The database itself guarantees one open incident per (target, check), also when
    # several collectors share it.
    Index(
        "ux_incidents_open",
        "site",
        "target",
        "check_key",
        unique=True,
        sqlite_where=text("state = 'open'"),
        postgresql_where=text("state = 'open'"),
    ),
)

#: Append-only timeline; each entry's hash covers the previous one (tamper evidence).
incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", ForeignKey("incidents.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("author", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Gaps agents reported (results their outbox had to drop) and other data holes.
gaps = Table(
    "gaps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("agent", String(64), nullable=False),
    Column("dropped", Integer, nullable=False),
    Column("first_observed", DateTime(timezone=True)),
    Column("last_observed", DateTime(timezone=True)),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
