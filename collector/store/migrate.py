"""Bringing a database to the schema this version of fieldmon expects."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

HERE = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


#: Any constant: the PostgreSQL advisory lock that serialises collectors starting together.
MIGRATION_LOCK = 0x6669656C64  # "field"


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied, in one transaction.

    Several collectors may start at once on one PostgreSQL database; the first takes a lock
    and migrates, the others wait for it and then find nothing to do. (SQLite is the
    one-collector setup.)
    """
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
