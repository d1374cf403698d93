"""The initial schema: users, subscriptions, lessons, sessions, participants, results, replays.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out instead of importing inkstep.store.database.metadata: a migration must keep
# describing the schema as it was, whatever the code looks like later.
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    # No foreign keys to users: identities come from the identity provider, and the row is
    # only a cache of what the token said, written when the user is first seen.
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("plan", sa.Text, primary_key=True),
        sa.Column("valid_until", TS, nullable=True),
    )
    op.create_table(
        "lessons",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("required_plan", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("lesson_id", sa.Text, sa.ForeignKey("lessons.id"), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("step_id", sa.Text, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "session_id",
            sa.Text,
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False, server_default=sa.func.clock_timestamp()),
        sa.CheckConstraint("role IN ('teacher', 'student', 'viewer')", name="participants_role"),
        sa.CheckConstraint("state IN ('joined', 'left')", name="participants_state"),
    )
    op.create_index("participants_session_user", "participants", ["session_id", "user_id", "id"])
    op.create_table(
        "results",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "session_id",
            sa.Text,
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("step_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("accuracy", sa.Double, nullable=False),
        sa.Column("quality", sa.Double, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("session_id", "seq", name="results_session_seq"),
    )
    op.create_table(
        "replays",
        sa.Column(
            "session_id",
            sa.Text,
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("segments", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("replays", "results", "participants", "sessions", "lessons", "subscriptions"):
        op.drop_table(table)
    op.drop_table("users")
