"""Legal holds and the identifiers they cover (`holds`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class Hold(SQLModel, table=True):
    """A legal hold on a transcript, a person (blind) or a meeting."""

    __tablename__ = "legal_hold"

    id: str = Field(primary_key=True, max_length=40)
    transcript_id: str | None = Field(default=None, max_length=40, index=True)
    person_blind: str | None = Field(default=None, max_length=64, index=True)
    meeting_id: str | None = Field(default=None, max_length=1024, index=True)
    reason_item: str | None = Field(default=None, max_length=64)
    set_by: str = Field(default="", max_length=200)
    set_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    released_by: str | None = Field(default=None, max_length=200)
    release_reason_item: str | None = Field(default=None, max_length=64)


class HoldIdentifier(SQLModel, table=True):
    """Every identifier of the person a person hold names (blind values), so the hold covers
    transcripts that know them by another address or only by object id."""

    __tablename__ = "hold_identifier"
    __table_args__ = (UniqueConstraint("hold_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    hold_id: str = Field(foreign_key="legal_hold.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)
