"""A purge run: select what is due, tombstone it batch by batch, purge metadata, destroy the
keys (`epochs.settle`), clean staging, compact, sign a checkpoint and write the receipt."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from meeting_governance import checkpoints, epochs
from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.epochs import Destroyed
from meeting_governance.errors import DatabaseError
from meeting_governance.holds import active_holds
from meeting_governance.models import Transcript
from meeting_governance.purge import evidence
from meeting_governance.purge.evidence import Compaction, clean_staging
from meeting_governance.purge.lock import purge_lock
from meeting_governance.purge.selection import MAX_BATCH, due_filter, select_batch, summarise
from meeting_governance.purge.tombstones import tombstone
from meeting_governance.purge_metadata import count_due, purge_metadata

log = logging.getLogger(__name__)


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
                    rows = select_batch(session, as_of, size, failed, lock_rows)
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
        candidates = [r.id for r in select_batch(session, as_of, size, failed, False)]
    done: list[str] = []
    policies: list[str] = []
    for tid in candidates:
        try:
            with app.session() as session:
                rows = select_batch(session, as_of, 1, failed, lock_rows, only=tid)
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
                              .where(due_filter(as_of, holds)).order_by(col(Transcript.retain_until))
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
