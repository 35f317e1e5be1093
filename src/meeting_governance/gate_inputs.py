"""The gate's inputs, gathered: who was at a recording's meeting (Graph, then the directory)
and what the opt-out registry says about them.

`gate.decide` is the pure decision; this module reads what it decides on. It runs three times
per recording: before any media is requested, again just before transcription (participants
read again: an attendance report revised or an opt-out registered meanwhile wins), and a last
time inside the transaction that stores the transcript (`last_check`, after waiting on the
registry version), so an opt-out registered at any moment before the store wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from meeting_governance import people
from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError
from meeting_governance.gate import Decision, decide
from meeting_governance.graph import GraphClient, MeetingInfo, resolve_participants
from meeting_governance.graph.participants import ATTENDANCE_GAPS
from meeting_governance.identity import Participant
from meeting_governance.models import Recording, RecordingParticipant
from meeting_governance.optout_identities import lock_registry
from meeting_governance.optouts import MeetingRef, matching, matching_rows


def deadline(app: AppContext, rec: Recording) -> datetime:
    """Until when a recording may wait for its participants to be known."""
    anchor = rec.meeting_end or rec.recorded_at or rec.first_seen_at
    return anchor + app.settings.participants_deadline


@dataclass(frozen=True)
class Attendance:
    """Who was at this recording's meeting, as far as Graph and the directory could tell."""

    info: MeetingInfo | None
    people: people.ResolvedParticipants | None
    lookup_failed: str | None

    @property
    def participants(self) -> Sequence[Participant]:
        if self.people is not None:
            return self.people.participants
        return self.info.participants if self.info else ()

    @property
    def blinds(self) -> frozenset[str]:
        return self.people.blinds if self.people is not None else frozenset()

    def meeting_ref(self, rec: Recording) -> MeetingRef:
        info = self.info
        assert info is not None
        start = info.attendance_start or info.start or rec.meeting_start
        end = info.attendance_end or info.end or rec.meeting_end
        return MeetingRef(meeting_id=rec.meeting_id, join_url=info.join_url, start=start,
                          end=end, join_meeting_id=info.join_meeting_id)


def who_was_there(app: AppContext, graph: GraphClient, organizer_id: str, meeting_id: str,
                  window: tuple[datetime | None, datetime | None]) -> Attendance:
    """Read the meeting and this recording's attendance from Graph, then every identifier of
    each participant from the directory (cache first). Errors become `lookup_failed`."""
    try:
        info = resolve_participants(graph, organizer_id, meeting_id, window=window)
    except GraphError as exc:
        return Attendance(None, None, "participants could not be read from Graph "
                                      f"({exc.code or exc.status or 'error'})")
    resolved = people.resolve_participants(app, graph, info.participants)
    return Attendance(info, resolved, resolved.failure)


def gate(app: AppContext, session: Session, rec: Recording, seen: Attendance) -> Decision:
    """Gather the gate's inputs from the registry. An opt-out of recording or of transcription
    both stop us: we only ever fetch media in order to transcribe it."""
    info = seen.info
    participants = seen.participants
    matched: set[str] = set()
    if info is not None:
        ref = seen.meeting_ref(rec)
        for purpose in ("recording", "transcription"):
            matched.update(o.id for o in matching(app, session, participants, ref,
                                                  purpose=purpose, blinds=seen.blinds))
    gate = app.settings.gate
    settles_at = (info.attendance_end + timedelta(minutes=gate.attendance_settle_minutes)
                  if info is not None and info.attendance_end else None)
    detail = next((g for g in info.gaps if g in ATTENDANCE_GAPS), None) if info else None
    return decide(
        participants=participants,
        attendance_known=info is not None and info.attendance_known,
        attendance_detail=detail,
        attendance_settles_at=settles_at,
        matched_optout_ids=sorted(matched),
        allow_anonymous=gate.allow_anonymous,
        allow_rooms=gate.allow_rooms,
        now=app.clock.now(),
        deadline=deadline(app, rec),
        lookup_failed=seen.lookup_failed,
    )


def remember_participants(session: Session, recording_id: int, blinds: frozenset[str]) -> None:
    """Every identifier of every participant, as blind values (access, erasure, holds)."""
    for blind in sorted(blinds):
        if session.exec(select(RecordingParticipant.id).where(
                col(RecordingParticipant.recording_id) == recording_id,
                col(RecordingParticipant.blind) == blind)).first() is None:
            session.add(RecordingParticipant(recording_id=recording_id, blind=blind))


def last_check(app: AppContext, session: Session, rec: Recording, seen: Attendance) -> list[str]:
    """The registry checked inside the store's transaction, after waiting on its version: ids
    of the opt-outs that now cover the meeting (nothing is decrypted)."""
    lock_registry(session)
    ref = seen.meeting_ref(rec)
    found: set[str] = set()
    for purpose in ("recording", "transcription"):
        found.update(r.id for r in matching_rows(app, session, seen.participants, ref,
                                                 purpose=purpose, blinds=seen.blinds))
    return sorted(found)


__all__ = ["Attendance", "deadline", "gate", "last_check", "remember_participants",
           "who_was_there"]
