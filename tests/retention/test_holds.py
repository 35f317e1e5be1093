"""Legal holds by transcript, person and meeting: respected by the purge, released, audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from meeting_governance import audit
from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.holds import find_active, is_held, list_holds, reason_owner, release_hold, set_hold
from meeting_governance.models import AuditEntry, Hold, Transcript
from meeting_governance.purge import purge

from .helpers import ALICE, BOB_OID, T0, make_transcript, person

REASON = "Complaint by Alice Liddell, alice.liddell@example.org"


def purged(app: AppContext, tid: str) -> bool:
    with app.session() as session:
        row = session.get(Transcript, tid)
        assert row is not None
        return row.purged_at is not None


def test_transcript_hold_blocks_purge_until_released(app: AppContext) -> None:
    row = make_transcript(app)
    info = set_hold(app, transcript_id=row.id, reason=REASON)
    with app.session() as session:
        assert session.get(Transcript, row.id).legal_hold  # type: ignore[union-attr]
    report = purge(app, as_of=T0 + timedelta(days=1))
    assert report.purged == 0 and report.held == 1
    assert not purged(app, row.id)

    app.clock = FixedClock(T0 + timedelta(days=5))
    release_hold(app, find_active(app, transcript_id=row.id), reason="matter closed")
    with app.session() as session:
        assert not session.get(Transcript, row.id).legal_hold  # type: ignore[union-attr]
    # Due again at max(retain_until, release): not before the release…
    assert purge(app, as_of=T0 + timedelta(days=4)).purged == 0
    # …and at once after it, although retain_until passed long ago.
    assert purge(app, as_of=T0 + timedelta(days=5)).tombstone_ids == (row.id,)
    assert info.kind == "transcript"


def test_release_before_retain_until_keeps_the_period(app: AppContext) -> None:
    row = make_transcript(app, retain_until=T0 + timedelta(days=30))
    hold = set_hold(app, transcript_id=row.id, reason=REASON)
    app.clock = FixedClock(T0)
    release_hold(app, hold.id, reason="done")
    assert purge(app, as_of=T0 + timedelta(days=29)).purged == 0
    assert purge(app, as_of=T0 + timedelta(days=30)).purged == 1


def test_person_hold_covers_present_and_future_transcripts(app: AppContext) -> None:
    attended = make_transcript(app, meeting_id="m1", participants=[person(ALICE)])
    by_oid = make_transcript(app, meeting_id="m2", participants=[person(object_id=BOB_OID)])
    other = make_transcript(app, meeting_id="m3", participants=[person("carol@example.org")])
    hold = set_hold(app, email="  ALICE.Liddell@Example.org ", reason=REASON)
    set_hold(app, object_id=BOB_OID.upper(), reason="litigation")
    assert hold.covered == 1
    # Stored after the hold was set: no flag on the row, still protected by the hold table.
    later = make_transcript(app, meeting_id="m4", participants=[person(ALICE)])
    with app.session() as session:
        assert not session.get(Transcript, later.id).legal_hold  # type: ignore[union-attr]
        assert is_held(session, later.id)
    report = purge(app, as_of=T0 + timedelta(days=1))
    assert report.tombstone_ids == (other.id,)
    assert report.held == 3
    assert not purged(app, attended.id) and not purged(app, later.id)
    assert not purged(app, by_oid.id)

    app.clock = FixedClock(T0 + timedelta(days=2))
    release_hold(app, find_active(app, email=ALICE), reason="settled")
    report = purge(app, as_of=T0 + timedelta(days=365))
    assert sorted(report.tombstone_ids) == sorted([attended.id, later.id])
    assert not purged(app, by_oid.id)


def test_person_hold_through_recording_participants(app: AppContext) -> None:
    row = make_transcript(app, with_recording=True, participants=[person(ALICE)])
    with app.session() as session:  # the transcript's own index lost the person
        from meeting_governance.models import TranscriptParticipant
        for tp in session.exec(select(TranscriptParticipant)).all():
            session.delete(tp)
    set_hold(app, email=ALICE, reason=REASON)
    assert purge(app, as_of=T0 + timedelta(days=1)).purged == 0
    assert not purged(app, row.id)


def test_meeting_hold(app: AppContext) -> None:
    held = make_transcript(app, meeting_id="meeting-held")
    free = make_transcript(app, meeting_id="meeting-free")
    set_hold(app, meeting_id="meeting-held", reason=REASON)
    assert purge(app, as_of=T0).tombstone_ids == (free.id,)
    assert not purged(app, held.id)
    app.clock = FixedClock(T0 + timedelta(hours=1))
    release_hold(app, find_active(app, meeting_id="meeting-held"), reason="done")
    assert purge(app, as_of=T0 + timedelta(days=1)).tombstone_ids == (held.id,)


def test_flag_alone_holds(app: AppContext) -> None:
    row = make_transcript(app)
    with app.session() as session:
        r = session.get(Transcript, row.id)
        assert r is not None
        r.legal_hold = True
        session.add(r)
    assert purge(app, as_of=T0).held == 1


def test_reason_is_sealed_and_not_in_the_audit(app: AppContext) -> None:
    row = make_transcript(app)
    info = set_hold(app, transcript_id=row.id, reason=REASON)
    with app.session() as session:
        hold = session.get(Hold, info.id)
        assert hold is not None and hold.reason_item
        assert app.vault.open_text(session, hold.reason_item, owner=reason_owner(hold.id)) == REASON
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "hold.set")).all()
    assert len(entries) == 1
    assert entries[0].actor == "test" and entries[0].target_id == row.id
    assert json.loads(entries[0].details)["hold_id"] == info.id
    assert "Alice" not in entries[0].details and "alice" not in entries[0].details
    listed = list_holds(app, with_reasons=True)
    assert [h.reason for h in listed] == [REASON]
    assert list_holds(app)[0].reason is None
    assert audit.verify(app.engine).ok


def test_hold_errors(app: AppContext) -> None:
    row = make_transcript(app)
    with pytest.raises(NotFoundError):
        set_hold(app, transcript_id="nope", reason="x")
    with pytest.raises(InputError):
        set_hold(app, transcript_id=row.id, email=ALICE, reason="x")
    with pytest.raises(InputError):
        set_hold(app, transcript_id=row.id, reason="  ")
    with pytest.raises(InputError):
        set_hold(app, email="not-an-address", reason="x")
    first = set_hold(app, transcript_id=row.id, reason="one")
    set_hold(app, transcript_id=row.id, reason="two")
    with pytest.raises(InputError, match="--hold-id"):
        find_active(app, transcript_id=row.id)
    app.clock = FixedClock(T0)
    release_hold(app, first.id, reason="done")
    with pytest.raises(InputError, match="already released"):
        release_hold(app, first.id, reason="again")
    with app.session() as session:  # the second hold still stands
        assert session.get(Transcript, row.id).legal_hold  # type: ignore[union-attr]
    assert purge(app, as_of=T0 + timedelta(days=1)).purged == 0
    assert len(list_holds(app)) == 1 and len(list_holds(app, include_released=True)) == 2
    purge_row = make_transcript(app, meeting_id="gone")
    purge(app, as_of=T0 + timedelta(days=1))
    with pytest.raises(InputError, match="purged"):
        set_hold(app, transcript_id=purge_row.id, reason="too late")
