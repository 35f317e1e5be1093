"""Speaker diarization: who spoke when, as turns on the transcript's timeline.

`Diarization.from_settings` loads the speaker encoder once per process (or returns None when
`diarization.enabled` is off); the transcriber asks it for a fresh `Diarizer` per recording and
feeds it the chunks it decodes anyway, so audio is decoded once. See `diarizer.py` for the
method, `encoder.py` for the model, `turns.py` for the records the rest of the code reads.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meeting_governance.diarization.turns import (
    SPEAKER_SOURCES,
    UNNAMED,
    SpeakerTurn,
    speaker_for,
    speaker_label,
)

if TYPE_CHECKING:
    from meeting_governance.config import DiarizationSettings
    from meeting_governance.diarization.diarizer import DiarizationOptions, Diarizer
    from meeting_governance.diarization.encoder import SpeakerEncoder

__all__ = ["SPEAKER_SOURCES", "UNNAMED", "Diarization", "SpeakerTurn", "speaker_for",
           "speaker_label"]


@dataclass(frozen=True)
class Diarization:
    """A loaded speaker encoder and the options to diarize with; shared by every recording."""

    encoder: SpeakerEncoder
    options: DiarizationOptions

    @classmethod
    def from_settings(cls, settings: DiarizationSettings) -> Diarization | None:
        """None when diarization is off; else the encoder, loaded and verified now, so that a
        missing or damaged encoder stops the service at start (ConfigError naming the fix)."""
        if not settings.enabled:
            return None
        from meeting_governance.diarization.diarizer import DiarizationOptions
        from meeting_governance.diarization.encoder import SpeakerEncoder

        defaults = DiarizationOptions()
        options = DiarizationOptions(
            threshold=settings.threshold, step_s=settings.step_seconds,
            # Within a chunk merge only what is surer than the global rule.
            local_threshold=max(defaults.local_threshold, settings.threshold))
        return cls(SpeakerEncoder.load(settings.encoder), options)

    def diarizer(self) -> Diarizer:
        """A new Diarizer for one recording; its embeddings are computed on a worker thread
        (one per process, shared), beside the transcriber."""
        from meeting_governance.diarization.diarizer import Diarizer

        return Diarizer(self.encoder, self.options, executor=_worker())


@functools.lru_cache(maxsize=1)
def _worker() -> ThreadPoolExecutor:
    """One thread for the speaker encoder, for the life of the process (like the model's)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarization")
