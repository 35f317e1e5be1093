"""epoch keys, owner-bound vault items, audit checkpoints

Revision ID: 0014
Revises: 0013

Adds `key_epoch` (one row per epoch key; the key itself is in the keyring), the owner and epoch
columns of `vault_item`, and `audit_checkpoint`. Existing vault items keep their KEK version;
their owners are filled in here from the rows that reference them, and `meeting-governance init`
(or `keys migrate`) then re-seals them under epoch keys, which needs the keyring.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import meeting_governance.dbtypes

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (owner table, its id column, the column naming the vault item, the field name)
OWNERS = [
    ("transcript", "id", "content_item", "content"),
    ("transcript", "id", "participants_item", "participants"),
    ("transcript", "id", "subject_item", "subject"),
    ("recording", "id", "subject_item", "subject"),
    ("optout", "id", "identity_item", "identity"),
    ("optout", "id", "note_item", "note"),
    ("optout", "id", "revoke_reason_item", "revoke_reason"),
    ("legal_hold", "id", "reason_item", "reason"),
    ("legal_hold", "id", "release_reason_item", "release_reason"),
]


def upgrade() -> None:
    op.create_table(
        "key_epoch",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("period_end", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("destroyed_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_key_epoch_label", "key_epoch", ["label"])
    op.create_index("ix_key_epoch_state", "key_epoch", ["state"])
    # One active key per epoch label: two workers sealing into a new epoch at once agree on it.
    op.create_index("ux_key_epoch_active_label", "key_epoch", ["label"], unique=True,
                    sqlite_where=sa.text("state = 'active'"),
                    postgresql_where=sa.text("state = 'active'"))
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", meeting_governance.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("line", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vault_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch_id", sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
        batch_op.add_column(sa.Column("owner_table", sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
        batch_op.add_column(sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column("field", sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
        batch_op.create_index("ix_vault_item_epoch_id", ["epoch_id"], unique=False)
    # Existing items: record who owns them, from the rows that point at them. A recording's
    # subject and its transcript's subject are separate items, so no item has two owners.
    for table, id_column, item_column, field in OWNERS:
        op.execute(sa.text(
            f"UPDATE vault_item SET owner_table = :table, field = :field, "  # noqa: S608
            f"owner_id = (SELECT CAST(o.{id_column} AS VARCHAR(64)) FROM {table} o "
            f"WHERE o.{item_column} = vault_item.id) "
            f"WHERE owner_table IS NULL AND id IN (SELECT {item_column} FROM {table} "
            f"WHERE {item_column} IS NOT NULL)").bindparams(table=table, field=field))


def downgrade() -> None:
    with op.batch_alter_table("vault_item", schema=None) as batch_op:
        batch_op.drop_index("ix_vault_item_epoch_id")
        batch_op.drop_column("field")
        batch_op.drop_column("owner_id")
        batch_op.drop_column("owner_table")
        batch_op.drop_column("epoch_id")
    op.drop_table("audit_checkpoint")
    op.drop_index("ux_key_epoch_active_label", table_name="key_epoch")
    op.drop_index("ix_key_epoch_state", table_name="key_epoch")
    op.drop_index("ix_key_epoch_label", table_name="key_epoch")
    op.drop_table("key_epoch")
