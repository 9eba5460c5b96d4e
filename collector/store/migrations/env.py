"""Alembic environment: always called with a live connection by :func:`upgrade`."""

from __future__ import annotations

from alembic import context

from collector.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
)
with context.begin_transaction():
    context.run_migrations()
