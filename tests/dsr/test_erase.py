"""Erasure: the person's meetings are crypto-shredded through the purge's own path, held ones
are spared and reported with their reasons, and nothing is left in the SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import col, select

from meeting_governance import dsr, holds
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint
from meeting_governance.epochs import payload_owner
from meeting_governance.errors import InputError, ShreddedError
from meeting_governance.models import (
    AuditEntry,
    DsrRequest,
    OptOut,
    Recording,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)
from meeting_governance.optouts import OptOutRequest, add_optout
from meeting_governance.store import read_content

from .helpers import ALICE, BOB, CAROL_OID, make_transcript, person


def _seed(app: AppContext) -> dict[str, Transcript]:
    alice, bob, carol = person(ALICE), person(BOB), person(object_id=CAROL_OID)
    t = {
        "shared": make_transcript(app, words=["zanzibar quokka forecast"], people=[alice, bob],
                                  meeting_id="m-1"),
        "bobs": make_transcript(app, words=["bravo secret merger"], people=[bob],
                                meeting_id="m-2"),
        "held": make_transcript(app, words=["litigation evidence"], people=[alice, carol],
                                meeting_id="m-3"),
        "meeting_held": make_transcript(app, words=["board minutes"], people=[alice],
                                        meeting_id="m-4"),
        "no_recording": make_transcript(app, words=["xylophone ocelot"], people=[alice],
                                        meeting_id="m-5", with_recording=False),
    }
    holds.set_hold(app, reason="Smith v Example Ltd", transcript_id=t["held"].id, actor="dpo")
    holds.set_hold(app, reason="board complaint", meeting_id="m-4", actor="dpo")
    with app.session() as session:
        add_optout(app, session, OptOutRequest(email=ALICE), actor="coordinator:ana")
        # A blocked recording she attended: no transcript, only her blind value on its list.
        rec = Recording(graph_recording_id="rec-blocked", meeting_id="m-6",
                        organizer_id="00000000-0000-0000-0000-0000000000aa", state="blocked",
                        reason="opted out (1 opt-out)")
        session.add(rec)
        session.flush()
        assert rec.id is not None
        session.add(RecordingParticipant(recording_id=rec.id, blind=app.vault.blind_email(ALICE)))
    return t


def test_dry_run_changes_nothing(app: AppContext) -> None:
    t = _seed(app)
    with app.session() as session:
        items_before = session.exec(select(VaultItem).where(
            col(VaultItem.shredded_at).is_(None))).all()
    report = dsr.erase_person(app, email=ALICE, dry_run=True, actor="dpo")
    assert report.dry_run and report.reference is None
    assert set(report.erased) == {t["shared"].id, t["no_recording"].id}
    assert {h.transcript_id for h in report.held} == {t["held"].id, t["meeting_held"].id}
    assert report.recording_links_removed == 2  # m-1 and the blocked m-6 (m-5 has no recording)
    with app.session() as session:
        assert len(session.exec(select(VaultItem).where(
            col(VaultItem.shredded_at).is_(None))).all()) == len(items_before)
        assert session.exec(select(Transcript).where(
            col(Transcript.purged_at).is_not(None))).all() == []
        assert session.exec(select(DsrRequest)).all() == []
        shared = session.get(Transcript, t["shared"].id)
        assert shared is not None and read_content(app, session, shared)


def test_erase_spares_held_transcripts_and_reports_them(app: AppContext) -> None:
    t = _seed(app)
    alice_blind = app.vault.blind_email(ALICE)
    report = dsr.erase_person(app, email=ALICE, actor="dpo", reference="ERASE-1")
    assert report.reference == "ERASE-1" and not report.dry_run
    assert set(report.erased) == {t["shared"].id, t["no_recording"].id}
    reasons = {h.transcript_id: [(r.kind, r.reason) for r in h.holds] for h in report.held}
    assert reasons == {t["held"].id: [("transcript", "Smith v Example Ltd")],
                       t["meeting_held"].id: [("meeting", "board complaint")]}
    assert report.optouts_kept == 1 and any("opt-out" in n for n in report.notes)
    with app.session() as session:
        for key in ("shared", "no_recording"):
            row = session.get(Transcript, t[key].id)
            assert row is not None and row.purged_at is not None
            assert row.purge_reason == "erasure" and row.content_item is None
            for item in (t[key].content_item, t[key].participants_item, t[key].subject_item):
                vault_item = session.get(VaultItem, item)
                assert vault_item is not None and vault_item.shredded_at is not None
                assert vault_item.ciphertext is None and vault_item.wrapped_key is None
                with pytest.raises(ShreddedError):
                    app.vault.open_item(vault_item, owner=payload_owner(vault_item))
        for key in ("held", "meeting_held", "bobs"):
            row = session.get(Transcript, t[key].id)
            assert row is not None and row.purged_at is None
            assert read_content(app, session, row)["segments"]
        # Her blind value is gone from metadata, except where a hold must still find it.
        left = session.exec(select(TranscriptParticipant.transcript_id).where(
            TranscriptParticipant.blind == alice_blind)).all()
        assert set(left) == {t["held"].id, t["meeting_held"].id}
        rec_left = session.exec(select(RecordingParticipant.recording_id).where(
            RecordingParticipant.blind == alice_blind)).all()
        assert set(rec_left) == {t["held"].recording_id, t["meeting_held"].recording_id}
        # Bob's own meeting and his index entries are untouched.
        bob_blind = app.vault.blind_email(BOB)
        assert set(session.exec(select(TranscriptParticipant.transcript_id).where(
            TranscriptParticipant.blind == bob_blind)).all()) == {t["bobs"].id}
        assert len(session.exec(select(OptOut).where(OptOut.email_blind == alice_blind)).all()) == 1
        request = session.get(DsrRequest, "ERASE-1")
        assert request is not None and request.kind == "erasure" and request.status == "completed"
        purged = session.exec(select(AuditEntry).where(
            AuditEntry.action == "transcript.purged")).all()
        assert {e.target_id for e in purged} == set(report.erased)
        assert all(json.loads(e.details)["reason"] == "erasure" for e in purged)
        read = session.exec(select(AuditEntry).where(AuditEntry.action == "hold.reasons_read")).one()
        assert json.loads(read.details)["reference"] == "ERASE-1"
        details = " ".join(e.details for e in session.exec(select(AuditEntry)).all())
        assert "Smith" not in details and "alice" not in details.lower()
    again = dsr.erase_person(app, email=ALICE, actor="dpo", reference="ERASE-1")
    assert again.erased == () and len(again.held) == 2  # idempotent


def test_erased_words_and_keys_are_gone_from_the_sqlite_file(sqlite_app: AppContext,
                                                             home: Path) -> None:
    from tests.conftest import scan_for

    app = sqlite_app
    t = _seed(app)
    with app.session() as session:
        secrets = [bytes(b) for item_id in (t["shared"].content_item, t["shared"].subject_item,
                                            t["no_recording"].content_item)
                   for v in [session.get(VaultItem, item_id)] if v is not None
                   for b in (v.ciphertext, v.wrapped_key) if b]
    assert len(secrets) == 6
    needles = [b"zanzibar quokka", b"xylophone ocelot", *secrets]
    checkpoint(app.engine)
    assert {n for _, n in scan_for(home, needles)} >= set(secrets)  # the scan does find them
    dsr.erase_person(app, email=ALICE, actor="dpo")
    checkpoint(app.engine)
    assert scan_for(home, needles) == []


def test_a_person_hold_spares_everything_and_keeps_the_index(app: AppContext) -> None:
    t = _seed(app)
    holds.set_hold(app, reason="litigation about Alice", email=ALICE, actor="dpo")
    report = dsr.erase_person(app, email=ALICE, actor="dpo")
    assert report.erased == ()
    assert {h.transcript_id for h in report.held} == {t["shared"].id, t["held"].id,
                                                      t["meeting_held"].id, t["no_recording"].id}
    shared = next(h for h in report.held if h.transcript_id == t["shared"].id)
    assert [(r.kind, r.reason) for r in shared.holds] == [("person", "litigation about Alice")]
    with app.session() as session:
        assert session.exec(select(Transcript).where(
            col(Transcript.purged_at).is_not(None))).all() == []
        # The hold must still find her transcripts after the request.
        assert len(session.exec(select(TranscriptParticipant).where(
            TranscriptParticipant.blind == app.vault.blind_email(ALICE))).all()) == 4


def test_a_reference_must_be_an_identifier(app: AppContext) -> None:
    with pytest.raises(InputError, match="reference"):
        dsr.erase_person(app, email=ALICE, reference="alice@example.org", dry_run=True)
