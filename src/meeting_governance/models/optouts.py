"""The opt-out registry, the identifiers it matches and the directory cache (`optouts`, `people`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class OptOut(SQLModel, table=True):
    """A person's "do not record / transcribe me". Revoked rows stay, for the history."""

    __tablename__ = "optout"

    id: str = Field(primary_key=True, max_length=40)
    email_blind: str | None = Field(default=None, max_length=64, index=True)
    object_id_blind: str | None = Field(default=None, max_length=64, index=True)
    name_blind: str | None = Field(default=None, max_length=64, index=True)  # for search only
    identity_item: str | None = Field(default=None, max_length=64)  # sealed {name, email, oid}
    scope: str = Field(default="all", max_length=10)  # all | meeting | range
    meeting_key: str | None = Field(default=None, max_length=64, index=True)  # blind of meeting
    valid_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    covers_recording: bool = True
    covers_transcription: bool = True
    note_item: str | None = Field(default=None, max_length=64)
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=200)
    revoke_reason_item: str | None = Field(default=None, max_length=64)
    # The directory's answer for the identity registered: pending (not asked yet), found,
    # not_found (matched by the registered identifier only), ambiguous (several accounts).
    resolution: str = Field(default="pending", max_length=20)
    resolved_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)


class OptOutIdentifier(SQLModel, table=True):
    """Every identifier an opt-out matches, as blind-index values: the one registered and those
    the directory resolved it to (object id, mail, UPN, aliases, other mails, a guest's own
    address). Rows are only ever added: a person losing an alias never loses their opt-out."""

    __tablename__ = "optout_identifier"
    __table_args__ = (UniqueConstraint("optout_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    optout_id: str = Field(foreign_key="optout.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)
    source: str = Field(default="registered", max_length=12)  # registered | directory
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IdentityCache(SQLModel, table=True):
    """The directory's answer for one looked-up identifier (object id or address, as a blind
    value): the blind values of every identifier of the account(s) it reaches. Refreshed when
    older than `directory.max_age_hours`; only answers that found someone are kept."""

    __tablename__ = "identity_cache"

    key_blind: str = Field(primary_key=True, max_length=64)
    identifiers: str = Field(sa_column=Column(Text, nullable=False))  # blind values, spaced
    resolved_at: datetime = Field(index=True, sa_type=UTCDateTime)


class RegistryState(SQLModel, table=True):
    """One row whose version every opt-out change bumps: storing a transcript reads it
    `FOR SHARE` (PostgreSQL), so a registration and a store never interleave."""

    __tablename__ = "registry_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
