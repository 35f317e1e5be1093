"""The hash-chained audit log and its signed checkpoints (`audit`, `checkpoints`)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the audit chain head (also written outside the database)."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    head_seq: int
    head_hash: str = Field(max_length=64)
    line: str  # the signed canonical JSON, exactly as written to the checkpoint file


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained. `details` is canonical JSON with ids and blind values only."""

    __tablename__ = "audit_entry"

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=80, index=True)
    target_type: str = Field(default="", max_length=40)
    target_id: str = Field(default="", max_length=200, index=True)
    details: str = Field(default="{}")
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """A single row holding the chain head: appenders lock it, so entries are never interleaved,
    and `audit verify` compares it with the last entry, so a deleted tail is detected too."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)
