"""repair transitions whose from_status repeats their to_status

Collectors from 2026-11 until this revision stored every transition that had a previous
status with ``from_status`` equal to ``to_status`` (the check's row was updated before the
transition was built). A transition is a change, so such a row is always wrong, and the
right value is still in the table: the ``to_status`` of the same check's transition just
before it. Rows whose predecessor is gone keep what they have.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Same SQL on SQLite and PostgreSQL; the (site, target, at) index finds the predecessor.
REPAIR = """
UPDATE transitions SET from_status = COALESCE((
    SELECT p.to_status FROM transitions AS p
    WHERE p.site = transitions.site AND p.target = transitions.target
      AND p.check_key = transitions.check_key
      AND (p.at < transitions.at OR (p.at = transitions.at AND p.id < transitions.id))
    ORDER BY p.at DESC, p.id DESC
    LIMIT 1
), from_status)
WHERE from_status IS NOT NULL AND from_status = to_status
"""


def upgrade() -> None:
    op.execute(REPAIR)


def downgrade() -> None:
    """Nothing to undo: the repaired values are the ones that should have been stored."""
