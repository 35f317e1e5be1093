"""Retention for recordings that never became a transcript.

A blocked recording, one that failed for good (no automatic retry left) and one still waiting
for its participants past the deadline keep two personal things: the sealed meeting subject
and the participant list (blind-index values). They are kept `retention.metadata_days` after
the recording last changed (for a waiting one: after its deadline), then removed the way a
transcript is: the subject crypto-shredded (its epoch key is then rotated or retired by
`epochs.settle`), the participant rows deleted, the row turned into a tombstone (state
`purged`). The tombstone keeps the Graph recording id, which is not personal data and stops
discovery from ever creating a new row for the same recording. A recording covered by a legal
hold (its meeting, or a person on its participant list) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from meeting_governance import audit
from meeting_governance.context import AppContext
from meeting_governance.holds import ActiveHolds, active_holds
from meeting_governance.models import Recording, RecordingParticipant, Transcript, VaultItem
from meeting_governance.states import State

ACTION = "recording.metadata_purged"
REASON = "metadata retention ended"


def _deadline_anchor(rec: Recording) -> datetime:
    return rec.meeting_end or rec.recorded_at or rec.first_seen_at


def due(session: Session, app: AppContext, as_of: datetime, *, limit: int | None = None,
        holds: ActiveHolds | None = None) -> list[Recording]:
    """Recordings whose metadata is due at `as_of` (see the module docstring)."""
    keep = timedelta(days=app.settings.retention.metadata_days)
    cutoff = as_of - keep
    with_transcript = select(Transcript.recording_id).where(col(Transcript.recording_id).is_not(None))
    query = select(Recording).where(
        col(Recording.id).not_in(with_transcript),
        (((col(Recording.state) == State.BLOCKED.value)
          | ((col(Recording.state) == State.FAILED.value)
             & col(Recording.next_attempt_at).is_(None)))
         & (col(Recording.updated_at) <= cutoff))
        | (col(Recording.state) == State.WAITING.value),
    ).order_by(col(Recording.id))
    rows = list(session.exec(query).all())
    deadline = app.settings.participants_deadline
    rows = [r for r in rows if r.state != State.WAITING.value
            or _deadline_anchor(r) + deadline + keep <= as_of]
    holds = holds or active_holds(session, as_of)
    if not holds.empty:
        held_people = set(holds.person_blinds)
        ids = [r.id for r in rows if r.id is not None]
        people = session.exec(select(RecordingParticipant.recording_id).where(
            col(RecordingParticipant.recording_id).in_(ids),
            col(RecordingParticipant.blind).in_(sorted(held_people)))).all() if held_people else []
        held = set(people)
        rows = [r for r in rows if r.id not in held and r.meeting_id not in holds.meeting_ids]
    return rows[:limit] if limit is not None else rows


def tombstone(app: AppContext, session: Session, rows: Sequence[Recording], *, run_id: str) -> int:
    """Shred the subjects, delete the participant rows, keep tombstones, audit each one."""
    if not rows:
        return 0
    now = app.clock.now()
    ids = [r.id for r in rows if r.id is not None]
    items = [r.subject_item for r in rows if r.subject_item]
    if items:
        session.exec(update(VaultItem).where(col(VaultItem.id).in_(items),
                                             col(VaultItem.shredded_at).is_(None))
                     .values(wrapped_key=None, nonce=None, ciphertext=None, shredded_at=now))
    session.exec(delete(RecordingParticipant).where(col(RecordingParticipant.recording_id).in_(ids)))
    previous = {r.id: r.state for r in rows}
    session.exec(update(Recording).where(col(Recording.id).in_(ids)).values(
        state=State.PURGED.value, reason=REASON, subject_item=None, call_id=None,
        media_sha256=None, lease_owner=None, lease_expires_at=None, next_attempt_at=None,
        updated_at=now).execution_options(synchronize_session=False))
    audit.append_many(session, actor=app.actor, action=ACTION, target_type="recording",
                      entries=[(str(rid), {"was": previous[rid], "run_id": run_id})
                               for rid in ids], clock=app.clock)
    return len(ids)


def purge_metadata(app: AppContext, as_of: datetime, *, run_id: str, batch_size: int) -> int:
    """Every due recording's metadata, batch by batch (one transaction each)."""
    total = 0
    while True:
        with app.session() as session:
            rows = due(session, app, as_of, limit=batch_size)
            if not rows:
                return total
            total += tombstone(app, session, rows, run_id=run_id)


def count_due(app: AppContext, as_of: datetime) -> int:
    with app.session() as session:
        return len(due(session, app, as_of))
