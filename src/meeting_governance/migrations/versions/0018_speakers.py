"""speaker links (a label named as a person, with its evidence) and DSR decisions

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import meeting_governance.dbtypes

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = meeting_governance.dbtypes.UTCDateTime


def _str(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "speaker_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", _str(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", _str(40), nullable=False),
        sa.Column("person_blind", _str(64), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False, server_default=""),
        sa.Column("method", _str(16), nullable=False),
        sa.Column("evidence", _str(300), nullable=False),
        sa.Column("assigned_by", _str(200), nullable=True),
        sa.Column("assigned_at", _DT(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transcript_id"], ["transcript.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transcript_id", "label"),
    )
    with op.batch_alter_table("speaker_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_speaker_link_transcript_id"), ["transcript_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_speaker_link_person_blind"), ["person_blind"],
                              unique=False)
    op.create_table(
        "dsr_decision",
        sa.Column("id", _str(40), nullable=False),
        sa.Column("reference", _str(40), nullable=False),
        sa.Column("full_transcript", sa.Boolean(), nullable=False),
        sa.Column("reason_item", _str(64), nullable=True),
        sa.Column("decided_by", _str(200), nullable=False),
        sa.Column("decided_at", _DT(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["dsr_request.reference"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dsr_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dsr_decision_reference"), ["reference"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dsr_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dsr_decision_reference"))
    op.drop_table("dsr_decision")
    with op.batch_alter_table("speaker_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_speaker_link_person_blind"))
        batch_op.drop_index(batch_op.f("ix_speaker_link_transcript_id"))
    op.drop_table("speaker_link")
