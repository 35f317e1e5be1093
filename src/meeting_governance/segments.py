"""The transcript's records: `Segment` and `TranscriptResult`.

They live apart from `transcribe.py` so that exports, the DSR code, the CLI and the web app can
read and write transcripts without importing numpy, PyAV or faster-whisper (which cost seconds
of start-up and are needed only where audio is decoded). This module imports nothing heavy;
`tests/foundation/test_light_imports.py` keeps it that way.
"""

from __future__ import annotations

from dataclasses import dataclass

from meeting_governance.diarization.turns import SpeakerTurn


@dataclass(frozen=True)
class Segment:
    """One stretch of speech: times in seconds from the start of the recording.

    `speaker` is the diarization label ("Speaker 2"), None when diarization was off or found
    nobody near; `speaker_source` says how the label was named (see diarization.turns).
    """

    start: float
    end: float
    text: str
    speaker: str | None = None
    speaker_source: str | None = None


@dataclass(frozen=True)
class TranscriptResult:
    """A whole recording's transcript plus what is needed to judge and reproduce it."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float
    model: str
    turns: tuple[SpeakerTurn, ...] = ()  # who spoke when; empty without diarization

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


__all__ = ["Segment", "TranscriptResult"]
