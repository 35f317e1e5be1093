"""Storing: the last check and the commit. In one transaction, only for the lease holder and
only from `transcribing`: wait on the opt-out registry's version and check every participant
once more (`gate_inputs.last_check`: an opt-out registered at any moment before this wins),
then seal the transcript and its participants (`store`), name the speakers from the evidence
recorded with them (`speakers`), extend holds that already cover the person or the meeting,
and move the recording to `stored`.

May import the store, the vault's callers (`store`, `speakers`, `holds`), `retention`, the gate
and `claiming`; never Graph or the model (`transcribe`): the transcript arrives as a
`TranscriptResult` (`segments`, importable without numpy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel import col, select

from meeting_governance import formats, holds, retention, speakers
from meeting_governance.context import AppContext
from meeting_governance.gate import decide
from meeting_governance.gate_inputs import Attendance, last_check
from meeting_governance.models import Transcript
from meeting_governance.pipeline.claiming import Outcome, _load
from meeting_governance.segments import TranscriptResult
from meeting_governance.states import State, transition
from meeting_governance.store import NewTranscript, participant_dicts, store_transcript

log = logging.getLogger(__package__)  # the package's one logger (see discovery)


def _store(app: AppContext, recording_id: int, worker: str, seen: Attendance,
           result: TranscriptResult, timelines: Sequence[str] | None = None) -> Outcome:
    """Check once more and store, in one transaction: `stored`, `blocked` (an opt-out
    registered meanwhile wins) or `lost-lease` (another worker holds the recording now)."""
    info = seen.info
    assert info is not None
    with app.session() as session:
        rec = _load(session, recording_id, worker)
        if rec is None or rec.state != State.TRANSCRIBING.value:
            return Outcome(recording_id, "lost-lease", "another worker took this recording over")
        opted_out = last_check(app, session, rec, seen)
        if opted_out:
            decision = decide(participants=seen.participants, attendance_known=True,
                              matched_optout_ids=opted_out, allow_anonymous=False,
                              now=app.clock.now(), deadline=app.clock.now())
            transition(app, session, rec, State.BLOCKED, reason=decision.reason,
                       actor=f"worker:{worker}", optouts=",".join(decision.optout_ids),
                       at="store")
            log.info("opt-out registered during transcription: not stored",
                     extra={"recording": recording_id})
            return Outcome(recording_id, rec.state, rec.reason)
        if session.exec(select(Transcript.id).where(
                col(Transcript.recording_id) == recording_id)).first() is not None:
            transition(app, session, rec, State.STORED, reason="already stored",
                       actor=f"worker:{worker}")
            return Outcome(recording_id, rec.state, rec.reason)
        ref = seen.meeting_ref(rec)
        meeting_end = ref.end or rec.recorded_at or app.clock.now()
        assignment = retention.assign(app.settings.retention, organizer_id=rec.organizer_id,
                                      groups=(), meeting_end=meeting_end)
        row = store_transcript(app, session, NewTranscript(
            recording_id=recording_id, meeting_id=rec.meeting_id, organizer_id=rec.organizer_id,
            meeting_start=ref.start, meeting_end=meeting_end,
            subject=info.subject, participants=seen.participants,
            identifier_blinds=seen.blinds,
            content_json=formats.to_json(result), language=result.language,
            duration_s=result.duration, model=result.model,
            retention_policy=assignment.policy, retain_until=assignment.retain_until))
        # Speaker labels named only from the evidence recorded with them (speakers.py).
        namings = speakers.meeting_namings(participant_dicts(seen.participants),
                                           info.presence, rec.recorded_at, result.turns,
                                           timelines)
        if namings:
            speakers.record(app, session, row, namings,
                            people=participant_dicts(seen.participants),
                            actor=f"worker:{worker}")
        # A hold on a person or a meeting set before this transcript existed covers it too.
        holds.refresh_flags(session, [row.id])
        transition(app, session, rec, State.STORED, reason="transcribed and stored",
                   actor=f"worker:{worker}", transcript=row.id,
                   policy=assignment.policy)
        log.info("transcript stored", extra={"recording": recording_id, "transcript": row.id,
                                             "audio_seconds": round(result.duration, 1),
                                             "segments": len(result.segments)})
        return Outcome(recording_id, rec.state, rec.reason, row.id)

