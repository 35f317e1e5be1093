"""Real speech, real media files, and the real tiny.en model (the session's `whisper_model`)."""

from __future__ import annotations

import csv
import json
import re
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from meeting_governance.audio import SAMPLE_RATE, iter_audio
from meeting_governance.config import TranscriptionSettings
from meeting_governance.transcribe import Transcriber
from mg_emulator import default_media_dir

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "data" / "speech"
MEDIA = default_media_dir()  # the demo recordings, shipped with the emulator


@dataclass(frozen=True)
class Clip:
    path: Path
    seconds: float
    reference: str


def clips() -> list[Clip]:
    with (SPEECH / "manifest.tsv").open(newline="") as handle:
        return [
            Clip(SPEECH / row["file"], float(row["seconds"]), row["reference"])
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def demo_media() -> list[dict]:
    return json.loads((MEDIA / "manifest.json").read_text())


def normalise(text: str) -> str:
    """Lower case, punctuation out (apostrophes kept), one space: formatting is no error."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def write_wav(path: Path, samples: np.ndarray) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path


def decode(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_audio(path)))


@dataclass(frozen=True)
class LongInput:
    path: Path
    seconds: float
    reference: str
    pauses: tuple[tuple[float, float], ...]  # (start, end) seconds of the silences put in


@pytest.fixture(scope="session")
def long_input(tmp_path_factory: pytest.TempPathFactory) -> LongInput:
    """About 90 s: every test clip three times over, 1.2 s pauses between, as a WAV file."""
    pause = np.zeros(int(1.2 * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    words: list[str] = []
    pauses: list[tuple[float, float]] = []
    at = 0
    for _ in range(3):
        for clip in clips():
            speech = decode(clip.path)
            pieces += [speech, pause]
            words.append(clip.reference)
            at += speech.size
            pauses.append((at / SAMPLE_RATE, (at + pause.size) / SAMPLE_RATE))
            at += pause.size
    samples = np.concatenate(pieces)
    path = write_wav(tmp_path_factory.mktemp("long") / "long.wav", samples)
    return LongInput(path, samples.size / SAMPLE_RATE, " ".join(words), tuple(pauses))


@pytest.fixture(scope="session")
def tiny(whisper_model: Any) -> Transcriber:
    """A Transcriber with the default settings over the session's one loaded model."""
    return Transcriber(TranscriptionSettings(), model=whisper_model)


@pytest.fixture
def transcriber_with(tiny: Transcriber) -> Callable[..., Transcriber]:
    """Build a Transcriber with other settings that shares the session's model."""

    def make(**overrides: Any) -> Transcriber:
        return Transcriber(TranscriptionSettings(**overrides), model=tiny.model)

    return make


def video_only_mp4(path: Path) -> Path:
    """A real MP4 with one video stream and no audio, as a screen-share-only recording."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            image = np.full((48, 64, 3), index * 40, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
