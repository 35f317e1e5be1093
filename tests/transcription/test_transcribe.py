"""The real tiny.en model on real speech: words, language, timestamps, chunking, progress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jiwer
import numpy as np
import pytest

from meeting_governance.audio import SAMPLE_RATE
from meeting_governance.transcribe import Transcriber, TranscriptResult

from .conftest import MEDIA, Clip, LongInput, clips, demo_media, normalise, write_wav

pytestmark = pytest.mark.slow


def wer(reference: str, result: TranscriptResult) -> float:
    return float(jiwer.wer(normalise(reference), normalise(result.text)))


def assert_timeline(result: TranscriptResult) -> None:
    assert result.segments, "no speech found"
    previous_start = 0.0
    for segment in result.segments:
        assert 0.0 <= segment.start <= segment.end <= result.duration + 0.05
        assert segment.start >= previous_start
        previous_start = segment.start


@pytest.mark.parametrize("clip", clips(), ids=lambda c: c.path.stem)
def test_clip_is_transcribed_with_its_words(tiny: Transcriber, clip: Clip) -> None:
    result = tiny.transcribe(clip.path)

    assert wer(clip.reference, result) < 0.15
    assert result.language == "en"
    assert result.model == "tiny.en"
    assert result.duration == pytest.approx(clip.seconds, abs=0.1)
    assert_timeline(result)


@pytest.mark.parametrize("entry", [e for e in demo_media() if not e.get("corrupt")], ids=lambda e: e["file"])
def test_demo_media_says_its_reference(tiny: Transcriber, entry: dict) -> None:
    result = tiny.transcribe(MEDIA / entry["file"])

    # Proper names in the AMI utterance ("Claflin", "Abbie") are spelt freely: hence 0.35.
    assert wer(entry["reference"], result) < 0.35
    assert_timeline(result)


def test_long_input_in_chunks_matches_one_pass(
    transcriber_with: Callable[..., Transcriber], long_input: LongInput
) -> None:
    progress: list[tuple[float, float]] = []
    chunked = transcriber_with(chunk_seconds=30).transcribe(
        long_input.path, progress=lambda done, total: progress.append((done, total))
    )
    whole = transcriber_with(chunk_seconds=600).transcribe(long_input.path)

    assert 80 < long_input.seconds < 100
    assert wer(long_input.reference, chunked) < 0.15
    assert wer(long_input.reference, chunked) <= wer(long_input.reference, whole) + 0.05
    assert chunked.duration == pytest.approx(long_input.seconds, abs=0.05)
    assert_timeline(chunked)
    # Segments of later chunks are placed on the recording's own timeline.
    assert max(s.end for s in chunked.segments) > long_input.seconds - 15
    assert sum(1 for s in chunked.segments if s.start > 65) >= 3
    # Progress only moves forward and ends at the whole length.
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert progress[-1][0] == pytest.approx(long_input.seconds, abs=0.05)
    assert progress[-1][1] == pytest.approx(long_input.seconds, abs=0.1)


def test_silence_gives_no_segments(tiny: Transcriber, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(5 * SAMPLE_RATE, dtype=np.float32))

    result = tiny.transcribe(path)

    assert result.segments == ()
    assert result.duration == pytest.approx(5.0)


def test_batched_decoding_keeps_the_words(tiny: Transcriber) -> None:
    clip = clips()[0]
    batched = Transcriber(tiny.settings, model=tiny.model, batch_size=4)

    result = batched.transcribe(clip.path)

    assert wer(clip.reference, result) < 0.15
    assert_timeline(result)
