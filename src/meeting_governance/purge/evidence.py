"""What a purge leaves behind besides tombstones: a signed receipt, a compacted SQLite file,
and no stale temporary media.

The receipt (`receipts`) lists the tombstones recorded since the previous receipt, the epoch
keys destroyed (id, label, fingerprint), the signed audit checkpoint taken at the end of the
run, and the outcome of compaction. Compaction no longer carries the guarantee (destroyed keys
do), but a purge that could not complete it says so in the receipt and exits non-zero, so an
operator knows the SQLite file and WAL still hold ciphertext under destroyed keys.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from meeting_governance import receipts
from meeting_governance.checkpoints import Checkpoint
from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.models import AuditEntry, AuditHead, PurgeReceipt
from meeting_governance.purge.tombstones import PURGE_ACTION

if TYPE_CHECKING:
    from meeting_governance.purge.run import PurgeReport

RECEIPT_ACTION = "purge.receipt"
VACUUM_MAX_BYTES = 512 * 1024 * 1024


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


@dataclass(frozen=True)
class Compaction:
    """How far SQLite compaction got: `complete`, `incomplete: why`, or `not applicable`."""

    status: str
    vacuumed: bool = False

    @property
    def ok(self) -> bool:
        return not self.status.startswith("incomplete")


def compact(app: AppContext) -> Compaction:
    """SQLite: fold and truncate the WAL, and VACUUM when the file is small enough for it to be
    cheap (secure_delete already zeroed freed cells; VACUUM also rewrites partly used pages).
    A reader holding a transaction makes the checkpoint report "busy": that is reported."""
    if not is_sqlite(app.engine):
        return Compaction("not applicable (PostgreSQL: dead tuples stay until reused; their "
                          "data keys are under destroyed keys)")
    raw = app.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            return Compaction("incomplete: the WAL could not be checkpointed (another connection "
                              "holds a transaction); run the purge again when it is idle")
        pages = driver.execute("PRAGMA page_count").fetchone()[0]
        page_size = driver.execute("PRAGMA page_size").fetchone()[0]
        vacuum = pages * page_size <= VACUUM_MAX_BYTES
        if vacuum:
            driver.execute("VACUUM")
            busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:
                return Compaction("incomplete: vacuumed, but the WAL could not be truncated "
                                  "afterwards (another connection holds a transaction)", True)
        return Compaction("complete", vacuum)
    except sqlite3.OperationalError as exc:
        return Compaction(f"incomplete: {str(exc).splitlines()[0][:200]}")
    finally:
        raw.close()


def fold_wal(app: AppContext) -> bool:
    """SQLite: checkpoint and truncate the WAL; False when a reader kept it busy."""
    if not is_sqlite(app.engine):
        return True
    raw = app.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        return not driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:
        return False
    finally:
        raw.close()


def _last_receipted_seq(session: Session) -> int:
    row = session.exec(select(AuditEntry.details).where(AuditEntry.action == RECEIPT_ACTION)
                       .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    if row is None:
        return 0
    return int(json.loads(row).get("covers_to_seq", 0))


def write_receipt(app: AppContext, report: PurgeReport,
                  checkpoint: Checkpoint) -> receipts.WrittenReceipt:
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
            "receipt_id": receipt_id, "created_at": now.isoformat(),
            "as_of": report.as_of.isoformat(), "run_id": report.run_id,
            "tombstone_ids": covered,
            "counts": {"purged": report.purged, "by_policy": report.by_policy,
                       "held": report.held, "skipped": report.skipped,
                       "errors": len(report.errors), "staging_deleted": report.staging_deleted,
                       "metadata_purged": report.metadata_purged,
                       "from_earlier_runs": len(covered) - report.purged},
            "keys_destroyed": [{"key_id": d.key_id, "epoch": d.label,
                                "fingerprint": d.fingerprint, "reason": d.reason}
                               for d in report.keys_destroyed],
            "keyring": app.keys.description.split(" ")[0] if app.keys.description else "",
            "compaction": report.compaction.status,
            "audit": {"from_seq": since + 1, "head_seq": head.seq, "head_hash": head.hash},
            "audit_checkpoint": json.loads(checkpoint.line),
        }
        written = receipts.write(app.settings.receipts_dir, receipt_id,
                                 receipts.sign(body, app.keys.signing_key()))
        session.add(PurgeReceipt(id=receipt_id, created_at=now, path=str(written.path),
                                 sha256=written.sha256, purged_count=len(covered)))
        app.audit(session, RECEIPT_ACTION, target_type="purge_receipt", target_id=receipt_id,
                  sha256=written.sha256, covers_to_seq=head.seq, tombstones=len(covered),
                  purged=report.purged, held=report.held, errors=len(report.errors),
                  run_id=report.run_id, keys_destroyed=len(report.keys_destroyed),
                  compaction=report.compaction.status[:60])
    return written
