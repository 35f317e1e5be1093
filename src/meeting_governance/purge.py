"""The purge: crypto-shred every transcript whose retention ended, leave a tombstone, prove it.

Due = `retain_until <= as_of`, not purged, and no hold in force (transcript, person or meeting;
see `holds`). Each batch is one transaction that shreds the vault items (data key and
ciphertext), deletes the participant index, turns the row into a tombstone and writes one audit
entry per transcript, so a kill at any instant leaves each transcript either untouched or fully
purged, and the next run carries on. A signed receipt then lists every purge recorded in the
audit log since the previous receipt (so purges of a run that was killed are receipted too).

Only one purge runs at a time (`purge_lock`). On SQLite, `secure_delete` zeroes freed cells, and
after the run the WAL is checkpointed and truncated (and the file vacuumed when small), so no
purged key or ciphertext lingers in the file or the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from meeting_governance import audit, receipts
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint, is_sqlite
from meeting_governance.errors import DatabaseError, LockedError
from meeting_governance.holds import ActiveHolds, active_holds, held_filter, not_held_filter
from meeting_governance.models import (
    AuditEntry,
    AuditHead,
    PurgeReceipt,
    Recording,
    RecordingParticipant,
    ServiceLock,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)

log = logging.getLogger(__name__)

PURGE_ACTION = "transcript.purged"
RECEIPT_ACTION = "purge.receipt"
LOCK_NAME = "purge"
LOCK_TTL = timedelta(minutes=10)
MAX_BATCH = 5000  # 4 ids per transcript stay far below SQLite's bound-parameter limit
VACUUM_MAX_BYTES = 512 * 1024 * 1024

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


# -- the lock -------------------------------------------------------------------------------
def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
    """A lease left by a process of this host that no longer exists (a SIGKILLed purge)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _advisory_key(conn: Any) -> int:
    """One lock per schema, so installations sharing a PostgreSQL database stay independent."""
    schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
    digest = hashlib.sha256(f"meeting-governance:purge:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Lease:
    """The purge lock while held; `renew` pushes its expiry out during a long run."""

    app: AppContext
    owner: str
    expires_at: datetime
    _renewed: float = field(default_factory=time.monotonic)

    def renew(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._renewed < 60:
            return
        self.expires_at = datetime.now(UTC) + LOCK_TTL
        with self.app.session() as session:
            result = session.exec(update(ServiceLock).where(
                col(ServiceLock.name) == LOCK_NAME, col(ServiceLock.owner) == self.owner)
                .values(expires_at=self.expires_at))
            if result.rowcount == 0:
                raise LockedError("this purge lost its lock (it expired and another run took "
                                  "it over); stopping here — the other run carries on")
        self._renewed = time.monotonic()


def _release_advisory(conn: Any, key: int) -> None:
    """Unlock before the connection goes back to the pool (a pooled session would keep it)."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    except DBAPIError:
        conn.invalidate()  # closing the session for real releases the lock too
    finally:
        conn.close()


@contextmanager
def purge_lock(app: AppContext) -> Iterator[Lease]:
    """Hold the purge lock or raise `LockedError` at once (never wait behind another purge).

    The lease is a `service_lock` row that expires (wall-clock time, not `as_of`); a lease left
    by a dead process on this host is taken over. On PostgreSQL a session advisory lock is
    held as well: it dies with its connection, so it is the authority across hosts.
    """
    owner = _owner()
    pg_conn = None
    key = 0
    if not is_sqlite(app.engine):
        pg_conn = app.engine.connect()
        key = _advisory_key(pg_conn)
        got = bool(pg_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        pg_conn.commit()
        if not got:
            pg_conn.close()
            raise LockedError("another purge is running on this database (advisory lock held); "
                              "this run did nothing — try again when it has finished")
    try:
        now = datetime.now(UTC)
        expires = now + LOCK_TTL
        with app.session() as session:
            row = session.exec(select(ServiceLock).where(ServiceLock.name == LOCK_NAME)
                               .with_for_update()).first()
            if row is not None:
                free = (pg_conn is not None or row.expires_at <= now
                        or _owner_is_dead(row.owner))
                if not free:
                    raise LockedError(
                        f"another purge is running (lock held by {row.owner} until "
                        f"{row.expires_at.isoformat(timespec='seconds')}); this run did nothing — "
                        "try again when it has finished")
                row.owner = owner
                row.expires_at = expires
                session.add(row)
            else:
                session.add(ServiceLock(name=LOCK_NAME, owner=owner, expires_at=expires))
        lease = Lease(app, owner, expires)
        try:
            yield lease
        finally:
            with app.session() as session:
                session.exec(delete(ServiceLock).where(
                    col(ServiceLock.name) == LOCK_NAME, col(ServiceLock.owner) == owner))
    finally:
        if pg_conn is not None:
            _release_advisory(pg_conn, key)


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
    (per-entry appends were 80 % of the purge's time)."""
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
        staging = clean_staging(app, dry_run=False)
        report = PurgeReport(
            run_id=run_id, as_of=as_of, dry_run=False, purged=len(purged),
            by_policy=dict(sorted(by_policy.items())), held=summary.held, skipped=summary.skipped,
            errors=tuple(failures), tombstone_ids=tuple(purged), staging_deleted=staging,
            batches=batches, seconds=0.0)
        written = _write_receipt(app, report)
    vacuumed = _compact(app)
    log.info("purge finished", extra={"run_id": run_id, "purged": len(purged),
                                      "held": summary.held, "errors": len(failures)})
    return PurgeReport(**{**report.__dict__, "receipt_id": written.id,
                          "receipt_path": written.path, "vacuumed": vacuumed,
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
    return PurgeReport(run_id=run_id, as_of=as_of, dry_run=True, purged=len(ids),
                       by_policy=dict(sorted(by_policy.items())), held=summary.held,
                       skipped=summary.skipped, errors=(), tombstone_ids=tuple(ids),
                       staging_deleted=clean_staging(app, dry_run=True),
                       batches=-(-len(ids) // size), seconds=time.monotonic() - started)


# -- staging, receipt, compaction ---------------------------------------------------------------
def clean_staging(app: AppContext, *, dry_run: bool) -> int:
    """Delete temporary media older than `download.staging_max_age_hours` (by real time, not
    `as_of`: a download in progress must not vanish under a time-travelling run)."""
    root = app.settings.staging_dir
    if not root.is_dir():
        return 0
    limit = app.clock.now().timestamp() - app.settings.download.staging_max_age_hours * 3600
    count = 0
    for path in sorted(root.rglob("*"), reverse=True):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < limit:
                count += 1
                if not dry_run:
                    path.unlink()
            elif path.is_dir() and not dry_run and not any(path.iterdir()) \
                    and path.stat().st_mtime < limit:
                path.rmdir()
        except FileNotFoundError:
            continue  # removed meanwhile by the pipeline itself
    return count


def _last_receipted_seq(session: Session) -> int:
    row = session.exec(select(AuditEntry.details).where(AuditEntry.action == RECEIPT_ACTION)
                       .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    if row is None:
        return 0
    return int(json.loads(row).get("covers_to_seq", 0))


def _write_receipt(app: AppContext, report: PurgeReport) -> receipts.WrittenReceipt:
    """Sign and write the receipt, then record it (table row and audit entry) in one go."""
    with app.session() as session:
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        since = _last_receipted_seq(session)
        covered = list(session.exec(
            select(AuditEntry.target_id).where(AuditEntry.action == PURGE_ACTION,
                                               col(AuditEntry.seq) > since,
                                               col(AuditEntry.seq) <= head.seq)
            .order_by(col(AuditEntry.seq))).all())
        now = app.clock.now()
        receipt_id = uuid.uuid4().hex
        body = {
            "receipt_id": receipt_id, "created_at": now.isoformat(), "as_of": report.as_of.isoformat(),
            "run_id": report.run_id, "tombstone_ids": covered,
            "counts": {"purged": report.purged, "by_policy": report.by_policy,
                       "held": report.held, "skipped": report.skipped,
                       "errors": len(report.errors), "staging_deleted": report.staging_deleted,
                       "from_earlier_runs": len(covered) - report.purged},
            "audit": {"from_seq": since + 1, "head_seq": head.seq, "head_hash": head.hash},
        }
        written = receipts.write(app.settings.receipts_dir, receipt_id,
                                 receipts.sign(body, app.keys.signing_key()))
        session.add(PurgeReceipt(id=receipt_id, created_at=now, path=str(written.path),
                                 sha256=written.sha256, purged_count=len(covered)))
        app.audit(session, RECEIPT_ACTION, target_type="purge_receipt", target_id=receipt_id,
                  sha256=written.sha256, covers_to_seq=head.seq, tombstones=len(covered),
                  purged=report.purged, held=report.held, errors=len(report.errors),
                  run_id=report.run_id)
    return written


def _compact(app: AppContext) -> bool:
    """SQLite: fold and truncate the WAL; VACUUM too when the file is small enough for it to be
    cheap (secure_delete already zeroed freed cells; VACUUM also rewrites partly used pages and
    gives the space back)."""
    if not is_sqlite(app.engine):
        return False
    checkpoint(app.engine)
    raw = app.engine.raw_connection()
    try:
        cursor = raw.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
        vacuum = pages * page_size <= VACUUM_MAX_BYTES
        if vacuum:
            cursor.execute("VACUUM")
        cursor.close()
    except sqlite3.OperationalError:
        vacuum = False  # another connection is busy: the checkpoint alone already ran
    finally:
        raw.close()
    if vacuum:
        checkpoint(app.engine)
    return bool(vacuum)


__all__ = ["Lease", "PurgeFailure", "PurgeReport", "clean_staging", "purge",
           "purge_lock", "summarise", "tombstone"]
