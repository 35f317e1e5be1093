"""Names for speaker labels (attendance, Teams' timeline, a DPO), per-person redaction and the
export of one's own words, on real sealed transcripts in SQLite and PostgreSQL."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from meeting_governance import dsr, formats, speakers
from meeting_governance.context import AppContext
from meeting_governance.diarization.turns import SpeakerTurn
from meeting_governance.dsr.redaction import split_turns
from meeting_governance.errors import InputError, NotFoundError, ShreddedError
from meeting_governance.models import AuditEntry, DsrDecision, DsrRequest, SpeakerLink, Transcript, VaultItem
from meeting_governance.receipts import verify_receipt
from meeting_governance.store import content_owner, read_content

from ..conftest import scan_for
from .helpers import (
    ALICE,
    ALICE_WORDS,
    BOB,
    BOB_WORDS,
    CAROL_OID,
    PEOPLE,
    T0,
    TIMELINE_TEXT,
    UNNAMED_WORDS,
)
from .helpers import (
    labelled_result as _result,
)
from .helpers import (
    labelled_transcript as _store,
)


def _name(app: AppContext, row: Transcript, *namings: speakers.Naming) -> None:
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None
        speakers.record(app, session, fresh, namings)


def _zip(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as bundle:
        return {n: bundle.read(n).decode() for n in bundle.namelist()}


def _counts(app: AppContext) -> tuple[int, int, int]:
    with app.session() as session:
        return (session.exec(select(func.count()).select_from(SpeakerLink)).one(),
                session.exec(select(func.count()).select_from(AuditEntry)).one(),
                session.exec(select(func.count()).select_from(DsrDecision)).one())


# -- naming rules (pure) ----------------------------------------------------------------------
def test_attendance_names_a_label_only_when_one_identified_attendee_was_present() -> None:
    turns = [SpeakerTurn(0, 4, "Speaker 1"), SpeakerTurn(60, 70, "Speaker 1"),
             SpeakerTurn(65, 75, "Speaker 2"), SpeakerTurn(100, 110, "Speaker 3")]
    presences = [speakers.Presence(0, True, ((0, 200),)),       # there all along
                 speakers.Presence(1, True, ((50, 200),)),      # joined at 50 s
                 speakers.Presence(2, False, ((90, 120),))]     # a phone line, 90-120 s
    named = speakers.name_by_attendance(turns, presences)
    # Speaker 1 spoke at 0-4 s, when only participant 0 was there: it is participant 0.
    assert [(n.label, n.key, n.method) for n in named] == [("Speaker 1", 0, "attendance")]
    assert "the only attendee present during all 2 turns" in named[0].evidence
    # Speaker 2: two people present -> unnamed. Speaker 3: the phone line is a candidate too.
    alone = speakers.name_by_attendance([SpeakerTurn(95, 99, "Speaker 3")],
                                        [speakers.Presence(2, False, ((90, 120),))])
    assert alone == []  # the only one present is not identified: never a name
    assert speakers.name_by_attendance(turns, []) == []


def test_teams_timeline_maps_speakers_by_overlap_and_drops_the_words() -> None:
    vtt = "\n".join([
        "WEBVTT", "",
        "00:00:00.000 --> 00:00:04.000",
        json.dumps({"startDateTime": T0.isoformat(),
                    "endDateTime": (T0 + timedelta(seconds=4)).isoformat(),
                    "speakerName": "Alice Liddell", "spokenText": TIMELINE_TEXT,
                    "spokenLanguage": "en-us"}), "",
        "00:00:04.000 --> 00:00:10.000",
        json.dumps({"startDateTime": (T0 + timedelta(seconds=4)).isoformat(),
                    "endDateTime": (T0 + timedelta(seconds=10)).isoformat(),
                    "speakerName": "Twin Name", "spokenText": TIMELINE_TEXT,
                    "spokenLanguage": "en-us"}), "",
        "00:00:10.000 --> 00:00:11.000", "{not json", ""])
    cues = speakers.parse_timeline(vtt, T0)
    assert cues == [speakers.TimelineCue(0.0, 4.0, "Alice Liddell"),
                    speakers.TimelineCue(4.0, 10.0, "Twin Name")]
    assert TIMELINE_TEXT not in repr(cues)
    people = [{"kind": "user", "email": ALICE, "display_name": "Alice Liddell"},
              {"kind": "user", "email": BOB, "display_name": "Twin Name"},
              {"kind": "user", "object_id": CAROL_OID, "display_name": "twin name"}]
    names = speakers.display_names(people)
    assert names == {"alice liddell": 0}  # a name two people share names nobody
    turns = [SpeakerTurn(0, 4, "Speaker 1"), SpeakerTurn(4, 10, "Speaker 2"),
             SpeakerTurn(20, 30, "Speaker 3")]
    named = speakers.name_by_timeline(turns, cues, names)
    assert [(n.label, n.key, n.method) for n in named] == [("Speaker 1", 0, "teams_timeline")]


def test_redaction_rule_counts_uncertain_turns_by_policy() -> None:
    segs = [{"speaker": "A", "text": "a"}, {"speaker": "B", "text": "b"},
            {"speaker": "C", "text": "c"}, {"text": "no label"}]
    kept, counts = split_turns(segs, {"A"}, {"B"}, "redact")
    assert [s["text"] for s in kept] == ["b"]
    assert counts == {"own": 1, "uncertain_removed": 2, "uncertain_kept": 0, "kept": 1}
    kept, counts = split_turns(segs, {"A"}, {"B"}, "keep")
    assert [s["text"] for s in kept] == ["b", "c", "no label"]
    assert counts == {"own": 1, "uncertain_removed": 0, "uncertain_kept": 2, "kept": 1}


# -- stored names, shown with how they were named ----------------------------------------------
def test_names_show_with_their_method_and_unnamed_stay_speaker_n(app: AppContext) -> None:
    row = _store(app)
    _name(app, row, speakers.Naming("Speaker 2", 1, "attendance", "the only attendee present"))
    link = speakers.assign(app, row.id, "Speaker 1", ALICE.upper(), actor="dpo:dana",
                           note="introduced herself at 00:00:01")
    assert link.method == "dpo" and link.assigned_by == "dpo:dana"
    # An automatic source never replaces a DPO's naming.
    _name(app, row, speakers.Naming("Speaker 1", 1, "attendance", "x"))
    views = {v.label: v for v in speakers.speakers(app, row.id)}
    assert (views["Speaker 1"].name, views["Speaker 1"].method) == ("Alice Liddell", "dpo")
    assert (views["Speaker 2"].name, views["Speaker 2"].method) == ("Bob Builder", "attendance")
    assert (views["Speaker 3"].shown, views["Speaker 3"].method) == ("Speaker 3", "unnamed")
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None
        segments = speakers.named_segments(_result().segments,
                                           speakers.names_for(app, session, fresh))
        notes = speakers.naming_notes(speakers.names_for(app, session, fresh))
        actions = session.exec(select(AuditEntry.action).where(
            AuditEntry.target_id == row.id)).all()
    vtt = formats.to_vtt(segments, notes)
    assert "<v Alice Liddell>" in vtt and "<v Bob Builder>" in vtt and "<v Speaker 3>" in vtt
    assert "NOTE Alice Liddell (diarization label Speaker 1) was named by dpo" in vtt
    assert "NOTE Bob Builder (diarization label Speaker 2) was named by attendance" in vtt
    assert actions.count("speaker.named") == 2  # the refused automatic one is not recorded


def test_naming_bad_input_is_refused_and_changes_nothing(app: AppContext) -> None:
    row = _store(app)
    before = _counts(app)
    with pytest.raises(NotFoundError, match=r"has no speaker 'Speaker 9'.*Speaker 1, Speaker 2"):
        speakers.assign(app, row.id, "Speaker 9", ALICE)
    with pytest.raises(NotFoundError, match="not a participant of this meeting"):
        speakers.assign(app, row.id, "Speaker 1", "stranger@example.org")
    with pytest.raises(InputError, match=r"not a valid|e-mail|address"):
        speakers.assign(app, row.id, "Speaker 1", "not an address")
    with pytest.raises(NotFoundError, match="does not exist"):
        speakers.assign(app, "nope", "Speaker 1", ALICE)
    assert _counts(app) == before


# -- redaction -------------------------------------------------------------------------------
def test_redaction_removes_exactly_the_persons_turns(app: AppContext, tmp_path: Path) -> None:
    row = _store(app)
    other = _store(app, "m-2")
    _name(app, row, speakers.Naming("Speaker 1", 0, "attendance", "alone"),
          speakers.Naming("Speaker 2", 1, "attendance", "alone"))
    _name(app, other, speakers.Naming("Speaker 2", 1, "attendance", "alone"))
    with app.session() as session:
        old_item = session.get(Transcript, row.id).content_item  # type: ignore[union-attr]

    report = dsr.redact_person(app, email=ALICE, reference="RED-1", actor="dpo")

    assert report.policy == "redact"
    by_id = {r.transcript_id: r for r in report.redacted}
    assert set(by_id) == {row.id, other.id}  # every transcript of every meeting she attended
    assert (by_id[row.id].own_turns, by_id[row.id].uncertain_removed, by_id[row.id].kept) == \
        (2, 1, 1)
    # In the other meeting no label is hers: "redact when in doubt" removes the unnamed ones.
    assert (by_id[other.id].own_turns, by_id[other.id].uncertain_removed) == (0, 3)
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None and fresh.version == 2 and fresh.content_item != old_item
        texts = [s["text"] for s in read_content(app, session, fresh)["segments"]]
        assert texts == [BOB_WORDS]  # the others' words, unchanged
        with pytest.raises(ShreddedError):
            app.vault.open(session, old_item or "", owner=content_owner(row.id))
        item = session.get(VaultItem, old_item)
        assert item is not None and item.ciphertext is None and item.wrapped_key is None
        assert [v.name for v in speakers.names_for(app, session, fresh).values()] == \
            ["Bob Builder"]
    assert report.keys_destroyed  # the old version's epoch key went (backups too)
    assert report.receipt is not None
    check = verify_receipt(report.receipt, app.keys.signing_key().public_key())
    assert check.ok and check.signer_checked, check.problem
    receipt = json.loads(report.receipt.read_text())
    assert receipt["kind"] == "redaction" and receipt["reference"] == "RED-1"
    # Gone from every later version and export, even a full one.
    out = tmp_path / "bob.zip"
    dsr.export_person(app, email=BOB, out=out, full_transcript=True, reason="court order 7")
    text = "\n".join(_zip(out).values())
    assert BOB_WORDS in text
    assert all(w not in text for w in ALICE_WORDS)
    # She also left the participant lists and their index: nothing of hers is found again.
    again = dsr.redact_person(app, email=ALICE, reference="RED-2")
    assert again.redacted == () and again.unchanged == ()
    assert dsr.find_person(app, email=ALICE).transcripts == 0
    assert dsr.find_person(app, email=BOB).transcripts == 2


def test_keep_policy_keeps_uncertain_turns_and_counts_them(app: AppContext) -> None:
    row = _store(app)
    _name(app, row, speakers.Naming("Speaker 1", 0, "attendance", "alone"))
    report = dsr.redact_person(app, email=ALICE, reference="RED-3", policy="keep")
    assert [(r.own_turns, r.uncertain_kept, r.uncertain_removed) for r in report.redacted] == \
        [(2, 2, 0)]
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None
        texts = [s["text"] for s in read_content(app, session, fresh)["segments"]]
    assert texts == [BOB_WORDS, UNNAMED_WORDS]


def test_redaction_leaves_no_old_words_in_the_sqlite_file(sqlite_app: AppContext) -> None:
    app = sqlite_app
    row = _store(app)
    _name(app, row, speakers.Naming("Speaker 1", 0, "attendance", "alone"))
    dsr.redact_person(app, email=ALICE, reference="RED-4")
    needles = [w.encode() for w in (*ALICE_WORDS, BOB_WORDS, ALICE, "Alice Liddell")]
    assert scan_for(app.settings.home, needles) == []


def test_withdrawal_can_redact_past_transcripts(app: AppContext) -> None:
    row = _store(app)
    _name(app, row, speakers.Naming("Speaker 2", 1, "attendance", "alone"))
    withdrawal = dsr.withdraw_consent(app, email=BOB, reference="W-1")
    report = dsr.redact_person(app, email=BOB, reference=withdrawal.reference,
                               kind="withdrawal", policy="keep")
    assert [r.own_turns for r in report.redacted] == [1] and report.receipt is not None
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None
        texts = [s["text"] for s in read_content(app, session, fresh)["segments"]]
    assert BOB_WORDS not in texts and ALICE_WORDS[0] in texts


# -- the export of one's own words ------------------------------------------------------------
def test_export_gives_own_words_and_only_times_for_the_others(app: AppContext,
                                                               tmp_path: Path) -> None:
    row = _store(app)
    _name(app, row, speakers.Naming("Speaker 1", 0, "attendance", "alone"),
          speakers.Naming("Speaker 2", 1, "teams_timeline", "Teams"))
    out = tmp_path / "alice.zip"
    report = dsr.export_person(app, email=ALICE, out=out)
    files = _zip(out)
    text = "\n".join(files.values())
    assert all(w in text for w in ALICE_WORDS)
    assert BOB_WORDS not in text and UNNAMED_WORDS not in text
    assert "Bob Builder" not in text and "Speaker 2" not in text
    vtt = files[f"transcripts/{row.id}.vtt"]
    assert "another participant spoke (00:00:04–00:00:10)" in vtt
    assert "an unidentified participant spoke (00:00:14–00:00:18)" in vtt
    assert f"<v Alice Liddell>{ALICE_WORDS[0]}</v>" in vtt
    assert "NOTE Alice Liddell (diarization label Speaker 1) was named by attendance" in vtt
    document = json.loads(files[f"transcripts/{row.id}.json"])
    assert document["your_speaker_labels"] == ["Speaker 1"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["full_transcript"] is False
    with app.session() as session:
        assert [v.full_transcript for v in dsr.list_requests(app, session)
                if v.reference == report.reference] == [False]
    # The full transcript, chosen with a reason: every word, but the others stay unnamed.
    full = tmp_path / "alice-full.zip"
    dsr.export_person(app, email=ALICE, out=full, full_transcript=True, reason="her request")
    files = _zip(full)
    vtt = files[f"transcripts/{row.id}.vtt"]
    assert BOB_WORDS in vtt and UNNAMED_WORDS in vtt
    assert f"<v Alice Liddell>{ALICE_WORDS[0]}</v>" in vtt and "<v Speaker 2>" in vtt
    assert "Bob Builder" not in "\n".join(files.values())


def test_full_transcript_needs_a_reason_and_is_recorded(app: AppContext, tmp_path: Path) -> None:
    row = _store(app)
    before = _counts(app)
    with pytest.raises(InputError, match="--full-transcript needs --reason"):
        dsr.export_person(app, email=ALICE, out=tmp_path / "a.zip", full_transcript=True,
                          reason="   ")
    with pytest.raises(InputError, match="--reason goes with --full-transcript"):
        dsr.export_person(app, email=ALICE, out=tmp_path / "a.zip", reason="because")
    assert _counts(app) == before and not (tmp_path / "a.zip").exists()
    with app.session() as session:
        assert session.exec(select(func.count()).select_from(DsrRequest)).one() == 0

    reason = "Subject asked for the whole meeting; tribunal case TB-88"
    report = dsr.export_person(app, email=ALICE, out=tmp_path / "a.zip", full_transcript=True,
                               reason=reason, actor="dpo:dana")
    text = "\n".join(_zip(tmp_path / "a.zip").values())
    assert BOB_WORDS in text and UNNAMED_WORDS in text and ALICE_WORDS[0] in text
    assert "<v Speaker 1>" in text  # nobody named: labels stay as they are
    decisions = dsr.decisions(app, report.reference)
    assert [(d.full_transcript, d.reason, d.decided_by) for d in decisions] == \
        [(True, reason, "dpo:dana")]
    with app.session() as session:
        views = dsr.list_requests(app, session)
        actions = session.exec(select(AuditEntry.action).where(
            AuditEntry.target_id == report.reference)).all()
    assert [v.full_transcript for v in views] == [True]
    assert "dsr.full_transcript" in actions and "dsr.decision_read" in actions
    with pytest.raises(NotFoundError):
        dsr.decisions(app, "NOPE-1")
    assert row.id in report.transcript_ids


def test_the_sealed_reason_is_not_in_the_database_file(sqlite_app: AppContext,
                                                       tmp_path: Path) -> None:
    _store(sqlite_app)
    reason = "tribunal zanzibar-4471"
    out = tmp_path / "x.zip"
    dsr.export_person(sqlite_app, email=ALICE, out=out, full_transcript=True, reason=reason)
    out.unlink()
    assert scan_for(sqlite_app.settings.home, [reason.encode()]) == []


def test_a_timeline_naming_keeps_no_spoken_text(sqlite_app: AppContext,
                                                caplog: pytest.LogCaptureFixture) -> None:
    app = sqlite_app
    row = _store(app)
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n" + json.dumps({
        "startDateTime": T0.isoformat(), "endDateTime": (T0 + timedelta(seconds=4)).isoformat(),
        "speakerName": "Alice Liddell", "spokenText": TIMELINE_TEXT}) + "\n"
    cues = speakers.parse_timeline(vtt, T0)
    people = [{"kind": p.kind.value, "email": p.email, "object_id": p.object_id,
               "display_name": p.display_name} for p in PEOPLE]
    namings = speakers.name_by_timeline(
        [SpeakerTurn(0, 4, "Speaker 1"), SpeakerTurn(10, 20, "Speaker 1")], cues,
        speakers.display_names(people))
    assert namings == []  # Teams covers under half of Speaker 1's speech: not enough
    namings = speakers.name_by_timeline([SpeakerTurn(0, 4, "Speaker 1")], cues,
                                        speakers.display_names(people))
    _name(app, row, *namings)
    assert {v.label: v.method for v in speakers.speakers(app, row.id)}["Speaker 1"] == \
        "teams_timeline"
    assert scan_for(app.settings.home, [TIMELINE_TEXT.encode(), b"Alice Liddell"]) == []
    assert TIMELINE_TEXT not in caplog.text
