"""Tombstones: a purged transcript keeps its id, policy, `retain_until`, `purged_at` and
reason; everything else is shredded or deleted, in the caller's transaction, with one audit
entry each. The purge and erasure requests (`dsr`) both use `tombstone`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from meeting_governance import audit
from meeting_governance.context import AppContext
from meeting_governance.models import (
    Recording,
    RecordingParticipant,
    SpeakerLink,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)

PURGE_ACTION = "transcript.purged"


def tombstone(app: AppContext, session: Session, rows: Sequence[Transcript], *, reason: str,
              run_id: str = "") -> list[str]:
    """Purge `rows` inside the caller's transaction; returns their ids.

    Shreds content, participants and subject (and the recording's subject once no live
    transcript of it remains), deletes the blind-index rows, keeps the tombstone (id, policy,
    retain_until, purged_at, reason) and writes one audit entry per transcript. Also the
    building block for erasure requests (`reason="erasure"`).
    """
    if not rows:
        return []
    now = app.clock.now()
    ids = [r.id for r in rows]
    items_of: dict[str, list[str]] = {
        r.id: [i for i in (r.content_item, r.participants_item, r.subject_item) if i] for r in rows}
    recording_ids = sorted({r.recording_id for r in rows if r.recording_id is not None})
    if recording_ids:
        # Filtered here rather than in SQL: with `purged_at IS NULL` in the WHERE clause
        # SQLite picks the purged_at index and scans every live transcript, once per batch.
        siblings = session.exec(select(Transcript.id, Transcript.recording_id,
                                       Transcript.purged_at)
                                .where(col(Transcript.recording_id).in_(recording_ids))).all()
        batch = set(ids)
        still_used = {rec for tid, rec, purged_at in siblings
                      if purged_at is None and tid not in batch}
        recording_ids = [r for r in recording_ids if r not in still_used]
    if recording_ids:
        recordings = session.exec(select(Recording.id, Recording.subject_item).where(
            col(Recording.id).in_(recording_ids))).all()
        subject_of = {rid: item for rid, item in recordings if item}
        for r in rows:
            if r.recording_id in subject_of:
                items_of[r.id].append(subject_of.pop(r.recording_id))
        session.exec(delete(RecordingParticipant).where(
            col(RecordingParticipant.recording_id).in_(recording_ids)))
        session.exec(update(Recording).where(
            col(Recording.id).in_(recording_ids)).values(
            state="purged", subject_item=None, media_sha256=None, lease_owner=None,
            lease_expires_at=None, next_attempt_at=None, updated_at=now))
    all_items = [i for items in items_of.values() for i in items]
    live = set(session.exec(select(VaultItem.id).where(col(VaultItem.id).in_(all_items),
                                                        col(VaultItem.shredded_at).is_(None))).all())
    if live:
        # Same effect as Vault.shred, as one statement per batch rather than one per item.
        session.exec(update(VaultItem).where(
            col(VaultItem.id).in_(sorted(live))).values(
            wrapped_key=None, nonce=None, ciphertext=None, shredded_at=now))
    session.exec(delete(TranscriptParticipant).where(
        col(TranscriptParticipant.transcript_id).in_(ids)))
    session.exec(delete(SpeakerLink).where(col(SpeakerLink.transcript_id).in_(ids)))
    facts = [(r.id, r.retention_policy, r.retain_until) for r in rows]
    session.exec(update(Transcript).where(
        col(Transcript.id).in_(ids)).values(
        content_item=None, participants_item=None, subject_item=None, organizer_id="",
        meeting_id="", meeting_start=None, meeting_end=None, legal_hold=False,
        purged_at=now, purge_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False))
    audit_many(app, session, [
        (tid, {"policy": policy, "retain_until": retain_until.isoformat() if retain_until else None,
               "reason": reason, "shredded": sum(1 for i in items_of[tid] if i in live),
               "run_id": run_id})
        for tid, policy, retain_until in facts])
    return ids


def audit_many(app: AppContext, session: Session,
                entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """One `transcript.purged` entry per transcript, chained in one statement per batch
    (per-entry appends were most of the purge's time)."""
    audit.append_many(session, actor=app.actor, action=PURGE_ACTION, target_type="transcript",
                      entries=entries, clock=app.clock)
