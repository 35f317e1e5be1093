"""The FakeTranscriber the fault tests run instead of the model: it must fail on bad media the
way the real one does and give the same segments for the same audio, or those tests would pass
on a pipeline the model would break."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meeting_governance.audio import SAMPLE_RATE
from meeting_governance.errors import TranscriptionError
from tests.fake_transcriber import MODEL_NAME, FakeTranscriber, fake_text

from .conftest import MEDIA, write_wav

BAD_MEDIA = Path(__file__).resolve().parents[1] / "data" / "bad" / "media"


def test_one_segment_per_five_seconds_of_audio_the_same_every_time(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "twelve.wav", np.zeros(12 * SAMPLE_RATE, dtype=np.float32))
    seen: list[tuple[float, float]] = []
    result = FakeTranscriber().transcribe(path, progress=lambda done, total: seen.append(
        (done, total)))
    assert [(s.start, s.end, s.text) for s in result.segments] == [
        (0.0, 5.0, fake_text(1, 3)), (5.0, 10.0, fake_text(2, 3)), (10.0, 12.0, fake_text(3, 3))]
    assert result.duration == 12.0 and result.model == MODEL_NAME
    assert seen[-1][0] == 12.0  # progress reaches the end
    assert FakeTranscriber().transcribe(path) == result


def test_a_real_recording_is_decoded_to_its_length() -> None:
    sample = MEDIA / "sample-1.m4a"
    result = FakeTranscriber().transcribe(sample)
    assert result.duration > 5 and result.segments
    assert result.segments[-1].end == result.duration


@pytest.mark.parametrize("name", ["random-bytes.mp4", "truncated-head.mp4", "video-no-audio.mp4",
                                  "empty.mp4"])
def test_bad_media_is_a_transcription_error_as_with_the_model(name: str) -> None:
    fake = FakeTranscriber()
    with pytest.raises(TranscriptionError, match=rf"cannot transcribe {name}: "):
        fake.transcribe(BAD_MEDIA / name)
    assert fake.transcribed == []


def test_it_has_no_model_to_hand_out() -> None:
    with pytest.raises(AssertionError, match="whisper_model"):
        _ = FakeTranscriber().model
