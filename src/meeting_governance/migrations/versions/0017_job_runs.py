"""job_run: each scheduled job's last success and failure, for /healthz and the metrics

Revision ID: 0017
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import meeting_governance.dbtypes

revision: str = "0017"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_run",
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("last_started_at", meeting_governance.dbtypes.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("last_success_at", meeting_governance.dbtypes.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("last_failure_at", meeting_governance.dbtypes.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("last_cause", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("job"),
    )


def downgrade() -> None:
    op.drop_table("job_run")
