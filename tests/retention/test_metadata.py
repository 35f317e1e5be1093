"""Retention for everything personal: recordings that never became transcripts (blocked, failed
for good, waiting past their deadline) keep their sealed subject and participant list only for
`retention.metadata_days`; then the purge tombstones them, and discovery never brings them back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.graph.recordings import Discovery, RecordingRef
from meeting_governance.holds import set_hold
from meeting_governance.models import AuditEntry, KeyEpoch, Recording, RecordingParticipant, VaultItem
from meeting_governance.pipeline import _store_discovery
from meeting_governance.purge import purge

ORGANIZER = "00000000-0000-0000-0000-0000000000aa"


def recording(app: AppContext, name: str, state: str, *, updated: datetime,
              meeting_end: datetime | None = None, next_attempt: datetime | None = None) -> int:
    with app.session() as session:
        rec = Recording(graph_recording_id=f"graph-{name}", meeting_id=f"meeting-{name}",
                        organizer_id=ORGANIZER, state=state, meeting_end=meeting_end,
                        first_seen_at=updated, updated_at=updated, next_attempt_at=next_attempt)
        session.add(rec)
        session.flush()
        assert rec.id is not None
        rec.subject_item = app.vault.seal_text(
            session, f"Confidential subject {name}", epoch=app.vault.metadata_epoch(updated),
            owner=Owner("recording", str(rec.id), "subject"))
        session.add(RecordingParticipant(recording_id=rec.id,
                                         blind=app.vault.blind_email(f"{name}@example.org")))
        return rec.id


def test_metadata_of_untranscribed_recordings_is_purged_in_time(app: AppContext) -> None:
    now = app.clock.now()
    old = now - timedelta(days=31)
    ids = {
        "blocked-old": recording(app, "blocked-old", "blocked", updated=old),
        "failed-for-good": recording(app, "failed-for-good", "failed", updated=old),
        "waiting-past": recording(app, "waiting-past", "waiting", updated=now,
                                  meeting_end=now - timedelta(days=40)),
        "blocked-recent": recording(app, "blocked-recent", "blocked", updated=now - timedelta(days=5)),
        "failed-retrying": recording(app, "failed-retrying", "failed", updated=old,
                                     next_attempt=now + timedelta(hours=1)),
        "waiting-fresh": recording(app, "waiting-fresh", "waiting", updated=now,
                                   meeting_end=now - timedelta(hours=2)),
        "blocked-held": recording(app, "blocked-held", "blocked", updated=old),
    }
    set_hold(app, meeting_id="meeting-blocked-held", reason="litigation")
    dry = purge(app, as_of=now, dry_run=True)
    assert dry.metadata_purged == 3
    report = purge(app, as_of=now)
    assert report.metadata_purged == 3 and report.complete
    gone = {"blocked-old", "failed-for-good", "waiting-past"}
    with Session(app.engine) as session:
        for name, rid in ids.items():
            rec = session.get(Recording, rid)
            assert rec is not None
            people = session.exec(select(RecordingParticipant).where(
                RecordingParticipant.recording_id == rid)).all()
            if name in gone:
                assert rec.state == "purged" and rec.subject_item is None and not people
                assert rec.graph_recording_id == f"graph-{name}"  # the non-personal id stays
            else:
                assert rec.state != "purged" and rec.subject_item is not None and people
        shredded = session.exec(select(VaultItem).where(VaultItem.owner_table == "recording")).all()
        by_owner = {int(i.owner_id or 0): i for i in shredded}
        epochs = {e.id: e for e in session.exec(select(KeyEpoch)).all()}
        for name in gone:
            item = by_owner[ids[name]]
            assert item.wrapped_key is None and item.ciphertext is None
            assert epochs[item.epoch_id or ""].state == "destroyed"  # rotated away
        entries = session.exec(select(AuditEntry).where(
            AuditEntry.action == "recording.metadata_purged")).all()
        assert sorted(e.target_id for e in entries) == sorted(str(ids[n]) for n in gone)
    # The next poll sees the same Graph recordings: no new row is made for a tombstone.
    refs = tuple(RecordingRef(recording_id=f"graph-{n}", meeting_id=f"meeting-{n}",
                              organizer_id=ORGANIZER) for n in gone)
    new, seen = _store_discovery(app, ORGANIZER, Discovery(refs, None), now, [], 0, 0)
    assert (new, seen) == (0, 3)
    with Session(app.engine) as session:
        assert len(session.exec(select(Recording)).all()) == len(ids)
