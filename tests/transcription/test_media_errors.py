"""Bad media fails with TranscriptionError, before any model is loaded; good media decodes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from meeting_governance.audio import SAMPLE_RATE, iter_audio, probe
from meeting_governance.config import TranscriptionSettings
from meeting_governance.errors import TranscriptionError
from meeting_governance.transcribe import Transcriber, find_cut, iter_chunks

from .conftest import MEDIA, LongInput, clips, decode, video_only_mp4


@pytest.fixture
def unloadable() -> Transcriber:
    """A Transcriber whose model cannot load: proves media is checked before the model."""
    return Transcriber(TranscriptionSettings(model="/nonexistent/model"))


def faststart_m4a(path: Path, seconds: float = 8.0) -> Path:
    """AAC in MP4 with its index first, so a cut-off copy still opens (the sneaky case)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for start in range(0, tone.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[start : start + 1024].reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_corrupt_demo_file(unloadable: Transcriber) -> None:
    with pytest.raises(TranscriptionError, match=r"corrupt\.mp4: not a readable media file"):
        unloadable.transcribe(MEDIA / "corrupt.mp4")


def test_empty_file(unloadable: Transcriber, tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(TranscriptionError, match="empty"):
        unloadable.transcribe(tmp_path / "empty.mp4")


def test_text_file(unloadable: Transcriber, tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("minutes of the meeting, not a recording\n" * 50)
    with pytest.raises(TranscriptionError, match="not a readable media file"):
        unloadable.transcribe(tmp_path / "notes.mp4")


def test_missing_file(unloadable: Transcriber, tmp_path: Path) -> None:
    with pytest.raises(TranscriptionError, match="does not exist"):
        unloadable.transcribe(tmp_path / "gone.mp4")


def test_video_without_audio(unloadable: Transcriber, tmp_path: Path) -> None:
    path = video_only_mp4(tmp_path / "screen.mp4")
    with pytest.raises(TranscriptionError, match="no audio stream"):
        unloadable.transcribe(path)


def test_truncated_file_with_index_first_is_not_taken_as_complete(tmp_path: Path) -> None:
    whole = faststart_m4a(tmp_path / "whole.m4a")
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    assert sum(b.size for b in iter_audio(whole)) / SAMPLE_RATE == pytest.approx(8.0, abs=0.1)
    assert probe(cut).duration == pytest.approx(8.0, abs=0.1)  # it still opens ...
    with pytest.raises(TranscriptionError, match="stops after"):  # ... but is not complete
        list(iter_audio(cut))


def test_stream_decoding_equals_faster_whisper_decoding() -> None:
    from faster_whisper.audio import decode_audio

    for clip in clips()[:2]:
        blocks = list(iter_audio(clip.path, block_seconds=2.0))
        assert all(b.dtype == np.float32 for b in blocks)
        assert {b.size for b in blocks[:-1]} == {2 * SAMPLE_RATE}
        np.testing.assert_array_equal(np.concatenate(blocks), decode_audio(str(clip.path)))


def test_cut_lands_in_the_pause_not_in_a_word() -> None:
    speech = decode(clips()[0].path)  # 10.4 s of continuous reading
    pause = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    samples = np.concatenate([speech, pause, speech])
    pause_start, pause_end = speech.size, speech.size + pause.size

    # Target 3 s before the pause, searching 5 s either side: the pause is the place to cut.
    cut = find_cut(samples, pause_start - 3 * SAMPLE_RATE, 5 * SAMPLE_RATE)

    assert pause_start <= cut <= pause_end


def test_cut_without_any_pause_stays_in_the_window() -> None:
    rng = np.random.default_rng(7)
    noise = (0.3 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    target, search = 10 * SAMPLE_RATE, 2 * SAMPLE_RATE

    cut = find_cut(noise, target, search)

    assert target - search <= cut <= target + search


def test_chunks_cover_the_recording_and_end_in_pauses(long_input: LongInput) -> None:
    chunks = list(iter_chunks(long_input.path, chunk_seconds=30))

    assert len(chunks) == 3
    position = 0.0
    for chunk in chunks:
        assert chunk.offset == pytest.approx(position)
        position += chunk.samples.size / SAMPLE_RATE
    assert position == pytest.approx(long_input.seconds)
    for chunk in chunks[:-1]:
        cut = chunk.offset + chunk.samples.size / SAMPLE_RATE
        assert 22.5 <= chunk.samples.size / SAMPLE_RATE <= 37.5
        assert any(start <= cut <= end for start, end in long_input.pauses), cut


def test_decoding_frees_its_ffmpeg_objects_without_a_garbage_collection() -> None:
    """iter_audio no longer forces gc.collect() per file: reference counting must free the
    container, resampler and FIFO, or a daemon would grow with every recording."""
    import gc

    import av

    def ffmpeg_objects() -> int:
        kinds = (av.AudioResampler, av.AudioFifo, av.container.InputContainer, av.AudioFrame)
        return sum(isinstance(o, kinds) for o in gc.get_objects())

    gc.collect()
    before = ffmpeg_objects()
    gc.disable()
    try:
        for _ in range(20):
            for _block in iter_audio(clips()[0].path, block_seconds=2.0):
                pass
        left = ffmpeg_objects()
    finally:
        gc.enable()
    assert left == before
