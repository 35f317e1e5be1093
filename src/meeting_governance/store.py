"""Storing a transcript: every personal field sealed, participants as blind-index values.

Used by the pipeline (and by tests and benchmarks that need stored transcripts); retention
assigns `retention_policy` and `retain_until` through `retention.assign`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.errors import NotFoundError
from meeting_governance.identity import Participant
from meeting_governance.ids import resolve_id
from meeting_governance.models import Transcript, TranscriptParticipant


@dataclass(frozen=True, kw_only=True)
class NewTranscript:
    """What the pipeline knows once a recording is transcribed (plaintext, in memory only)."""

    recording_id: int | None
    meeting_id: str
    organizer_id: str
    meeting_start: datetime | None
    meeting_end: datetime | None
    subject: str | None
    participants: Sequence[Participant]
    content_json: str  # formats.to_json(result): segments, language, duration, model
    language: str
    duration_s: float
    model: str
    retention_policy: str
    retain_until: datetime | None
    # Every identifier of every participant (the directory's, as blind values): the blind
    # index then finds this transcript under any address of a person, or their object id.
    identifier_blinds: frozenset[str] = frozenset()


def participant_blinds(app: AppContext, participants: Sequence[Participant]) -> set[str]:
    blinds: set[str] = set()
    for person in participants:
        blinds.update(app.vault.blind_identities(email=person.email, object_id=person.object_id))
    return blinds


def store_transcript(app: AppContext, session: Session, new: NewTranscript, *,
                     transcript_id: str | None = None) -> Transcript:
    """Seal content, subject and participant list; add the row and its blind index to `session`."""
    tid = transcript_id or uuid.uuid4().hex
    vault = app.vault
    # All three under the key of the epoch in which the transcript falls due.
    epoch = vault.retention_epoch(new.retain_until)
    content_item = vault.seal(session, new.content_json.encode("utf-8"), purpose="transcript",
                              owner=content_owner(tid), epoch=epoch)
    people = participant_dicts(new.participants)
    participants_item = vault.seal_json(session, people, purpose="participants",
                                        owner=Owner("transcript", tid, "participants"),
                                        epoch=epoch)
    subject_item = (vault.seal_text(session, new.subject, purpose="subject",
                                    owner=Owner("transcript", tid, "subject"), epoch=epoch)
                    if new.subject else None)
    now = app.clock.now()
    row = Transcript(
        id=tid, recording_id=new.recording_id, meeting_id=new.meeting_id,
        organizer_id=new.organizer_id, meeting_start=new.meeting_start,
        meeting_end=new.meeting_end, duration_s=new.duration_s, language=new.language,
        model=new.model, content_item=content_item, participants_item=participants_item,
        subject_item=subject_item, retention_policy=new.retention_policy,
        retain_until=new.retain_until, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    for blind in sorted(participant_blinds(app, new.participants) | new.identifier_blinds):
        session.add(TranscriptParticipant(transcript_id=tid, blind=blind))
    return row


def participant_dicts(participants: Sequence[Participant]) -> list[dict[str, Any]]:
    """The participant list as it is sealed with a transcript (and read back)."""
    return [{"kind": p.kind.value, "object_id": p.object_id, "email": p.email,
             "display_name": p.display_name, "role": p.role} for p in participants]


def content_owner(transcript_id: str) -> Owner:
    return Owner("transcript", transcript_id, "content")


def subject_owner(transcript_id: str) -> Owner:
    return Owner("transcript", transcript_id, "subject")


def get_transcript(session: Session, transcript_id: str) -> Transcript:
    """The transcript with this id or unique id prefix (`ids.resolve_id`)."""
    found = resolve_id(session, col(Transcript.id), transcript_id, kind="transcript",
                       listing="transcript list")
    row = session.get(Transcript, found)
    if row is None:
        raise NotFoundError(f"transcript {transcript_id} does not exist: "
                            "see `meeting-governance transcript list`")
    return row


def read_content(app: AppContext, session: Session, row: Transcript) -> dict[str, Any]:
    """Decrypt the segments JSON. Callers audit the access (who and why)."""
    if row.content_item is None:
        from meeting_governance.errors import ShreddedError

        raise ShreddedError(f"transcript {row.id} was purged; its contents are gone by design")
    data: dict[str, Any] = json.loads(app.vault.open(session, row.content_item,
                                                     owner=content_owner(row.id)))
    return data


def read_participants(app: AppContext, session: Session, row: Transcript) -> list[dict[str, Any]]:
    if row.participants_item is None:
        return []
    people: list[dict[str, Any]] = app.vault.open_json(
        session, row.participants_item, owner=Owner("transcript", row.id, "participants"))
    return people
