"""The real speaker encoder on real speech of different people (LibriSpeech clips)."""

from __future__ import annotations

import csv
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meeting_governance.audio import SAMPLE_RATE, iter_audio
from meeting_governance.config import DiarizationSettings, TranscriptionSettings
from meeting_governance.diarization import Diarization
from meeting_governance.diarization.encoder import SpeakerEncoder
from meeting_governance.errors import ConfigError
from meeting_governance.transcribe import Transcriber

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "data" / "speech"
DATA = REPO / "tests" / "data" / "diarization"


@pytest.fixture(scope="session")
def encoder() -> SpeakerEncoder:
    """The installed encoder. Missing is a failure, not a skip: scripts/test installs it."""
    try:
        return SpeakerEncoder.load("resemblyzer")
    except ConfigError as exc:
        pytest.fail(f"{exc} (scripts/test does this itself)")


@pytest.fixture(scope="session")
def diarization(encoder: SpeakerEncoder) -> Diarization:
    made = Diarization.from_settings(DiarizationSettings(enabled=True))
    assert made is not None
    return made


@pytest.fixture(scope="session")
def tiny(whisper_model: Any) -> Transcriber:
    """A Transcriber over the session's one loaded model (`whisper_model`)."""
    return Transcriber(TranscriptionSettings(), model=whisper_model)


@pytest.fixture(scope="session")
def tiny_with_speakers(tiny: Transcriber, diarization: Diarization) -> Transcriber:
    return Transcriber(TranscriptionSettings(), model=tiny.model, diarization=diarization)


def speakers_of_clips() -> dict[str, str]:
    """Clip file name -> LibriSpeech speaker, from the clips' manifest."""
    with (SPEECH / "manifest.tsv").open(newline="") as handle:
        return {row["file"]: row["speaker"] for row in csv.DictReader(handle, delimiter="\t")}


def decode(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_audio(path)))


def write_wav(path: Path, samples: np.ndarray) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path


@dataclass(frozen=True)
class Joined:
    """A recording made of clips: who speaks from when to when (the clips' own bounds)."""

    path: Path
    spans: tuple[tuple[float, float, str], ...]  # (start, end, true speaker)

    def speaker_at(self, moment: float) -> str | None:
        return next((who for start, end, who in self.spans if start <= moment < end), None)


def join(path: Path, files: list[str], pause_s: float) -> Joined:
    """The clips back to back with `pause_s` of silence between them, as a WAV file."""
    who = speakers_of_clips()
    pause = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.float32)
    pieces, spans, at = [], [], 0
    for name in files:
        speech = decode(SPEECH / name)
        spans.append((at / SAMPLE_RATE, (at + speech.size) / SAMPLE_RATE, who[name]))
        pieces += [speech, pause]
        at += speech.size + pause.size
    return Joined(write_wav(path, np.concatenate(pieces)), tuple(spans))


A, B, C, D = ("1988-24833-0001.flac", "2412-153948-0002.flac", "3752-4944-0000.flac",
              "1089-134686-0000.flac")  # four people (LS-1988, LS-2412, LS-3752, LS-1089)


@pytest.fixture(scope="session")
def four_people(tmp_path_factory: pytest.TempPathFactory) -> Joined:
    """About 60 s: A B C D A B C D, 1 s pauses, as a meeting of four would sound."""
    return join(tmp_path_factory.mktemp("four") / "four.wav", [A, B, C, D, A, B, C, D], 1.0)
