"""server-side web sessions and login throttling

Revision ID: 0016
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import meeting_governance.dbtypes

revision: str = "0016"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("display_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_web_session_user_id"), "web_session", ["user_id"], unique=False)
    op.create_index(op.f("ix_web_session_expires_at"), "web_session", ["expires_at"], unique=False)
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("attempt", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_attempt_key_at", "login_attempt", ["key", "at"], unique=False)
    op.create_index(op.f("ix_login_attempt_attempt"), "login_attempt", ["attempt"], unique=False)
    op.create_index(op.f("ix_login_attempt_at"), "login_attempt", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_attempt_at"), table_name="login_attempt")
    op.drop_index(op.f("ix_login_attempt_attempt"), table_name="login_attempt")
    op.drop_index("ix_login_attempt_key_at", table_name="login_attempt")
    op.drop_table("login_attempt")
    op.drop_index(op.f("ix_web_session_expires_at"), table_name="web_session")
    op.drop_index(op.f("ix_web_session_user_id"), table_name="web_session")
    op.drop_table("web_session")
