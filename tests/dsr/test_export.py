"""Access: the bundle holds exactly the person's meetings and opt-outs, and every decryption
is audited with the request reference."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest
from sqlmodel import col, select

from meeting_governance import dsr, holds
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.models import AuditEntry, DsrRequest, Recording, RecordingParticipant
from meeting_governance.optouts import OptOutRequest, add_optout, revoke_optout

from .helpers import ALICE, BOB, CAROL_OID, make_transcript, person


def _seed(app: AppContext) -> dict[str, str]:
    alice, bob, carol = person(ALICE, name="Alice Liddell"), person(BOB, name="Bob Builder"), \
        person(object_id=CAROL_OID, name="Carol Danvers")
    t1 = make_transcript(app, words=["alpha budget review"], people=[alice, bob], meeting_id="m-1")
    t2 = make_transcript(app, words=["bravo secret merger"], people=[bob], meeting_id="m-2")
    t3 = make_transcript(app, words=["charlie hiring plans"], people=[alice, carol],
                         meeting_id="m-3", subject="Hiring <panel>")
    with app.session() as session:
        mine = add_optout(app, session, OptOutRequest(email=ALICE, name="Alice Liddell",
                                                      meeting="m-9", note="asked by phone"),
                          actor="coordinator:ana")
        add_optout(app, session, OptOutRequest(email=BOB, name="Bob Builder",
                                               note="bob's private note"), actor="coordinator:ana")
    with app.session() as session:
        revoke_optout(app, session, mine.id, actor="coordinator:ana", reason="changed mind")
    holds.set_hold(app, reason="complaint 12", transcript_id=t3.id, actor="dpo")
    with app.session() as session:  # a meeting of hers that was blocked: metadata only
        rec = Recording(graph_recording_id="rec-blocked", meeting_id="m-blocked",
                        organizer_id="00000000-0000-0000-0000-0000000000aa", state="blocked",
                        reason="opted out (1 opt-out)")
        session.add(rec)
        session.flush()
        assert rec.id is not None
        session.add(RecordingParticipant(recording_id=rec.id, blind=app.vault.blind_email(ALICE)))
    return {"t1": t1.id, "t2": t2.id, "t3": t3.id, "optout": mine.id}


def _zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def test_export_holds_exactly_the_persons_meetings_and_optouts(app: AppContext,
                                                               tmp_path: Path) -> None:
    ids = _seed(app)
    out = tmp_path / "alice.zip"
    report = dsr.export_person(app, email="Alice.Liddell@Example.org", out=out, actor="dpo")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    files = _zip(out)
    manifest = json.loads(files["manifest.json"])
    assert manifest["reference"] == report.reference
    assert manifest["identities_searched"] == {"email": ALICE}
    assert {m["transcript_id"] for m in manifest["meetings"]} == {ids["t1"], ids["t3"]}
    assert set(report.transcript_ids) == {ids["t1"], ids["t3"]}
    assert manifest["counts"] == {"meetings": 3, "transcripts": 2, "optouts": 1,
                                  "under_legal_hold": 1}
    assert [(r["meeting_id"], r["state"]) for r in manifest["recordings_not_transcribed"]] == \
        [("m-blocked", "blocked")]
    by_id = {m["transcript_id"]: m for m in manifest["meetings"]}
    assert by_id[ids["t3"]]["legal_hold"] is True and by_id[ids["t1"]]["legal_hold"] is False
    assert by_id[ids["t3"]]["subject"] == "Hiring <panel>"
    assert by_id[ids["t1"]]["retention_policy"] == "standard"
    assert by_id[ids["t1"]]["retain_until"] and by_id[ids["t1"]]["meeting_start"]
    assert [p["email"] for p in by_id[ids["t1"]]["you_as_participant"]] == [ALICE]
    assert files[f"transcripts/{ids['t1']}.vtt"].startswith(b"WEBVTT")
    # No speaker label is attributed to her, so nobody's words are hers for certain: the
    # default export gives when someone spoke, never what (see tests/dsr/test_speakers_export).
    vtt = files[f"transcripts/{ids['t1']}.vtt"].decode()
    assert "alpha budget review" not in vtt
    assert "an unidentified participant spoke (00:00:00–00:00:01)" in vtt
    assert json.loads(files[f"transcripts/{ids['t3']}.json"])["segments"][0]["text"] == \
        "an unidentified participant spoke (00:00:00–00:00:01)"
    optouts = json.loads(files["optouts.json"])
    assert [o["id"] for o in optouts] == [ids["optout"]]
    assert optouts[0]["note"] == "asked by phone" and optouts[0]["revoked_at"]
    assert [h["action"] for h in optouts[0]["history"]] == ["optout.add", "optout.revoke"]
    everything = b"".join(files.values()).lower()
    for foreign in (b"bravo secret", b"bob.builder", b"bob builder", b"private note",
                    b"carol danvers", CAROL_OID.encode()):
        assert foreign not in everything, foreign
    with app.session() as session:
        reads = session.exec(select(AuditEntry).where(
            col(AuditEntry.action).in_(["transcript.read", "optout.read"]))).all()
        assert sorted(e.target_id for e in reads) == sorted([ids["t1"], ids["t3"], ids["optout"]])
        assert all(json.loads(e.details)["reference"] == report.reference for e in reads)
        row = session.get(DsrRequest, report.reference)
        assert row is not None and row.kind == "access" and row.status == "completed"
        export = session.exec(select(AuditEntry).where(AuditEntry.action == "dsr.export")).one()
        assert json.loads(export.details)["sha256"] == report.sha256
        assert b"alice" not in "".join(e.details for e in session.exec(
            select(AuditEntry)).all()).encode().lower()


def test_export_by_object_id_and_nothing_held(app: AppContext, tmp_path: Path) -> None:
    ids = _seed(app)
    report = dsr.export_person(app, object_id=CAROL_OID, out=tmp_path / "c.zip",
                               reference="REQ-7")
    assert report.reference == "REQ-7" and report.transcript_ids == (ids["t3"],)
    empty = dsr.export_person(app, email="nobody@example.org", out=tmp_path / "n.zip")
    manifest = json.loads(_zip(tmp_path / "n.zip")["manifest.json"])
    assert empty.transcript_ids == () and manifest["meetings"] == [] and \
        manifest["counts"]["optouts"] == 0


def test_export_refuses_to_overwrite_and_checks_the_reference(app: AppContext,
                                                              tmp_path: Path) -> None:
    _seed(app)
    out = tmp_path / "x.zip"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists"):
        dsr.export_person(app, email=ALICE, out=out)
    assert out.read_bytes() == b"keep me"
    with app.session() as session:
        dsr.open_request(app, session, "access", email=BOB, reference="BOB-1")
        dsr.open_request(app, session, "erasure", email=ALICE, reference="ALICE-E")
    with pytest.raises(InputError, match="another identity"):
        dsr.export_person(app, email=ALICE, out=tmp_path / "y.zip", reference="BOB-1")
    with pytest.raises(InputError, match="erasure request"):
        dsr.export_person(app, email=ALICE, out=tmp_path / "y.zip", reference="ALICE-E")
    assert not (tmp_path / "y.zip").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_find_person_counts_without_decrypting(app: AppContext) -> None:
    ids = _seed(app)
    summary = dsr.find_person(app, email=ALICE)
    assert (summary.transcripts, summary.held, summary.optouts, summary.active_optouts) == \
        (2, 1, 1, 0)
    assert summary.subject_blind == app.vault.blind_email(ALICE)
    with app.session() as session:
        assert session.exec(select(AuditEntry).where(
            AuditEntry.action == "transcript.read")).all() == []
    assert dsr.find_person(app, object_id=CAROL_OID).transcripts == 1
    assert ids
