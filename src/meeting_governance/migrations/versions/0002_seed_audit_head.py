"""seed the audit chain head

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                    sa.column("hash", sa.String))
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    op.execute("DELETE FROM audit_head WHERE id = 1")
