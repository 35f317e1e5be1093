"""SIGKILL a purge of 5 000 transcripts mid-way, run it again: every due transcript is purged
exactly once (one audit entry each) and none is ever half-purged."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from meeting_governance import audit, receipts
from meeting_governance.context import AppContext
from meeting_governance.models import (
    AuditEntry,
    Recording,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)
from meeting_governance.purge import PURGE_ACTION

from .helpers import T0
from .seeding import Seeded, bulk_seed
from .test_lock import cli_env

N = 5000
KEEP = 20


def purge_count(app: AppContext) -> int:
    with Session(app.engine) as session:
        return int(session.exec(select(func.count()).select_from(AuditEntry)
                                .where(AuditEntry.action == PURGE_ACTION)).one())


def check_consistent(app: AppContext, due: Seeded, keep: Seeded) -> set[str]:
    """No half-purged transcript; returns the ids purged so far."""
    with Session(app.engine) as session:
        rows = {r.id: r for r in session.exec(select(Transcript)).all()}
        shredded = set(session.exec(select(VaultItem.id)
                                    .where(col(VaultItem.shredded_at).is_not(None))).all())
        alive_keys = set(session.exec(select(VaultItem.id)
                                      .where(col(VaultItem.wrapped_key).is_not(None))).all())
        indexed = set(session.exec(select(TranscriptParticipant.transcript_id)).all())
        recording_state = dict(session.exec(select(Recording.id, Recording.state)).all())
        recording_listed = set(session.exec(select(RecordingParticipant.recording_id)).all())
        entries = Counter(session.exec(select(AuditEntry.target_id)
                                       .where(AuditEntry.action == PURGE_ACTION)).all())
    purged = {tid for tid, r in rows.items() if r.purged_at is not None}
    assert purged <= set(due.transcript_ids)
    for tid in due.transcript_ids + keep.transcript_ids:
        row = rows[tid]
        items = set(due.items.get(tid) or keep.items[tid])
        if tid in purged:
            assert row.content_item is None and row.participants_item is None
            assert row.subject_item is None
            assert items <= shredded and not items & alive_keys, tid
            assert tid not in indexed
            assert recording_state[row.recording_id] == "purged"
            assert row.recording_id not in recording_listed
            assert entries[tid] == 1, tid
        else:
            assert row.content_item is not None
            assert not items & shredded and items <= alive_keys, tid
            assert tid in indexed
            assert recording_state[row.recording_id] == "stored"
            assert row.recording_id in recording_listed
            assert entries[tid] == 0, tid
    assert sum(entries.values()) == len(purged)
    return purged


def run_cli(app: AppContext, *extra: str) -> subprocess.Popen[str]:
    env = cli_env(app)
    env["MG_PURGE__BATCH_SIZE"] = "25"
    return subprocess.Popen([sys.executable, "-m", "meeting_governance", "purge", "--json",
                             "--as-of", T0.isoformat(), *extra], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_purge_then_rerun(app: AppContext) -> None:
    due = bulk_seed(app, N, retain_until=T0 - timedelta(days=1), with_recordings=True)
    keep = bulk_seed(app, KEEP, retain_until=T0 + timedelta(days=1), with_recordings=True)

    proc = run_cli(app)
    deadline = time.monotonic() + 120
    while purge_count(app) < 300 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    partly = check_consistent(app, due, keep)
    assert 0 < len(partly) < N, "the kill should land mid-way"

    for _attempt in range(20):  # PostgreSQL may take a moment to notice the dead session
        rerun = run_cli(app)
        out, err = rerun.communicate(timeout=300)
        if "another purge is running" not in err:
            break
        time.sleep(0.5)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["purged"] == N - len(partly)

    purged = check_consistent(app, due, keep)
    assert purged == set(due.transcript_ids)
    assert audit.verify(app.engine).ok
    # The killed run wrote no receipt; the rerun's receipt covers its purges as well.
    check = receipts.verify_receipt(report["receipt_path"], app.keys.signing_key().public_key())
    assert check.ok and check.purged == N
