"""Speaker labels in every export, exactly through JSON, and old transcripts unchanged."""

from __future__ import annotations

import html
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.diarization import SPEAKER_SOURCES, SpeakerTurn
from meeting_governance.errors import InputError
from meeting_governance.formats import from_json, render, to_json, to_srt, to_txt, to_vtt
from meeting_governance.transcribe import Segment, TranscriptResult

LABELLED = TranscriptResult(
    segments=(
        Segment(0.0, 2.5, "Good morning, everyone.", "Speaker 1", "unnamed"),
        Segment(2.5, 4.0, "And the plan?", "Speaker 1", "unnamed"),
        Segment(4.5, 7.0, "Q3 <draft> & plan", "Speaker 2", "unnamed"),
        Segment(7.5, 8.0, "mm", None, None),
        Segment(8.0, 9.0, "Thanks.", "Speaker 1", "unnamed"),
    ),
    language="en", language_probability=0.98, duration=9.0, model="tiny.en",
    turns=(SpeakerTurn(0.0, 4.2, "Speaker 1"), SpeakerTurn(4.2, 7.1, "Speaker 2"),
           SpeakerTurn(8.0, 9.0, "Speaker 1")),
)
# Stored by a version without diarization: no speaker fields, no turns.
OLD_DOCUMENT = ('{"version": 1, "model": "tiny.en", "language": "en", "language_probability": 1.0,'
                ' "duration": 3.0, "segments": [{"start": 0.0, "end": 3.0, "text": "Hello"}]}')


def test_webvtt_voice_spans() -> None:
    vtt = to_vtt(LABELLED.segments)

    assert "<v Speaker 1>Good morning, everyone.</v>" in vtt
    assert "<v Speaker 2>Q3 &lt;draft&gt; &amp; plan</v>" in vtt
    assert "\nmm\n" in vtt  # nobody near: a plain cue


def test_srt_and_text_name_the_speaker() -> None:
    assert "Speaker 2: Q3 <draft> & plan" in to_srt(LABELLED.segments)
    assert to_txt(LABELLED.segments) == ("Speaker 1: Good morning, everyone. And the plan?\n"
                                         "Speaker 2: Q3 <draft> & plan\n"
                                         "mm\n"
                                         "Speaker 1: Thanks.\n")


def test_json_has_the_fields_and_the_turns_and_round_trips() -> None:
    document = json.loads(to_json(LABELLED))

    assert document["segments"][2] == {"start": 4.5, "end": 7.0, "text": "Q3 <draft> & plan",
                                       "speaker": "Speaker 2", "speaker_source": "unnamed"}
    assert "speaker" not in document["segments"][3]
    assert document["turns"][1] == {"start": 4.2, "end": 7.1, "speaker": "Speaker 2",
                                    "speaker_source": "unnamed"}
    assert from_json(to_json(LABELLED)) == LABELLED


def test_a_transcript_stored_before_diarization_still_exports() -> None:
    old = from_json(OLD_DOCUMENT)

    assert old.turns == () and old.segments[0].speaker is None
    assert render(old, "vtt").endswith("00:00:00.000 --> 00:00:03.000\nHello\n")
    assert render(old, "txt") == "Hello\n"
    assert json.loads(render(old, "json")) == json.loads(OLD_DOCUMENT)


@pytest.mark.parametrize("bad", [
    '{"speaker": "Speaker 1", "speaker_source": "guess"}',
    '{"speaker": "  "}',
    '{"speaker": 3}',
])
def test_bad_speaker_fields_are_refused(bad: str) -> None:
    segment = json.loads(bad) | {"start": 0.0, "end": 1.0, "text": "x"}
    document = json.loads(OLD_DOCUMENT) | {"segments": [segment]}
    with pytest.raises(InputError, match="not a transcript JSON document"):
        from_json(json.dumps(document))


def test_a_turn_must_name_its_speaker() -> None:
    document = json.loads(OLD_DOCUMENT) | {"turns": [{"start": 0.0, "end": 1.0}]}
    with pytest.raises(InputError, match="not a transcript JSON document"):
        from_json(json.dumps(document))


times = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
labels = st.text(min_size=1).filter(lambda t: bool(t.strip()))
sources = st.sampled_from(SPEAKER_SOURCES)
labelled_segments = st.one_of(
    st.builds(Segment, start=times, end=times, text=st.text()),
    st.builds(Segment, start=times, end=times, text=st.text(), speaker=labels, speaker_source=sources),
)
turns = st.builds(SpeakerTurn, start=times, end=times, speaker=labels, speaker_source=sources)


@given(st.lists(labelled_segments, max_size=5).map(tuple), st.lists(turns, max_size=4).map(tuple))
def test_json_round_trip_with_speakers_is_exact(segments: tuple[Segment, ...],
                                                spoken: tuple[SpeakerTurn, ...]) -> None:
    result = TranscriptResult(segments=segments, language="en", language_probability=1.0,
                              duration=1.0, model="tiny.en", turns=spoken)
    assert from_json(to_json(result)) == result


@given(st.lists(labelled_segments, max_size=5))
def test_a_speaker_label_can_never_break_a_cue(items: list[Segment]) -> None:
    vtt = to_vtt(items)
    for line in vtt.split("\n"):
        match = re.fullmatch(r"<v ([^>]*)>(.*)</v>", line)
        if match:
            annotation, text = match.groups()
            assert "<" not in annotation and "\n" not in annotation
            assert "<" not in text and ">" not in text
            assert html.unescape(annotation).strip()
    cues = [c for c in to_srt(items).strip("\n").split("\n\n") if c]
    assert all(len(cue.split("\n")) == 3 for cue in cues)
