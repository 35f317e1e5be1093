"""Packed batched decoding: windows never split a stretch, nothing is dropped, times are kept."""

from __future__ import annotations

import itertools
from pathlib import Path

import jiwer
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.audio import SAMPLE_RATE
from meeting_governance.decoding import (
    PackedStats,
    _unfinished,
    _verdict,
    decode_packed,
    pack,
    packed_vad_options,
)
from meeting_governance.transcribe import Transcriber, TranscriptResult, iter_chunks

from .conftest import LongInput, clips, decode, normalise, write_wav

LIMIT = 30 * SAMPLE_RATE


def as_stretches(lengths_and_gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, at = [], 0
    for length, gap in lengths_and_gaps:
        at += gap
        out.append((at, at + length))
        at += length
    return out


@given(st.lists(st.tuples(st.integers(1, 45 * SAMPLE_RATE), st.integers(0, 5 * SAMPLE_RATE)),
                max_size=40))
def test_windows_cover_all_speech_in_order_and_fit_the_model(items: list[tuple[int, int]]) -> None:
    stretches = as_stretches(items)
    total = sum(b - a for a, b in stretches)

    windows = pack(stretches)

    # Contiguous from 0 to the end of the speech: not one sample dropped or repeated.
    assert [a for a, _ in windows] == ([0] if windows else []) + [b for _, b in windows[:-1]]
    assert (windows[-1][1] if windows else 0) == total
    assert all(0 < b - a <= LIMIT for a, b in windows)
    # A window ends between two stretches, unless one stretch alone is longer than a window.
    boundaries, at = {0}, 0
    for a, b in stretches:
        at += b - a
        boundaries.add(at)
    long_inside = [(at - (b - a), at) for (a, b), at in zip(
        stretches, np.cumsum([b - a for a, b in stretches]), strict=True) if b - a > LIMIT]
    for _, end in windows:
        assert end in boundaries or any(lo < end < hi for lo, hi in long_inside)
    # Greedy and in order: no two neighbouring windows would have fitted into one.
    for (a1, b1), (_a2, b2) in itertools.pairwise(windows):
        if b1 in boundaries:
            assert b2 - a1 > LIMIT


def test_a_rest_is_the_part_after_where_the_model_stopped() -> None:
    windows = [(0, LIMIT), (LIMIT, LIMIT + 10 * SAMPLE_RATE), (LIMIT + 10 * SAMPLE_RATE, 2 * LIMIT)]
    stops = {0: 22 * SAMPLE_RATE,  # stopped 8 s early: resume there
             LIMIT: 10 * SAMPLE_RATE,  # finished
             LIMIT + 10 * SAMPLE_RATE: 0}  # nothing finished at all: the model's verdict

    assert _unfinished(windows, stops) == [(22 * SAMPLE_RATE, LIMIT)]
    assert _unfinished(windows, {0: LIMIT - SAMPLE_RATE // 4}) == []  # closer than half a second


@pytest.fixture(scope="module")
def continuous(tmp_path_factory: pytest.TempPathFactory) -> LongInput:
    """104 s of speech with 0.15 s between utterances: VAD sees one stretch, cut at 30 s, so
    windows end inside sentences and the model stops short in some of them."""
    gap = np.zeros(int(0.15 * SAMPLE_RATE), dtype=np.float32)
    pieces, words = [], []
    for _ in range(4):
        for clip in clips():
            pieces += [decode(clip.path), gap]
            words.append(clip.reference)
    samples = np.concatenate(pieces)
    path = write_wav(tmp_path_factory.mktemp("continuous") / "continuous.wav", samples)
    return LongInput(path, samples.size / SAMPLE_RATE, " ".join(words), ())


def wer(reference: str, text: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(text)))


@pytest.mark.slow
def test_windows_the_model_left_unfinished_are_resumed(tiny: Transcriber,
                                                       continuous: LongInput) -> None:
    packed = Transcriber(tiny.settings, model=tiny.model, batch_size=4)
    sequential = Transcriber(tiny.settings, model=tiny.model, batch_size=0)

    result = packed.transcribe(continuous.path).text

    assert packed.packed.resumed_windows >= 1, "this input is meant to make the model stop short"
    assert wer(continuous.reference, result) < 0.08
    assert wer(continuous.reference, result) <= wer(
        continuous.reference, sequential.transcribe(continuous.path).text) + 0.01
    # One batched pass, as faster-whisper makes it, loses what the model left unfinished.
    chunk = next(iter_chunks(continuous.path, 600))
    stretches = chunk.speech(packed_vad_options())
    once, _ = decode_packed(tiny.model, chunk.samples, stretches, language="en", beam_size=5,
                            batch_size=4, resumes=0)
    assert wer(continuous.reference, " ".join(s.text for s in once)) > \
        wer(continuous.reference, result) + 0.04


@pytest.mark.slow
def test_packed_segments_keep_their_times(tiny: Transcriber, long_input: LongInput) -> None:
    packed = Transcriber(tiny.settings.model_copy(update={"chunk_seconds": 60}),
                         model=tiny.model, batch_size=4)

    result = packed.transcribe(long_input.path)
    stats = packed.packed

    assert wer(long_input.reference, result.text) < 0.15
    assert stats.windows >= 3  # 90 s of speech in 60 s chunks: several windows
    # Every utterance starts a segment on the recording's own timeline (the clips open with
    # up to half a second of silence), at least as close as sequential decoding puts it, and
    # no segment lies in a pause that was put in.
    def misses(found: TranscriptResult) -> list[float]:
        starts = [s.start for s in found.segments]
        return [min(abs(end - t) for t in starts) for _start, end in long_input.pauses[:-1]]

    sequential = Transcriber(packed.settings, model=tiny.model, batch_size=0).transcribe(
        long_input.path)
    assert max(misses(result)) < 0.75
    assert max(misses(result)) <= max(misses(sequential)) + 0.1
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.duration + 0.05
        for a, b in long_input.pauses:
            assert not (a + 0.3 < segment.start and segment.end < b - 0.3)


@pytest.mark.slow
def test_silence_never_reaches_the_packed_decoder(tiny: Transcriber, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(40 * SAMPLE_RATE, dtype=np.float32))
    packed = Transcriber(tiny.settings, model=tiny.model, batch_size=4)

    result = packed.transcribe(path)

    assert result.segments == () and packed.packed.windows == 0


@pytest.mark.parametrize(("quality", "verdict"), [
    ((-0.3, 0.1, 1.6), "ok"),
    ((-1.4, 0.9, 1.2), "silent"),  # Whisper's should_skip: no speech and an unlikely text
    ((-0.2, 0.9, 1.2), "ok"),  # likely text wins over the no-speech token
    ((-0.5, 0.1, 3.1), "retry"),  # repetitive: "the the the ..."
    ((-1.3, 0.2, 1.5), "retry"),  # unlikely
])
def test_a_windows_text_is_judged_as_whisper_judges_it(
        quality: tuple[float, float, float], verdict: str) -> None:
    assert _verdict(*quality) == verdict


@pytest.mark.slow
def test_noise_the_model_calls_silent_gives_no_text(tiny: Transcriber) -> None:
    # (No comparison with faster-whisper's sequential decoding here: on this noise it gives
    # " ." at temperature 0 and nothing or " ." after its random temperature fallback, so such
    # an assertion failed at random — once in four full runs.)
    noise = np.random.default_rng(1).normal(0, 0.1, 20 * SAMPLE_RATE).astype(np.float32)
    stats = PackedStats()

    found, _ = decode_packed(tiny.model, noise, [(0, noise.size)], language="en", beam_size=1,
                             batch_size=4, stats=stats)

    assert list(found) == [] and stats.silent_windows == 1


@pytest.mark.slow
def test_a_window_failing_the_checks_is_decoded_again_unless_fallback_is_off(
        tiny: Transcriber) -> None:
    # A steady 120 Hz hum: the model's text for it is unlikely, so Whisper would retry it.
    hum = (0.3 * np.sin(2 * np.pi * 120 * np.arange(20 * SAMPLE_RATE) / SAMPLE_RATE)
           ).astype(np.float32)
    for fallback, expected in ((True, 1), (False, 0)):
        stats = PackedStats()
        found, _ = decode_packed(tiny.model, hum, [(0, hum.size)], language="en", beam_size=1,
                                 batch_size=4, fallback=fallback, stats=stats)
        segments = list(found)
        assert stats.fallback_windows == expected
        assert all(0 <= s.start <= s.end <= 20.05 for s in segments)
