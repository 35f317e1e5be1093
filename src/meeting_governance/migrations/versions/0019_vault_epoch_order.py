"""vault_item: one index on (epoch_id, id), so closing an epoch reads it in order, batch by batch

Closing an epoch re-wraps its items 500 at a time in id order. With an index on `epoch_id`
alone, every batch read every remaining item of the epoch and sorted them: quadratic in the
epoch's size (bench/README.md, epochs: 13 % of the worst-case erasure at 23 000 items an
epoch, more for larger epochs). The composite index serves the same lookups by `epoch_id` and
delivers a batch without a sort; it replaces the old one. On PostgreSQL the index is built in
the upgrade's transaction, which holds writes to `vault_item` for as long as the build takes (the
upgrade runs when the first command after an update opens the database).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_vault_item_epoch_id_id", "vault_item", ["epoch_id", "id"])
    op.drop_index("ix_vault_item_epoch_id", table_name="vault_item")


def downgrade() -> None:
    op.create_index("ix_vault_item_epoch_id", "vault_item", ["epoch_id"])
    op.drop_index("ix_vault_item_epoch_id_id", table_name="vault_item")
