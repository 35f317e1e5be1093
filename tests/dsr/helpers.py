"""Builders for the data-subject-rights tests: real sealed transcripts, holds and opt-outs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from meeting_governance import formats
from meeting_governance.context import AppContext
from meeting_governance.diarization.turns import SpeakerTurn
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.models import Recording, RecordingParticipant, Transcript
from meeting_governance.store import NewTranscript, store_transcript
from meeting_governance.transcribe import Segment, TranscriptResult

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALICE = "alice.liddell@example.org"
BOB = "bob.builder@example.org"
CAROL_OID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def person(email: str | None = None, object_id: str | None = None,
           name: str = "Someone") -> Participant:
    return Participant.make(kind=ParticipantKind.USER, email=email, object_id=object_id,
                            display_name=name)


def content(*lines: str) -> str:
    segments = tuple(Segment(start=float(i), end=i + 0.9, text=t) for i, t in enumerate(lines))
    return formats.to_json(TranscriptResult(segments=segments, language="en",
                                            language_probability=0.99,
                                            duration=float(len(lines)), model="tiny.en"))


def make_transcript(app: AppContext, *, words: Sequence[str], people: Sequence[Participant],
                    meeting_id: str, subject: str = "Weekly sync", duration_s: float = 1800.0,
                    with_recording: bool = True, start: datetime = T0) -> Transcript:
    """One stored transcript (sealed for real), with its recording and participant index."""
    with app.session() as session:
        recording_id = None
        if with_recording:
            rec = Recording(graph_recording_id=f"rec-{meeting_id}", meeting_id=meeting_id,
                            organizer_id="00000000-0000-0000-0000-0000000000aa",
                            state="stored", meeting_start=start,
                            meeting_end=start + timedelta(seconds=duration_s))
            session.add(rec)
            session.flush()
            assert rec.id is not None
            recording_id = rec.id
            for p in people:
                for blind in app.vault.blind_identities(email=p.email, object_id=p.object_id):
                    session.add(RecordingParticipant(recording_id=recording_id, blind=blind))
        return store_transcript(app, session, NewTranscript(
            recording_id=recording_id, meeting_id=meeting_id,
            organizer_id="00000000-0000-0000-0000-0000000000aa", meeting_start=start,
            meeting_end=start + timedelta(seconds=duration_s), subject=subject,
            participants=list(people), content_json=content(*words), language="en",
            duration_s=duration_s, model="tiny.en", retention_policy="standard",
            retain_until=start + timedelta(days=90)))


ALICE_WORDS = ("alice opens the quarterly review", "alice closes with the actions")
BOB_WORDS = "bob reports the bravo numbers"
UNNAMED_WORDS = "someone asks about parking"
TIMELINE_TEXT = "teams heard marmalade zeppelin"


def labelled_result() -> TranscriptResult:
    segments = (Segment(0.0, 4.0, ALICE_WORDS[0], "Speaker 1", "unnamed"),
                Segment(4.0, 10.0, BOB_WORDS, "Speaker 2", "unnamed"),
                Segment(10.0, 14.0, ALICE_WORDS[1], "Speaker 1", "unnamed"),
                Segment(14.0, 18.0, UNNAMED_WORDS, "Speaker 3", "unnamed"))
    turns = tuple(SpeakerTurn(s.start, s.end, s.speaker or "") for s in segments)
    return TranscriptResult(segments=segments, language="en", language_probability=0.99,
                            duration=18.0, model="tiny.en", turns=turns)


# Alice speaks first and third, Bob second, a third voice (nobody named) last.
PEOPLE = [person(ALICE, name="Alice Liddell"), person(BOB, name="Bob Builder"),
          person(object_id=CAROL_OID, name="Carol Danvers")]


def labelled_transcript(app: AppContext, meeting_id: str = "m-1") -> Transcript:
    with app.session() as session:
        row = store_transcript(app, session, NewTranscript(
            recording_id=None, meeting_id=meeting_id,
            organizer_id="00000000-0000-0000-0000-0000000000aa", meeting_start=T0,
            meeting_end=T0 + timedelta(minutes=30), subject="Quarterly review",
            participants=PEOPLE, content_json=formats.to_json(labelled_result()), language="en",
            duration_s=18.0, model="tiny.en", retention_policy="standard",
            retain_until=T0 + timedelta(days=90)))
        session.expunge(row)
        return row
