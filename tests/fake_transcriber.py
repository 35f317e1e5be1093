"""A stand-in for the Whisper model, for tests that need "something was transcribed" and
nothing about the words: Graph faults, database faults, leases, gate and state tests.

It decodes the media for real (so a corrupt, truncated or video-only file fails exactly as it
does in front of the model, with a `TranscriptionError`) and returns one deterministic segment
per `SEGMENT_SECONDS` of audio. Tests about transcription itself (words, timestamps, language,
chunking, speakers) keep the real model: they request the `whisper_model` fixture.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from meeting_governance import audio
from meeting_governance.config import TranscriptionSettings
from meeting_governance.transcribe import Progress, Segment, Transcriber, TranscriptResult

SEGMENT_SECONDS = 5.0
MODEL_NAME = "fake-transcriber"


def fake_text(index: int, count: int) -> str:
    """What segment `index` (from 1) of `count` says: the same for the same audio length."""
    return f"fake segment {index} of {count}"


class FakeTranscriber(Transcriber):
    """The Transcriber interface without a model: real decoding, made-up but stable text."""

    def __init__(self, settings: TranscriptionSettings | None = None) -> None:
        super().__init__(settings or TranscriptionSettings())
        self.transcribed: list[Path] = []  # every file handed to transcribe(), in order

    @property
    def model(self) -> Any:
        raise AssertionError("FakeTranscriber has no model: a test that needs the real one "
                             "requests the `whisper_model` fixture")

    def transcribe(self, path: Path, progress: Progress | None = None) -> TranscriptResult:
        """One segment per SEGMENT_SECONDS of the decoded audio (none for an empty file)."""
        path = Path(path)
        total = audio.probe(path).duration  # the same early failure as the real one
        samples = sum(block.size for block in audio.iter_audio(path))
        seconds = samples / audio.SAMPLE_RATE
        count = math.ceil(seconds / SEGMENT_SECONDS) if seconds > 0 else 0
        segments = []
        for index in range(count):
            start = index * SEGMENT_SECONDS
            end = min(seconds, start + SEGMENT_SECONDS)
            segments.append(Segment(start=round(start, 3), end=round(end, 3),
                                    text=fake_text(index + 1, count)))
            if progress is not None:
                progress(end, max(total, seconds))
        self.transcribed.append(path)
        return TranscriptResult(segments=tuple(segments), language="en",
                                language_probability=1.0, duration=round(seconds, 3),
                                model=MODEL_NAME)
