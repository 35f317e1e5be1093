"""VTT, SRT, TXT and JSON exports: shapes, timestamps, escaping and the JSON round trip."""

from __future__ import annotations

import html
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.errors import InputError
from meeting_governance.formats import (
    FORMATS,
    escape_vtt,
    from_json,
    render,
    srt_timestamp,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
    vtt_timestamp,
)
from meeting_governance.transcribe import Segment, TranscriptResult

RESULT = TranscriptResult(
    segments=(
        Segment(0.0, 2.5, " Good morning, everyone."),
        Segment(2.5, 61.004, "Q3 <draft> & plan --> next"),
        Segment(3661.5, 3663.0, "Line one\n\nline two"),
    ),
    language="en",
    language_probability=0.98,
    duration=3663.0,
    model="tiny.en",
)

VTT_TIME = r"\d{2,}:\d{2}:\d{2}\.\d{3}"
SRT_TIME = r"\d{2,}:\d{2}:\d{2},\d{3}"


@pytest.mark.parametrize(
    ("seconds", "vtt", "srt"),
    [
        (0.0, "00:00:00.000", "00:00:00,000"),
        (1.0005, "00:00:01.000", "00:00:01,000"),
        (61.004, "00:01:01.004", "00:01:01,004"),
        (3661.5, "01:01:01.500", "01:01:01,500"),
        (59.9996, "00:01:00.000", "00:01:00,000"),
        (-0.2, "00:00:00.000", "00:00:00,000"),
    ],
)
def test_timestamps(seconds: float, vtt: str, srt: str) -> None:
    assert vtt_timestamp(seconds) == vtt
    assert srt_timestamp(seconds) == srt


def test_vtt_shape() -> None:
    text = to_vtt(RESULT.segments)
    header, *cues = text.rstrip("\n").split("\n\n")

    assert header == "WEBVTT"
    assert len(cues) == 3
    for number, cue in enumerate(cues, start=1):
        ident, timing, payload = cue.split("\n")
        assert ident == str(number)
        assert re.fullmatch(rf"{VTT_TIME} --> {VTT_TIME}", timing)
        assert payload
    assert cues[1].split("\n")[2] == "Q3 &lt;draft&gt; &amp; plan --&gt; next"
    assert cues[2].split("\n")[1] == "01:01:01.500 --> 01:01:03.000"
    assert cues[2].split("\n")[2] == "Line one line two"
    assert to_vtt(()) == "WEBVTT\n"


def test_srt_shape() -> None:
    cues = to_srt(RESULT.segments).rstrip("\n").split("\n\n")

    assert len(cues) == 3
    ident, timing, payload = cues[1].split("\n")
    assert ident == "2"
    assert timing == "00:00:02,500 --> 00:01:01,004"
    assert re.fullmatch(rf"{SRT_TIME} --> {SRT_TIME}", timing)
    assert payload == "Q3 <draft> & plan --> next"


def test_txt_is_the_words_one_segment_a_line() -> None:
    assert to_txt(RESULT.segments) == (
        "Good morning, everyone.\nQ3 <draft> & plan --> next\nLine one line two\n"
    )


def test_json_round_trip_and_shape() -> None:
    document = json.loads(to_json(RESULT))

    assert document["version"] == 1
    assert document["segments"][0] == {"start": 0.0, "end": 2.5, "text": " Good morning, everyone."}
    assert from_json(to_json(RESULT)) == RESULT


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        '{"version": 2}',
        '{"version": 1, "segments": [], "language": "en"}',
        '{"version": 1, "segments": [{"start": "0", "end": 1, "text": "x"}], "language": "en",'
        ' "language_probability": 1, "duration": 1, "model": "m"}',
        '{"version": 1, "segments": [1], "language": "en",'
        ' "language_probability": 1, "duration": 1, "model": "m"}',
    ],
)
def test_from_json_rejects_what_to_json_did_not_write(bad: str) -> None:
    with pytest.raises(InputError, match="not a transcript JSON document"):
        from_json(bad)


def test_render_every_format_and_refuse_others() -> None:
    assert FORMATS == ("vtt", "srt", "json", "txt")
    for fmt in FORMATS:
        assert render(RESULT, fmt)
    assert render(RESULT, "VTT").startswith("WEBVTT")
    with pytest.raises(InputError, match="unknown transcript format 'docx'; choose one of vtt"):
        render(RESULT, "docx")


@given(st.text())
def test_vtt_escaping_is_safe_and_reversible(text: str) -> None:
    escaped = escape_vtt(text)

    assert "<" not in escaped and ">" not in escaped and "-->" not in escaped
    assert "\n" not in escaped and "\r" not in escaped
    assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", escaped)
    assert html.unescape(escaped) == " ".join(text.split())


times = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
segments = st.builds(Segment, start=times, end=times, text=st.text())


@given(
    st.builds(
        TranscriptResult,
        segments=st.lists(segments, max_size=5).map(tuple),
        language=st.text(max_size=5),
        language_probability=st.floats(0, 1),
        duration=times,
        model=st.text(max_size=20),
    )
)
def test_json_round_trip_is_exact(result: TranscriptResult) -> None:
    assert from_json(to_json(result)) == result


@given(st.lists(segments, max_size=5))
def test_every_cue_keeps_its_shape(items: list[Segment]) -> None:
    lines = to_vtt(items).split("\n")
    srt_cues = [c for c in to_srt(items).strip("\n").split("\n\n") if c]

    timings = [line for line in lines if " --> " in line]
    assert len(timings) == sum(1 for s in items if s.text.split())
    assert all(re.fullmatch(rf"{VTT_TIME} --> {VTT_TIME}", t) for t in timings)
    assert len(srt_cues) == len(timings)
    assert all(len(cue.split("\n")) == 3 for cue in srt_cues)
