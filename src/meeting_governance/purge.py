"""The purge: crypto-shred every transcript whose retention ended, leave a tombstone, prove it.

Due = `retain_until <= as_of`, not purged, and no hold in force (transcript, person or meeting;
see `holds`). Each batch is one transaction that shreds the vault items (data key and
ciphertext), deletes the participant index, turns the row into a tombstone and writes one audit
entry per transcript, so a kill at any instant leaves each transcript either untouched or fully
purged, and the next run carries on. Recordings that never became transcripts lose their
metadata the same way (`purge_metadata`).

Then `epochs.settle` destroys the keys: every epoch that lost an item is rotated (survivors
re-wrapped under a new key, the old key destroyed) and every epoch whose period has ended is
retired (held or extended items re-wrapped where they now belong, the key destroyed). That is
what reaches backups, replicas, WAL and free pages: whatever bytes of a purged item remain
anywhere, the only key that could unwrap its data key is gone. Compaction (SQLite WAL
checkpoint and VACUUM) is still done, but the guarantee no longer depends on it; when it cannot
complete (a reader holds a transaction) the report and the receipt say so and the command
exits non-zero.

Finally an audit checkpoint is signed and a receipt written (`purge_evidence`): the
tombstones, the keys destroyed (ids and fingerprints) and the checkpoint. Only one purge runs
at a time (`locks.hold`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from meeting_governance import audit, checkpoints, epochs
from meeting_governance import purge_evidence as evidence
from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.epochs import Destroyed
from meeting_governance.errors import DatabaseError
from meeting_governance.holds import ActiveHolds, active_holds, held_filter, not_held_filter
from meeting_governance.locks import Lock, hold
from meeting_governance.models import (
    Recording,
    RecordingParticipant,
    SpeakerLink,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)
from meeting_governance.purge_evidence import Compaction, clean_staging
from meeting_governance.purge_metadata import count_due, purge_metadata

log = logging.getLogger(__name__)

PURGE_ACTION = "transcript.purged"
RECEIPT_ACTION = evidence.RECEIPT_ACTION
LOCK_NAME = "purge"
LOCK_TTL = timedelta(minutes=10)
MAX_BATCH = 5000  # 4 ids per transcript stay far below SQLite's bound-parameter limit

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PurgeFailure:
    """A transcript the run could not purge (it stays due; the next run tries again)."""

    transcript_id: str
    error: str  # the exception class and message: ids only, never personal data


@dataclass(frozen=True, kw_only=True)
class PurgeReport:
    """What a purge run did (or, for a dry run, would do)."""

    run_id: str
    as_of: datetime
    dry_run: bool
    purged: int
    by_policy: dict[str, int]
    held: int  # due by date but under a legal hold
    skipped: int  # unpurged transcripts without `retain_until`: never due until assigned one
    errors: tuple[PurgeFailure, ...]
    tombstone_ids: tuple[str, ...]
    staging_deleted: int
    batches: int
    seconds: float
    receipt_id: str | None = None
    receipt_path: Path | None = None
    vacuumed: bool = False
    metadata_purged: int = 0  # recordings without a transcript whose metadata was purged
    keys_destroyed: tuple[Destroyed, ...] = ()
    compaction: Compaction = field(default_factory=lambda: Compaction("not run"))
    epochs_due: int = 0  # dry run: epoch keys the run would retire

    @property
    def complete(self) -> bool:
        """False when something the run should do did not happen (the CLI exits non-zero)."""
        return not self.errors and self.compaction.ok


# -- the lock -------------------------------------------------------------------------------
Lease = Lock


@contextmanager
def purge_lock(app: AppContext) -> Iterator[Lock]:
    """Hold the purge lock or raise `LockedError` at once (never wait behind another purge)."""
    with hold(app, LOCK_NAME, ttl=LOCK_TTL, busy="another purge is running") as lock:
        yield lock


# -- selecting what is due ------------------------------------------------------------------
def _due(as_of: datetime, holds: ActiveHolds) -> Any:
    return and_(col(Transcript.purged_at).is_(None), col(Transcript.retain_until).is_not(None),
                col(Transcript.retain_until) <= as_of, not_held_filter(holds))


@dataclass(frozen=True)
class DueSummary:
    due: int
    held: int
    skipped: int


def summarise(session: Session, as_of: datetime) -> DueSummary:
    """How many are due, held back by a hold, or have no `retain_until` at all."""
    holds = active_holds(session, as_of)
    by_date = and_(col(Transcript.purged_at).is_(None), col(Transcript.retain_until).is_not(None),
                   col(Transcript.retain_until) <= as_of)
    count = select(func.count()).select_from(Transcript)
    due = session.exec(count.where(by_date, not_held_filter(holds))).one()
    held = session.exec(count.where(by_date, held_filter(holds))).one()
    skipped = session.exec(count.where(col(Transcript.purged_at).is_(None),
                                       col(Transcript.retain_until).is_(None))).one()
    return DueSummary(int(due), int(held), int(skipped))


# -- destroying one batch -------------------------------------------------------------------
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
    _audit_many(app, session, [
        (tid, {"policy": policy, "retain_until": retain_until.isoformat() if retain_until else None,
               "reason": reason, "shredded": sum(1 for i in items_of[tid] if i in live),
               "run_id": run_id})
        for tid, policy, retain_until in facts])
    return ids


def _audit_many(app: AppContext, session: Session,
                entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """One `transcript.purged` entry per transcript, chained in one statement per batch
    (per-entry appends were most of the purge's time)."""
    audit.append_many(session, actor=app.actor, action=PURGE_ACTION, target_type="transcript",
                      entries=entries, clock=app.clock)


def _select_batch(session: Session, as_of: datetime, limit: int, exclude: set[str],
                  lock_rows: bool, only: str | None = None) -> list[Transcript]:
    """The next due transcripts, oldest `retain_until` first.

    Read straight off `ix_transcript_due` (purged_at, retain_until): purged rows leave that
    range, so each batch starts at the first one still due and the run stays linear however
    many tombstones exist. `exclude` holds this run's failures, so they are not retried.
    """
    holds = active_holds(session, as_of)
    query = select(Transcript).where(_due(as_of, holds))
    if exclude:
        query = query.where(col(Transcript.id).not_in(sorted(exclude)))
    if only is not None:
        query = query.where(col(Transcript.id) == only)
    query = query.order_by(col(Transcript.retain_until)).limit(limit)
    if lock_rows:
        # Row locks make PostgreSQL re-check `legal_hold` on rows a concurrent hold just raised.
        query = query.with_for_update(of=Transcript)
    return list(session.exec(query).all())


# -- the run ----------------------------------------------------------------------------------
def purge(app: AppContext, *, as_of: datetime, dry_run: bool = False,
          batch_size: int | None = None, progress: Progress | None = None) -> PurgeReport:
    """Purge everything due at `as_of` (see the module docstring); a dry run changes nothing."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    as_of = as_of.astimezone(UTC)
    size = max(1, min(batch_size or app.settings.purge.batch_size, MAX_BATCH))
    started = time.monotonic()
    run_id = uuid.uuid4().hex
    if dry_run:
        return _dry_run(app, as_of, size, run_id, started, progress)
    with purge_lock(app) as lease:
        with app.session() as session:
            summary = summarise(session, as_of)
        if progress:
            progress(0, summary.due)
        purged: list[str] = []
        by_policy: Counter[str] = Counter()
        failures: list[PurgeFailure] = []
        failed: set[str] = set()
        batches = 0
        lock_rows = not is_sqlite(app.engine)
        while True:
            try:
                with app.session() as session:
                    rows = _select_batch(session, as_of, size, failed, lock_rows)
                    if not rows:
                        break
                    policies = [r.retention_policy for r in rows]
                    done = tombstone(app, session, rows, reason="retention", run_id=run_id)
            except (DatabaseError, DBAPIError) as exc:
                done, policies = _one_by_one(app, as_of, size, failed, failures, run_id,
                                             lock_rows, exc)
            batches += 1
            purged.extend(done)
            by_policy.update(policies)
            lease.renew()
            if progress:
                progress(len(purged), max(summary.due, len(purged)))
        metadata = purge_metadata(app, as_of, run_id=run_id, batch_size=size)
        lease.renew()
        destroyed = epochs.settle(app, as_of=as_of, reason="purge",
                                  batch_size=app.settings.keys.rotate_batch_size)
        lease.renew()
        staging = evidence.clean_staging(app, dry_run=False)
        compaction = evidence.compact(app)
        report = PurgeReport(
            run_id=run_id, as_of=as_of, dry_run=False, purged=len(purged),
            by_policy=dict(sorted(by_policy.items())), held=summary.held, skipped=summary.skipped,
            errors=tuple(failures), tombstone_ids=tuple(purged), staging_deleted=staging,
            batches=batches, seconds=0.0, metadata_purged=metadata,
            keys_destroyed=tuple(destroyed), compaction=compaction)
        point = checkpoints.take(app, reason=f"purge {run_id}")
        written = evidence.write_receipt(app, report, point)
    if compaction.ok:
        evidence.fold_wal(app)  # the receipt's own rows (no personal data) leave the WAL too
    log.info("purge finished", extra={"run_id": run_id, "purged": len(purged),
                                      "held": summary.held, "errors": len(failures),
                                      "keys_destroyed": len(destroyed),
                                      "compaction": compaction.status})
    return PurgeReport(**{**report.__dict__, "receipt_id": written.id,
                          "receipt_path": written.path, "vacuumed": compaction.vacuumed,
                          "seconds": time.monotonic() - started})


def _one_by_one(app: AppContext, as_of: datetime, size: int, failed: set[str],
                failures: list[PurgeFailure], run_id: str, lock_rows: bool,
                batch_error: Exception) -> tuple[list[str], list[str]]:
    """A batch failed: purge its members one per transaction to isolate the bad ones (they
    stay due, for the next run). Returns the ids purged and their policies."""
    with app.session() as session:
        candidates = [r.id for r in _select_batch(session, as_of, size, failed, False)]
    done: list[str] = []
    policies: list[str] = []
    for tid in candidates:
        try:
            with app.session() as session:
                rows = _select_batch(session, as_of, 1, failed, lock_rows, only=tid)
                if rows:
                    policies.append(rows[0].retention_policy)
                    done.extend(tombstone(app, session, rows, reason="retention", run_id=run_id))
        except (DatabaseError, DBAPIError) as exc:
            failed.add(tid)
            failures.append(PurgeFailure(tid, _describe(exc)))
            log.warning("transcript purge failed", extra={"transcript_id": tid,
                                                          "error": type(exc).__name__})
    if not done:
        raise DatabaseError(f"the purge cannot write to the database: {batch_error}") from batch_error
    return done, policies


def _describe(exc: Exception) -> str:
    """The error's class and first line, without SQLAlchemy's statement and parameters."""
    first = str(getattr(exc, "orig", None) or exc).splitlines()
    return f"{type(exc).__name__}: {first[0][:200] if first else ''}"


def _dry_run(app: AppContext, as_of: datetime, size: int, run_id: str, started: float,
             progress: Progress | None) -> PurgeReport:
    """List what a real run would purge, in one streaming read; nothing is written."""
    with app.session() as session:
        summary = summarise(session, as_of)
        holds = active_holds(session, as_of)
        ids: list[str] = []
        by_policy: Counter[str] = Counter()
        result = session.exec(select(Transcript.id, Transcript.retention_policy)
                              .where(_due(as_of, holds)).order_by(col(Transcript.retain_until))
                              .execution_options(yield_per=size))
        for tid, policy in result:
            ids.append(tid)
            by_policy[policy] += 1
            if progress and len(ids) % size == 0:
                progress(len(ids), summary.due)
        if progress:
            progress(len(ids), summary.due)
        session.rollback()
    with app.session() as session:
        due_epochs = len(set(epochs.expired(session, as_of)) | set(epochs.dirty(session)))
    return PurgeReport(run_id=run_id, as_of=as_of, dry_run=True, purged=len(ids),
                       by_policy=dict(sorted(by_policy.items())), held=summary.held,
                       skipped=summary.skipped, errors=(), tombstone_ids=tuple(ids),
                       staging_deleted=clean_staging(app, dry_run=True),
                       batches=-(-len(ids) // size), seconds=time.monotonic() - started,
                       metadata_purged=count_due(app, as_of), epochs_due=due_epochs,
                       compaction=Compaction("not run (dry run)"))


__all__ = ["Lease", "PurgeFailure", "PurgeReport", "clean_staging", "purge",
           "purge_lock", "summarise", "tombstone"]
