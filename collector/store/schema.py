"""Tables. Current state, transitions, incidents with their timelines, monthly inspection
records; raw samples are not kept (metric history belongs to Prometheus)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
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
    #: Seconds between the target's reachability results: how late is "no data".
    Column("cadence", Float),
    Column("stale", Boolean, nullable=False, server_default=false()),
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
    #: Device class and vendor at opening, for classifying and searching (point 9).
    Column("device_class", String(64), nullable=False, server_default=""),
    Column("vendor", String(64), nullable=False, server_default=""),
    Column("level", Integer, nullable=False),
    #: open → resolved → closed; ``merged`` = folded into a parent device's incident.
    Column("state", String(16), nullable=False),
    #: auto (a check), agent (last will), stale (no data), manual (a call, opened by hand).
    Column("source", String(16), nullable=False, server_default="auto"),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("tier", Integer, nullable=False, server_default="1"),
    Column("flapping", Boolean, nullable=False, server_default=false()),
    Column("assignee", String(64), nullable=False, server_default=""),
    Column("responded_at", DateTime(timezone=True)),
    Column("onsite_at", DateTime(timezone=True)),
    Column("restored_at", DateTime(timezone=True)),
    #: SLA pauses (waiting on the customer, maintenance): [[start, end|null, reason], …].
    Column("pauses", JSON, nullable=False),
    #: Deadlines already escalated as breached, so each is raised once.
    Column("breaches", JSON, nullable=False),
    Column("merged_into", ForeignKey("incidents.id")),
    Column("impact_count", Integer, nullable=False, server_default="0"),
    Column("caller", JSON, nullable=False),
    Column("satisfaction", Integer),
    Column("satisfaction_comment", Text, nullable=False, server_default=""),
    Column("analysis", JSON),
    Column("analysis_due", DateTime(timezone=True)),
    Index("ix_incidents_site_opened", "site", "opened_at"),
    #: The incident list without a site filter, newest first (the board's default view).
    Index("ix_incidents_opened", "opened_at", "id"),
    Index("ix_incidents_state", "state"),
    #: Searches by level, and by vendor and device class, over a time range (migration
    #: 0006): the filter columns first, then the list's order, so no range is scanned.
    Index("ix_incidents_level_opened", "level", "opened_at", "id"),
    Index("ix_incidents_vendor_class_opened", "vendor", "device_class", "opened_at", "id"),
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

#: Children affected by a parent's outage (cameras behind a switch that is down).
incident_impacts = Table(
    "incident_impacts",
    metadata,
    Column("incident_id", ForeignKey("incidents.id"), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("check_key", String(330), primary_key=True),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("cleared_at", DateTime(timezone=True)),
)

#: One-off maintenance windows entered by engineers (recurring ones live in the config).
maintenance = Table(
    "maintenance",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("target", String(64), nullable=False, server_default=""),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("author", String(64), nullable=False),
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
    #: The agent's id for the record, so a redelivered batch does not count a gap twice.
    Column("gap_id", String(64)),
    Index("ux_gaps_agent_gap", "site", "agent", "gap_id", unique=True),
)

#: Reports are drafts until an engineer approves them. One row per version of a report
#: (kind, site, period, language); an approved version stores the hash of the data it was
#: approved with, so a later change to the underlying records cannot pass silently.
report_reviews = Table(
    "report_reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("period", String(32), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("version", Integer, nullable=False),
    #: draft → approved; a change after approval starts a new draft version.
    Column("state", String(16), nullable=False),
    #: {"device:check": "text"}: the engineer's remarks, printed in the remark column.
    Column("remarks", JSON, nullable=False),
    Column("reviewer", String(64), nullable=False, server_default=""),
    Column("approved_at", DateTime(timezone=True)),
    Column("content_hash", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_report_reviews_version", "kind", "site", "period", "lang", "version", unique=True),
)

#: Where each device stood, one row per location it was seen at, from when (``since``). The
#: inspection record keeps serials and firmware per month as check values, but a location is
#: an identity fact that only the current ``targets`` row holds; this history lets the monthly
#: report name a device that was moved, as it names a replaced serial.
target_locations = Table(
    "target_locations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("location", Text, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Index("ix_target_locations_target", "site", "target", "since"),
)
