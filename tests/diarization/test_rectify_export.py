"""Speaker labels survive a correction of the words and a data-subject access export."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from meeting_governance import formats, speakers
from meeting_governance.context import AppContext
from meeting_governance.diarization import SpeakerTurn
from meeting_governance.dsr import export_person
from meeting_governance.rectify import editable_text, rectify
from meeting_governance.store import NewTranscript, read_content, store_transcript
from meeting_governance.transcribe import Segment, TranscriptResult
from tests.dsr.helpers import ALICE, T0, person

RESULT = TranscriptResult(
    segments=(Segment(0.0, 2.0, "the quarterly numbres", "Speaker 1", "unnamed"),
              Segment(2.5, 4.0, "are up by ten percent", "Speaker 2", "unnamed")),
    language="en", language_probability=0.99, duration=4.0, model="tiny.en",
    turns=(SpeakerTurn(0.0, 2.2, "Speaker 1"), SpeakerTurn(2.2, 4.0, "Speaker 2")))


def _stored(app: AppContext) -> str:
    with app.session() as session:
        row = store_transcript(app, session, NewTranscript(
            recording_id=None, meeting_id="m-speakers", organizer_id="org", meeting_start=T0,
            meeting_end=T0 + timedelta(minutes=30), subject="Weekly sync",
            participants=[person(ALICE)], content_json=formats.to_json(RESULT), language="en",
            duration_s=4.0, model="tiny.en", retention_policy="standard",
            retain_until=T0 + timedelta(days=90)))
        return row.id


def _document(app: AppContext, transcript_id: str) -> dict:
    from meeting_governance.models import Transcript

    with app.session() as session:
        row = session.get(Transcript, transcript_id)
        assert row is not None
        return read_content(app, session, row)


def test_correcting_words_keeps_who_said_them(app: AppContext) -> None:
    tid = _stored(app)
    edited = editable_text(_document(app, tid)).replace("numbres", "numbers")
    rectify(app, tid, edited, actor="dpo", reason="typo")

    document = _document(app, tid)
    assert [(s["text"], s["speaker"]) for s in document["segments"]] == [
        ("the quarterly numbers", "Speaker 1"), ("are up by ten percent", "Speaker 2")]
    assert document["turns"] == json.loads(formats.to_json(RESULT))["turns"]


def test_a_corrected_label_is_a_correction(app: AppContext) -> None:
    tid = _stored(app)
    fixed = replace(RESULT, segments=(RESULT.segments[0],
                                      replace(RESULT.segments[1], speaker="Speaker 1")))
    report = rectify(app, tid, formats.to_json(fixed), actor="dpo", reason="one person")

    assert report.segments_changed == 1
    assert [s["speaker"] for s in _document(app, tid)["segments"]] == ["Speaker 1", "Speaker 1"]


def _bundle(path: Path) -> tuple[str, dict]:
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
        vtt = bundle.read(next(n for n in names if n.endswith(".vtt"))).decode()
        document = json.loads(bundle.read(next(n for n in names if n.endswith(".json")
                                               and "transcript" in n)))
    return vtt, document


def test_the_access_export_gives_the_person_their_own_labelled_words_only(
        app: AppContext, tmp_path: Path) -> None:
    tid = _stored(app)
    # No label is linked to Alice yet: nobody's words are hers for certain, so none are given.
    vtt, document = _bundle(export_person(app, email=ALICE, out=tmp_path / "a.zip",
                                          actor="dpo").path)
    assert "numbres" not in vtt and "ten percent" not in vtt
    assert "an unidentified participant spoke" in vtt

    # A DPO who listened names Speaker 1 as Alice: her turn comes whole, with its label and
    # how it was named; Speaker 2's words stay out.
    speakers.assign(app, tid, "Speaker 1", ALICE, actor="dpo")
    vtt, document = _bundle(export_person(app, email=ALICE, out=tmp_path / "b.zip",
                                          actor="dpo").path)
    assert "the quarterly numbres" in vtt
    assert "ten percent" not in vtt and "ten percent" not in json.dumps(document)
    assert "an unidentified participant spoke (00:00:02–00:00:04)" in vtt  # Speaker 2: unnamed
    assert document["segments"][0]["yours"] is True
    assert document["segments"][0]["speaker_source"] == "dpo"  # says how the label was named
    assert document["segments"][0]["text"] == "the quarterly numbres"
