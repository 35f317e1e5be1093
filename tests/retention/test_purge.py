"""The purge on both engines: time travel, tombstones, idempotence, dry run, receipts, staging."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from meeting_governance import audit, receipts
from meeting_governance.context import AppContext
from meeting_governance.epochs import payload_owner
from meeting_governance.errors import ShreddedError
from meeting_governance.models import (
    AuditEntry,
    PurgeReceipt,
    Recording,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)
from meeting_governance.purge import PURGE_ACTION, purge, tombstone

from .helpers import T0, make_transcript


def purge_entries(app: AppContext) -> list[str]:
    with app.session() as session:
        return list(session.exec(select(AuditEntry.target_id)
                                 .where(AuditEntry.action == PURGE_ACTION)).all())


def test_time_travel_purges_only_what_is_due(app: AppContext) -> None:
    first = make_transcript(app, retain_until=T0, meeting_id="m1")
    second = make_transcript(app, retain_until=T0 + timedelta(days=10), meeting_id="m2",
                             policy="board")
    third = make_transcript(app, retain_until=T0 + timedelta(days=100), meeting_id="m3")

    assert purge(app, as_of=T0 - timedelta(seconds=1)).purged == 0
    report = purge(app, as_of=T0)
    assert report.tombstone_ids == (first.id,)
    assert report.by_policy == {"standard": 1}
    report = purge(app, as_of=T0 + timedelta(days=50))
    assert report.tombstone_ids == (second.id,)
    assert report.by_policy == {"board": 1}
    with app.session() as session:
        assert session.get(Transcript, third.id).purged_at is None  # type: ignore[union-attr]
    assert sorted(purge_entries(app)) == sorted([first.id, second.id])


def test_purge_shreds_everything_and_keeps_a_tombstone(app: AppContext) -> None:
    row = make_transcript(app, with_recording=True)
    with app.session() as session:
        recording = session.get(Recording, row.recording_id)
        assert recording is not None
        items = [row.content_item, row.participants_item, row.subject_item, recording.subject_item]
    assert all(items)

    report = purge(app, as_of=T0)
    assert report.purged == 1 and not report.errors

    with app.session() as session:
        tomb = session.get(Transcript, row.id)
        assert tomb is not None
        assert tomb.purged_at is not None and tomb.purge_reason == "retention"
        assert (tomb.retention_policy, tomb.retain_until) == ("standard", T0)
        assert tomb.content_item is tomb.participants_item is tomb.subject_item is None
        assert tomb.organizer_id == "" and tomb.meeting_id == ""
        for item_id in items:
            item = session.get(VaultItem, item_id)
            assert item is not None and item.shredded_at is not None
            assert item.wrapped_key is None and item.ciphertext is None
            with pytest.raises(ShreddedError):
                app.vault.open_item(item, owner=payload_owner(item))
        assert session.exec(select(TranscriptParticipant)
                            .where(TranscriptParticipant.transcript_id == row.id)).all() == []
        assert session.exec(select(RecordingParticipant).where(
            RecordingParticipant.recording_id == row.recording_id)).all() == []
        rec = session.get(Recording, row.recording_id)
        assert rec is not None and rec.state == "purged" and rec.subject_item is None
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == PURGE_ACTION)).one()
    details = json.loads(entry.details)
    assert entry.target_id == row.id and details["policy"] == "standard"
    assert details["shredded"] == 4
    assert audit.verify(app.engine).ok


def test_recording_shared_with_a_live_transcript_is_kept(app: AppContext) -> None:
    old = make_transcript(app, with_recording=True, retain_until=T0)
    with app.session() as session:
        newer = session.get(Transcript, old.id)
        assert newer is not None
    later = make_transcript(app, retain_until=T0 + timedelta(days=30), meeting_id="meeting-1")
    with app.session() as session:
        row = session.get(Transcript, later.id)
        assert row is not None
        row.recording_id = old.recording_id
        session.add(row)
    purge(app, as_of=T0)
    with app.session() as session:
        rec = session.get(Recording, old.recording_id)
        assert rec is not None and rec.state != "purged" and rec.subject_item is not None
    purge(app, as_of=T0 + timedelta(days=30))
    with app.session() as session:
        rec = session.get(Recording, old.recording_id)
        assert rec is not None and rec.state == "purged"


def test_purge_is_idempotent(app: AppContext) -> None:
    rows = [make_transcript(app, meeting_id=f"m{i}") for i in range(3)]
    first = purge(app, as_of=T0, batch_size=2)
    assert first.purged == 3 and first.batches == 2
    again = purge(app, as_of=T0 + timedelta(days=1))
    assert again.purged == 0 and again.tombstone_ids == ()
    assert sorted(purge_entries(app)) == sorted(r.id for r in rows)
    assert audit.verify(app.engine).ok


def test_dry_run_changes_nothing(app: AppContext) -> None:
    row = make_transcript(app)
    make_transcript(app, retain_until=None, meeting_id="no-policy")
    with app.session() as session:
        head_before = audit.head_hash(session)
    report = purge(app, as_of=T0, dry_run=True)
    assert report.dry_run and report.tombstone_ids == (row.id,) and report.skipped == 1
    assert report.receipt_path is None
    with app.session() as session:
        assert audit.head_hash(session) == head_before
        assert session.exec(select(func.count()).select_from(VaultItem)
                            .where(col(VaultItem.shredded_at).is_not(None))).one() == 0
        assert session.get(Transcript, row.id).purged_at is None  # type: ignore[union-attr]
        assert session.exec(select(PurgeReceipt)).all() == []
    assert not any(app.settings.receipts_dir.glob("*.json"))


def test_transcript_without_retain_until_is_never_purged(app: AppContext) -> None:
    row = make_transcript(app, retain_until=None)
    report = purge(app, as_of=T0 + timedelta(days=10_000))
    assert report.purged == 0 and report.skipped == 1
    with app.session() as session:
        assert session.get(Transcript, row.id).purged_at is None  # type: ignore[union-attr]


def test_receipt_verifies_and_any_changed_byte_fails(app: AppContext) -> None:
    rows = [make_transcript(app, meeting_id=f"m{i}") for i in range(2)]
    report = purge(app, as_of=T0)
    assert report.receipt_path is not None
    data = report.receipt_path.read_bytes()
    signature = report.receipt_path.with_name(report.receipt_path.name + ".sig").read_bytes()
    key = app.keys.signing_key().public_key()
    check = receipts.verify_receipt(report.receipt_path, key)
    assert check.ok and check.signer_checked and check.purged == 2
    doc = json.loads(data)
    assert sorted(doc["tombstone_ids"]) == sorted(r.id for r in rows)
    with app.session() as session:
        seq, _digest = audit.head_hash(session)
        row = session.get(PurgeReceipt, doc["receipt_id"])
        assert row is not None and row.purged_count == 2
    # The receipt names the head just before its own audit entry.
    assert doc["audit"]["head_seq"] == seq - 1
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        assert not receipts.verify_bytes(bytes(changed), signature, key).ok, position
    other = __import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                       fromlist=["x"]).Ed25519PrivateKey.generate().public_key()
    assert not receipts.verify_receipt(report.receipt_path, other).ok
    assert oct(report.receipt_path.stat().st_mode & 0o777) == "0o600"


def test_receipt_includes_purges_of_an_interrupted_run(app: AppContext) -> None:
    crashed = make_transcript(app, meeting_id="m-crashed")
    normal = make_transcript(app, meeting_id="m-normal")
    with app.session() as session:  # a run that committed a batch, then died before its receipt
        rows = session.exec(select(Transcript).where(Transcript.id == crashed.id)).all()
        tombstone(app, session, rows, reason="retention")
    report = purge(app, as_of=T0)
    assert report.tombstone_ids == (normal.id,)
    doc = json.loads(report.receipt_path.read_bytes())  # type: ignore[union-attr]
    assert sorted(doc["tombstone_ids"]) == sorted([crashed.id, normal.id])
    assert doc["counts"]["from_earlier_runs"] == 1
    nothing = purge(app, as_of=T0)
    assert json.loads(nothing.receipt_path.read_bytes())["tombstone_ids"] == []  # type: ignore[union-attr]


def test_old_staging_media_is_deleted(app: AppContext) -> None:
    staging = app.settings.staging_dir
    (staging / "rec-1").mkdir(parents=True, exist_ok=True)
    old = staging / "rec-1" / "media.part"
    fresh = staging / "fresh.mp4"
    old.write_bytes(b"old media")
    fresh.write_bytes(b"new media")
    stale = time.time() - (app.settings.download.staging_max_age_hours + 1) * 3600
    os.utime(old, (stale, stale))
    assert purge(app, as_of=T0, dry_run=True).staging_deleted == 1
    assert old.exists()
    assert purge(app, as_of=T0).staging_deleted == 1
    assert not old.exists() and fresh.exists()


def test_a_failing_transcript_is_reported_and_the_rest_purged(
        app: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from meeting_governance.errors import DatabaseError
    from meeting_governance.purge import run as purge_module

    rows = [make_transcript(app, meeting_id=f"m{i}") for i in range(4)]
    poison = rows[2].id
    real = purge_module.tombstone

    def flaky(app_: AppContext, session, batch, **kw):  # type: ignore[no-untyped-def]
        if any(r.id == poison for r in batch):
            raise DatabaseError("disk I/O error")
        return real(app_, session, batch, **kw)

    monkeypatch.setattr(purge_module, "tombstone", flaky)
    report = purge(app, as_of=T0)
    assert report.purged == 3 and [e.transcript_id for e in report.errors] == [poison]
    assert "DatabaseError: disk I/O error" in report.errors[0].error
    with app.session() as session:  # the failed one is untouched, not half-purged
        row = session.get(Transcript, poison)
        assert row is not None and row.purged_at is None and row.content_item is not None
    monkeypatch.setattr(purge_module, "tombstone", real)
    assert purge(app, as_of=T0).tombstone_ids == (poison,)
    assert audit.verify(app.engine).ok
