"""Recordings, their transcripts and who took part: the pipeline's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class Recording(SQLModel, table=True):
    """One Graph recording, idempotent on its Graph id, and where it stands in the pipeline."""

    __tablename__ = "recording"

    id: int | None = Field(default=None, primary_key=True)
    graph_recording_id: str = Field(max_length=1024, unique=True)
    meeting_id: str = Field(max_length=1024, index=True)
    organizer_id: str = Field(max_length=64, index=True)
    call_id: str | None = Field(default=None, max_length=200)
    recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The recording's own end (`callRecording.endDateTime`): with `recorded_at`, the window an
    # attendance report must overlap to count (a recurring meeting has one report per occurrence).
    recording_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subject_item: str | None = Field(default=None, max_length=64)  # vault_item id
    state: str = Field(default="discovered", max_length=20, index=True)
    reason: str = Field(default="", max_length=500)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    media_sha256: str | None = Field(default=None, max_length=64)
    media_bytes: int | None = None


class RecordingParticipant(SQLModel, table=True):
    """Blind-index values of a recording's participants (no address in clear)."""

    __tablename__ = "recording_participant"
    __table_args__ = (UniqueConstraint("recording_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    blind: str = Field(max_length=64, index=True)


class Transcript(SQLModel, table=True):
    """A stored transcript's metadata; after purge the same row is the tombstone."""

    __tablename__ = "transcript"
    # The purge reads "unpurged, due by date" in retain_until order straight off this index,
    # without rescanning the ever-growing tombstones (purged_at set) or sorting.
    __table_args__ = (Index("ix_transcript_due", "purged_at", "retain_until"),)

    id: str = Field(primary_key=True, max_length=40)
    recording_id: int | None = Field(default=None, foreign_key="recording.id", index=True)
    meeting_id: str = Field(default="", max_length=1024, index=True)
    organizer_id: str = Field(default="", max_length=64, index=True)
    meeting_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_s: float = 0.0
    language: str = Field(default="", max_length=16)
    model: str = Field(default="", max_length=200)
    version: int = 1
    content_item: str | None = Field(default=None, max_length=64)       # segments JSON
    participants_item: str | None = Field(default=None, max_length=64)  # names + addresses JSON
    subject_item: str | None = Field(default=None, max_length=64)
    retention_policy: str = Field(default="", max_length=100)
    retain_until: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    legal_hold: bool = Field(default=False, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    purged_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    purge_reason: str = Field(default="", max_length=40)


class TranscriptParticipant(SQLModel, table=True):
    """Blind-index values of the people in a transcript's meeting, for access and erasure."""

    __tablename__ = "transcript_participant"
    __table_args__ = (UniqueConstraint("transcript_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)


class SpeakerLink(SQLModel, table=True):
    """A speaker label of one transcript version named as a person, with the evidence.

    No name or address: the person is the blind value of their object id (or address when that
    is all that is known), plus every other identifier's blind value, so a data-subject request
    under any of them finds the link. The name is read at display time from the transcript's
    sealed participant list. `method` is how the label was named (`attendance`,
    `teams_timeline`, `dpo`); `evidence` says why, in times and counts only.
    """

    __tablename__ = "speaker_link"
    __table_args__ = (UniqueConstraint("transcript_id", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True, max_length=40)
    version: int = 1  # the transcript version the label was named on
    label: str = Field(max_length=40)  # "Speaker 2", as diarization gave it
    person_blind: str = Field(max_length=64, index=True)
    identifiers: str = Field(default="", sa_column=Column(Text, nullable=False,
                                                           server_default=""))
    method: str = Field(max_length=16)  # attendance | teams_timeline | dpo
    evidence: str = Field(default="", max_length=300)  # times and counts, never a name
    assigned_by: str | None = Field(default=None, max_length=200)  # the DPO, for `dpo`
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeltaLink(SQLModel, table=True):
    """The last `@odata.deltaLink` per organiser, so each poll asks only for what is new."""

    __tablename__ = "delta_link"

    organizer_id: str = Field(primary_key=True, max_length=64)
    link: str = Field(max_length=8000)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # What built the link (`recordings.link_fingerprint`); another value means another
    # configuration built it, and it is not replayed. NULL: stored before this was recorded.
    fingerprint: str | None = Field(default=None, max_length=40)
