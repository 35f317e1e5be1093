"""One VAD pass per recording: the streamed figures must be faster-whisper's own, exactly.

The Transcriber no longer lets faster-whisper run Silero VAD on each chunk; it computes the
speech probabilities once while decoding and reads stretches off them. These tests hold that
to the library's `get_speech_timestamps` on real speech, fed in awkward block sizes, and check
that cutting a recording into chunks loses no speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faster_whisper.transcribe import WhisperModel
from faster_whisper.vad import VadOptions, get_speech_timestamps

from meeting_governance.audio import SAMPLE_RATE
from meeting_governance.transcribe import Transcriber, iter_chunks
from meeting_governance.vad import WINDOW, SpeechMap, VadStream

from .conftest import LongInput, decode, normalise, write_wav

OPTIONS = [
    VadOptions(),  # what transcription uses
    VadOptions(min_silence_duration_ms=300, speech_pad_ms=100),  # what the cutter uses
    VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160),  # the batched pipeline's
    VadOptions(threshold=0.6, min_speech_duration_ms=250, speech_pad_ms=0),
]


def streamed(samples: np.ndarray, block: int) -> VadStream:
    stream = VadStream()
    for start in range(0, samples.size, block):
        stream.feed(samples[start : start + block])
    stream.finish()
    return stream


def as_pairs(found: list[dict]) -> list[tuple[int, int]]:
    return [(s["start"], s["end"]) for s in found]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "cutter", "batched", "strict"])
@pytest.mark.parametrize("block", [SAMPLE_RATE * 7 + 5, WINDOW * 40, 999])
def test_streamed_stretches_equal_faster_whispers(
    long_input: LongInput, options: VadOptions, block: int
) -> None:
    samples = decode(long_input.path)

    got = streamed(samples, block).map(0, samples.size).speech(0, samples.size, options)

    assert got == as_pairs(get_speech_timestamps(samples, options))
    assert len(got) >= 8  # many stretches (pauses of 1.2 s; the default joins under 2 s)


def test_a_length_on_the_window_grid_matches_too(long_input: LongInput) -> None:
    samples = decode(long_input.path)
    samples = samples[: (samples.size // WINDOW) * WINDOW]  # faster-whisper pads a whole window

    assert SpeechMap.of(samples).speech(0, samples.size, VadOptions()) == as_pairs(
        get_speech_timestamps(samples, VadOptions())
    )


def test_a_sub_range_is_clipped_to_it_and_agrees_inside(long_input: LongInput) -> None:
    samples = decode(long_input.path)
    stream = streamed(samples, SAMPLE_RATE * 5)
    whole = stream.map(0, samples.size).speech(0, samples.size, VadOptions())
    lo, hi = 20 * SAMPLE_RATE + 123, 50 * SAMPLE_RATE + 77

    part = stream.map(lo, hi).speech(0, hi - lo, VadOptions())

    assert part and all(0 <= a < b <= hi - lo for a, b in part)
    inside = [(a - lo, b - lo) for a, b in whole if a >= lo + SAMPLE_RATE and b <= hi - SAMPLE_RATE]
    assert inside and set(inside) <= set(part)


def test_forgotten_windows_read_as_silence_and_the_rest_is_kept(long_input: LongInput) -> None:
    samples = decode(long_input.path)
    stream = streamed(samples, SAMPLE_RATE * 5)
    later = stream.map(40 * SAMPLE_RATE, 60 * SAMPLE_RATE).values.copy()

    stream.forget_before(30 * SAMPLE_RATE)

    np.testing.assert_array_equal(stream.map(40 * SAMPLE_RATE, 60 * SAMPLE_RATE).values, later)
    assert not stream.map(0, 20 * SAMPLE_RATE).values.any()
    with pytest.raises(RuntimeError, match="after finish"):
        stream.feed(samples[:WINDOW])


def test_chunking_loses_no_speech(long_input: LongInput) -> None:
    samples = decode(long_input.path)
    # Speech itself, tightly: no padding, pauses of 300 ms already count as pauses.
    tight = VadOptions(min_silence_duration_ms=300, speech_pad_ms=0)
    speech = np.zeros(samples.size, dtype=bool)
    for a, b in SpeechMap.of(samples).speech(0, samples.size, tight):
        speech[a:b] = True
    covered = np.zeros(samples.size, dtype=bool)

    chunks = list(iter_chunks(long_input.path, chunk_seconds=30))
    for chunk in chunks:
        start = round(chunk.offset * SAMPLE_RATE)
        for a, b in chunk.speech():
            covered[start + a : start + b] = True

    assert len(chunks) == 3
    assert speech.sum() > 0.7 * samples.size
    assert (speech & ~covered).sum() < 0.001 * speech.sum()


def test_transcription_matches_faster_whispers_own_vad_filter(tiny: Transcriber) -> None:
    """A recording shorter than a chunk: our one VAD pass must give faster-whisper's result
    (sequential decoding, which is what faster-whisper's `transcribe` does)."""
    from .conftest import clips

    clip = clips()[0]
    model: WhisperModel = tiny.model
    segments, _ = model.transcribe(str(clip.path), beam_size=tiny.settings.beam_size, vad_filter=True,
                                   condition_on_previous_text=False)
    expected = [(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments]

    result = Transcriber(tiny.settings, model=model, batch_size=0).transcribe(clip.path)

    assert [(round(s.start, 2), round(s.end, 2), s.text) for s in result.segments] == expected
    assert normalise(result.text)


def test_silent_chunks_keep_the_timeline(tiny: Transcriber, tmp_path: Path) -> None:
    from .conftest import clips

    speech = decode(clips()[1].path)
    quiet = np.zeros(70 * SAMPLE_RATE, dtype=np.float32)
    path = write_wav(tmp_path / "late.wav", np.concatenate([quiet, speech]))
    transcriber = Transcriber(tiny.settings.model_copy(update={"chunk_seconds": 30}),
                              model=tiny.model)
    called: list[float] = []

    result = transcriber.transcribe(path, progress=lambda done, total: called.append(done))

    assert result.segments and all(s.start >= 69.0 for s in result.segments)
    assert result.duration == pytest.approx(70 + speech.size / SAMPLE_RATE, abs=0.01)
    assert called[-1] == pytest.approx(result.duration, abs=0.01)
