"""Small builders shared by the retention tests: real transcripts through `store_transcript`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.models import Recording, RecordingParticipant, Transcript
from meeting_governance.store import NewTranscript, store_transcript

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALICE = "alice.liddell@example.org"
BOB_OID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def person(email: str | None = None, object_id: str | None = None) -> Participant:
    return Participant.make(kind=ParticipantKind.USER, email=email, object_id=object_id,
                            display_name="Someone")


def make_transcript(app: AppContext, *, words: str = "the quarterly numbers",
                    retain_until: datetime | None = T0, policy: str = "standard",
                    meeting_id: str = "meeting-1", participants: list[Participant] | None = None,
                    with_recording: bool = False, subject: str | None = "Board meeting",
                    organizer_id: str = "00000000-0000-0000-0000-0000000000aa") -> Transcript:
    """Store one transcript (sealed for real); optionally with its recording row."""
    people = participants if participants is not None else [person(ALICE)]
    with app.session() as session:
        recording_id = None
        if with_recording:
            rec = Recording(graph_recording_id=f"rec-{meeting_id}-{words[:8]}-{id(people)}",
                            meeting_id=meeting_id, organizer_id=organizer_id, state="stored")
            session.add(rec)
            session.flush()
            recording_id = rec.id
            rec.subject_item = app.vault.seal_text(
                session, f"{subject} rec", purpose="subject", epoch=app.vault.metadata_epoch(),
                owner=Owner("recording", str(rec.id), "subject"))
            for p in people:
                for blind in app.vault.blind_identities(email=p.email, object_id=p.object_id):
                    session.add(RecordingParticipant(recording_id=rec.id, blind=blind))
        content = json.dumps({"segments": [{"start": 0, "end": 1, "text": words}]})
        row = store_transcript(app, session, NewTranscript(
            recording_id=recording_id, meeting_id=meeting_id, organizer_id=organizer_id,
            meeting_start=T0 - timedelta(days=91), meeting_end=T0 - timedelta(days=90),
            subject=subject, participants=people, content_json=content, language="en",
            duration_s=60.0, model="tiny.en", retention_policy=policy, retain_until=retain_until))
        return row
