"""Data subject requests and the decisions taken on them (`dsr`)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class DsrRequest(SQLModel, table=True):
    """A data-subject request: reference, dates and status (the subject only as a blind value)."""

    __tablename__ = "dsr_request"

    reference: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20)  # access | erasure | rectification | withdrawal
    subject_blind: str = Field(max_length=64, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="open", max_length=20, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handled_by: str = Field(default="", max_length=200)


class DsrDecision(SQLModel, table=True):
    """A DPO's choice for one request: the full transcript instead of the person's own turns.

    The reason is sealed (it may name people) in the standing `dsr_decision` epoch."""

    __tablename__ = "dsr_decision"

    id: str = Field(primary_key=True, max_length=40)
    reference: str = Field(foreign_key="dsr_request.reference", index=True, max_length=40)
    full_transcript: bool = False
    reason_item: str | None = Field(default=None, max_length=64)
    decided_by: str = Field(default="", max_length=200)
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
