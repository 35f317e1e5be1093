"""Who spoke when, on real speech of different people, through the transcriber's own chunks."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from meeting_governance import formats
from meeting_governance.audio import SAMPLE_RATE
from meeting_governance.config import TranscriptionSettings
from meeting_governance.diarization import Diarization, SpeakerTurn
from meeting_governance.transcribe import Transcriber, TranscriptResult, iter_chunks

from .conftest import A, B, C, D, Joined, join, write_wav

pytestmark = pytest.mark.slow


def diarize(diarization: Diarization, path: Path, chunk_seconds: float = 120.0
            ) -> tuple[SpeakerTurn, ...]:
    diarizer = diarization.diarizer()
    for chunk in iter_chunks(path, chunk_seconds):
        diarizer.feed(chunk)
    return diarizer.finish()


def label_at(turns: tuple[SpeakerTurn, ...], moment: float) -> str | None:
    return next((t.speaker for t in turns if t.start <= moment < t.end), None)


def labels_of_spans(joined: Joined, turns: tuple[SpeakerTurn, ...]) -> list[str]:
    """The label that covers most of each clip."""
    out = []
    for start, end, _ in joined.spans:
        votes: Counter[str] = Counter()
        for turn in turns:
            votes[turn.speaker] += max(0.0, min(end, turn.end) - max(start, turn.start))
        out.append(votes.most_common(1)[0][0] if votes else "")
    return out


def assert_one_label_per_person(joined: Joined, turns: tuple[SpeakerTurn, ...]) -> None:
    labels = labels_of_spans(joined, turns)
    people = [who for _, _, who in joined.spans]
    by_person = {p: {lab for lab, q in zip(labels, people, strict=True) if q == p} for p in people}
    assert all(len(found) == 1 for found in by_person.values()), by_person
    assert len({next(iter(v)) for v in by_person.values()}) == len(by_person), by_person


def test_four_people_get_four_labels_that_follow_them(diarization: Diarization,
                                                      four_people: Joined) -> None:
    turns = diarize(diarization, four_people.path)

    assert_one_label_per_person(four_people, turns)
    assert {t.speaker for t in turns} == {"Speaker 1", "Speaker 2", "Speaker 3", "Speaker 4"}
    assert turns[0].speaker == "Speaker 1"  # numbered in order of first appearance
    # Each change of speaker is found near where it happens (within half a second).
    for (_, end, who), (start, _, nxt) in zip(four_people.spans, four_people.spans[1:],
                                              strict=False):
        assert who != nxt
        assert label_at(turns, end - 0.6) != label_at(turns, start + 0.6)
    # Turns are ordered, do not overlap, and stay on the recording.
    for first, second in itertools.pairwise(turns):
        assert first.start < first.end <= second.start
    assert turns[-1].end <= four_people.spans[-1][1] + 1.5


def test_a_change_of_speaker_without_a_pause_is_found(diarization: Diarization,
                                                      tmp_path: Path) -> None:
    joined = join(tmp_path / "no-pause.wav", [D, A, D], pause_s=0.0)
    turns = diarize(diarization, joined.path)

    assert_one_label_per_person(joined, turns)
    for boundary in (joined.spans[0][1], joined.spans[1][1]):
        changes = [t.start for t in turns if abs(t.start - boundary) < 3.0]
        assert changes and min(abs(c - boundary) for c in changes) < 1.0


def test_the_same_result_whatever_the_chunk_size(diarization: Diarization,
                                                 four_people: Joined) -> None:
    """Chunks are how the transcriber bounds memory; who spoke must not depend on them."""
    small = diarize(diarization, four_people.path, chunk_seconds=30.0)
    assert_one_label_per_person(four_people, small)


def test_one_person_is_one_speaker(diarization: Diarization, tmp_path: Path) -> None:
    joined = join(tmp_path / "one.wav", [D, D, D], pause_s=0.8)
    assert {t.speaker for t in diarize(diarization, joined.path)} == {"Speaker 1"}


def test_a_recording_without_speech_has_no_turns(diarization: Diarization, tmp_path: Path,
                                                 tiny_with_speakers: Transcriber) -> None:
    rng = np.random.default_rng(0)
    hiss = (rng.normal(scale=0.002, size=20 * SAMPLE_RATE)).astype(np.float32)
    path = write_wav(tmp_path / "hiss.wav", hiss)

    assert diarize(diarization, path) == ()
    result = tiny_with_speakers.transcribe(path)
    assert result.turns == ()
    assert "speaker" not in formats.to_json(result)


def test_transcript_segments_carry_the_speaker_who_said_them(
        tiny_with_speakers: Transcriber, four_people: Joined) -> None:
    result = tiny_with_speakers.transcribe(four_people.path)

    assert result.turns and len({t.speaker for t in result.turns}) == 4
    labelled = [s for s in result.segments if s.speaker]
    assert len(labelled) == len(result.segments)
    assert {s.speaker_source for s in labelled} == {"unnamed"}
    # A person's segments all carry one label, and no two people share one.
    label_of: dict[str, set[str]] = {}
    for segment in result.segments:
        who = four_people.speaker_at((segment.start + segment.end) / 2)
        if who is not None:
            label_of.setdefault(who, set()).add(segment.speaker or "")
    assert all(len(labels) == 1 for labels in label_of.values()), label_of
    assert len({next(iter(v)) for v in label_of.values()}) == 4


def test_labels_survive_storage_and_every_export(tiny_with_speakers: Transcriber,
                                                 four_people: Joined) -> None:
    result = tiny_with_speakers.transcribe(four_people.path)
    stored = formats.to_json(result)
    back = formats.from_json(stored)

    assert back == result
    document = json.loads(stored)
    assert set(document) == {"version", "model", "language", "language_probability", "duration",
                             "segments", "turns"}  # no voice embeddings, ever
    assert {k for s in document["segments"] for k in s} == {"start", "end", "text", "speaker",
                                                            "speaker_source"}
    vtt = formats.render(back, "vtt")
    srt = formats.render(back, "srt")
    txt = formats.render(back, "txt")
    for segment in back.segments:
        assert f"<v {segment.speaker}>" in vtt
        assert f"{segment.speaker}: " in srt
    assert vtt.count("<v Speaker ") == len(back.segments)
    # Text: one line per turn of speech, each starting with its speaker.
    lines = txt.splitlines()
    assert all(line.startswith("Speaker ") for line in lines)
    assert len(lines) >= 8  # A B C D A B C D


def test_without_diarization_nothing_changes(tmp_path: Path, tiny: Transcriber) -> None:
    assert tiny.diarization is None
    plain = Transcriber(TranscriptionSettings(), model=tiny.model)
    path = join(tmp_path / "two.wav", [B, C], pause_s=1.0).path
    result = plain.transcribe(path)

    assert result.turns == () and all(s.speaker is None for s in result.segments)
    assert "<v " not in formats.render(result, "vtt")
    assert isinstance(formats.from_json(formats.to_json(result)), TranscriptResult)
