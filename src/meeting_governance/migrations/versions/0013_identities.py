"""identities: opt-out identifiers, directory cache, hold identifiers, registry version,
delta-link fingerprints, recording window

Revision ID: 0013
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import meeting_governance.dbtypes

revision: str = "0013"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = meeting_governance.dbtypes.UTCDateTime


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "optout_identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("optout_id", _str(40), nullable=False),
        sa.Column("blind", _str(64), nullable=False),
        sa.Column("source", _str(12), nullable=False),
        sa.Column("resolved_at", _DT(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["optout_id"], ["optout.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("optout_id", "blind"),
    )
    with op.batch_alter_table("optout_identifier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_optout_identifier_blind"), ["blind"], unique=False)
        batch_op.create_index(batch_op.f("ix_optout_identifier_optout_id"), ["optout_id"],
                              unique=False)
    op.create_table(
        "identity_cache",
        sa.Column("key_blind", _str(64), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("resolved_at", _DT(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_blind"),
    )
    with op.batch_alter_table("identity_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_cache_resolved_at"), ["resolved_at"],
                              unique=False)
    op.create_table(
        "hold_identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hold_id", _str(40), nullable=False),
        sa.Column("blind", _str(64), nullable=False),
        sa.ForeignKeyConstraint(["hold_id"], ["legal_hold.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_id", "blind"),
    )
    with op.batch_alter_table("hold_identifier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hold_identifier_blind"), ["blind"], unique=False)
        batch_op.create_index(batch_op.f("ix_hold_identifier_hold_id"), ["hold_id"],
                              unique=False)
    op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _DT(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("optout", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolution", _str(20), nullable=False,
                                      server_default="pending"))
        batch_op.add_column(sa.Column("resolved_at", _DT(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_optout_resolved_at"), ["resolved_at"], unique=False)
    with op.batch_alter_table("delta_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", _str(40), nullable=True))
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording_end", _DT(timezone=True), nullable=True))

    # Existing data: every opt-out keeps matching what it was registered with; every person
    # hold keeps its person; the registry starts at version 0. Stored delta links get no
    # fingerprint, so the next poll restarts them (links built with an endDateTime froze).
    op.execute("INSERT INTO optout_identifier (optout_id, blind, source) "
               "SELECT id, email_blind, 'registered' FROM optout WHERE email_blind IS NOT NULL")
    op.execute("INSERT INTO optout_identifier (optout_id, blind, source) "
               "SELECT id, object_id_blind, 'registered' FROM optout "
               "WHERE object_id_blind IS NOT NULL AND (email_blind IS NULL "
               "OR object_id_blind <> email_blind)")
    op.execute("INSERT INTO hold_identifier (hold_id, blind) "
               "SELECT id, person_blind FROM legal_hold WHERE person_blind IS NOT NULL")
    op.execute("UPDATE recording SET recording_end = meeting_end")
    state = sa.table("registry_state", sa.column("id", sa.Integer),
                     sa.column("version", sa.Integer))
    op.bulk_insert(state, [{"id": 1, "version": 0}])


def downgrade() -> None:
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_column("recording_end")
    with op.batch_alter_table("delta_link", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("optout", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optout_resolved_at"))
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("resolution")
    op.drop_table("registry_state")
    op.drop_table("hold_identifier")
    op.drop_table("identity_cache")
    op.drop_table("optout_identifier")
