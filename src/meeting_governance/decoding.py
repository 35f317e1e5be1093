"""Batched decoding of one chunk's speech, packed into whole model windows, timestamps kept.

Whisper's encoder always looks at 30 seconds. Sequential decoding (`WhisperModel.transcribe`
over a chunk's speech) slides that window by the last complete segment, so the tail of each
window is encoded and decoded again in the next one, one window at a time. Here the chunk's
stretches of speech (from the recording's one VAD pass) are packed, in order, into groups of
at most 30 seconds that never split a stretch, and the groups go through faster-whisper's
`BatchedInferencePipeline` several at a time: every second of speech is encoded once, the
decoder works on a batch of windows per step, and timestamp tokens stay on (with them off a
segment spans a whole group, useless for captions, and tiny.en drops whole turns; see
bench/README.md). Segment times come back on the chunk's own timeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment as FwSegment
    from faster_whisper.transcribe import TranscriptionInfo
    from faster_whisper.vad import VadOptions

RATE = 16_000
WINDOW_SECONDS = 30
MIN_REST = RATE // 2  # a window's text stopping closer than this to its end counts as done
MAX_RESUMES = 2  # how often a window is resumed where its text stopped
# Whisper's checks on a window's text, faster-whisper's defaults for sequential decoding.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # temperature 0 was the batched pass


def packed_vad_options() -> VadOptions:
    """faster-whisper's VAD defaults, with speech longer than one window split at a pause."""
    from faster_whisper.vad import VadOptions

    return VadOptions(max_speech_duration_s=WINDOW_SECONDS)


def pack(stretches: Sequence[tuple[int, int]], limit: int = WINDOW_SECONDS * RATE
         ) -> list[tuple[int, int]]:
    """Group consecutive stretches into windows of at most `limit` samples of speech.

    Returns (start, end) of each group in the coordinates of the stretches' concatenation
    (what the model is given). A stretch never straddles two groups unless it alone is longer
    than `limit`; then it is cut into `limit`-sized pieces, so no speech is ever dropped.
    """
    groups: list[tuple[int, int]] = []
    start = at = 0
    for a, b in stretches:
        length = b - a
        if length <= 0:
            continue
        if at - start + length > limit and at > start:
            groups.append((start, at))
            start = at
        while at + length - start > limit:  # only a stretch longer than the window itself
            groups.append((start, start + limit))
            length -= start + limit - at
            at = start = start + limit
        at += length
    if at > start:
        groups.append((start, at))
    return groups


@dataclass
class PackedStats:
    """What packed decoding did, for the benchmark (counts only)."""

    windows: int = 0
    resumed_windows: int = 0  # windows decoded again from where the model stopped
    resumed_segments: int = 0  # segments those found
    fallback_windows: int = 0  # windows whose text failed Whisper's checks, decoded again
    silent_windows: int = 0  # windows the model judged silent (their text dropped)


def _seeking_pipeline(model: WhisperModel) -> Any:
    """faster-whisper's BatchedInferencePipeline, also noting where each window's text stopped.

    Its `forward` (MIT licence, SYSTRAN) is kept as it is, with one addition: the `seek` that
    `_split_segments_by_timestamps` returns, which it throws away. When a window ends inside a
    segment the model did not finish, that segment is dropped and `seek` points at its start
    (sequential decoding resumes there; so do we). Word timestamps are not used here.
    """
    from faster_whisper import BatchedInferencePipeline
    from faster_whisper.transcribe import get_compression_ratio

    class Seeking(BatchedInferencePipeline):
        stops: dict[int, int]  # window offset (samples, packed) -> samples it covered
        # window offset -> (average log probability, no-speech probability, compression ratio)
        quality: dict[int, tuple[float, float, float]]

        def forward(self, features: Any, tokenizer: Any, chunks_metadata: Any,
                    options: Any) -> list[list[dict[str, Any]]]:
            _encoder_output, outputs = self.generate_segment_batched(features, tokenizer, options)
            hop = self.model.feature_extractor.hop_length
            segmented = []
            for meta, output in zip(chunks_metadata, outputs, strict=True):
                duration = meta["duration"]
                size = int(ceil(duration) * self.model.frames_per_second)
                pieces, seek, _single_end = self.model._split_segments_by_timestamps(
                    tokenizer=tokenizer, tokens=output["tokens"], time_offset=meta["offset"],
                    segment_size=size, segment_duration=duration, seek=0)
                self.stops[round(meta["offset"] * RATE)] = seek * hop
                self.quality[round(meta["offset"] * RATE)] = (
                    output["avg_logprob"], output["no_speech_prob"],
                    get_compression_ratio(tokenizer.decode(output["tokens"]).strip()))
                segmented.append([
                    {"text": tokenizer.decode(piece["tokens"]),
                     "avg_logprob": output["avg_logprob"],
                     "no_speech_prob": output["no_speech_prob"], "tokens": piece["tokens"],
                     "start": piece["start"], "end": piece["end"],
                     "compression_ratio": get_compression_ratio(tokenizer.decode(piece["tokens"])),
                     "seek": int(meta["offset"] * self.model.frames_per_second)}
                    for piece in pieces])
            return segmented

    pipeline = Seeking(model)
    pipeline.stops = {}
    pipeline.quality = {}
    return pipeline


def decode_packed(model: WhisperModel, samples: np.ndarray, stretches: Sequence[tuple[int, int]],
                  *, language: str | None, beam_size: int, batch_size: int,
                  timestamps: bool = True, resumes: int = MAX_RESUMES,
                  fallback: bool = True, stats: PackedStats | None = None
                  ) -> tuple[Iterator[FwSegment], TranscriptionInfo]:
    """Decode `stretches` of `samples` packed into windows, `batch_size` windows at a time.

    Segments are lazy (each batch is decoded as they are read) and carry times on the timeline
    of `samples`. Where the model stopped inside a segment it could not finish, the rest of
    that window is decoded again from the segment's start, with the other such rests of its
    batch, as sequential decoding would seek back to it (one batched pass would lose it).
    `timestamps=False` is faster-whisper's batched default, kept for the benchmark only: it
    cannot tell where the model stopped.

    Whisper's own checks hold per window, as in sequential decoding: a window the model judges
    silent (no-speech probability over 0.6 with a low log probability) gives no text, and with
    `fallback` a window whose text is too repetitive (compression ratio over 2.4) or too
    unlikely (average log probability under -1) is decoded again on its own at rising
    temperatures. Batched decoding has neither by itself.
    """
    import numpy as np  # here, not at import: the CLI and the web app never load numpy
    from faster_whisper.transcribe import restore_speech_timestamps

    stats = stats if stats is not None else PackedStats()
    speech = np.concatenate([samples[a:b] for a, b in stretches])
    pipeline = _seeking_pipeline(model)

    def run(windows: Sequence[tuple[int, int]], lang: str | None
            ) -> tuple[Iterator[FwSegment], TranscriptionInfo]:
        stats.windows += len(windows)
        # faster-whisper turns seconds back into samples with int(): half a sample keeps it exact
        clips = [{"start": (a + 0.5) / RATE, "end": (b + 0.5) / RATE} for a, b in windows]
        return pipeline.transcribe(speech, language=lang, beam_size=beam_size,
                                   batch_size=batch_size, clip_timestamps=clips,
                                   without_timestamps=not timestamps,
                                   condition_on_previous_text=False)

    groups = pack(stretches)
    first, info = run(groups[:batch_size], language)
    language = language or info.language

    def batches() -> Iterator[FwSegment]:
        found: Iterator[FwSegment] | None = first
        for index in range(0, len(groups), batch_size):
            windows = groups[index:index + batch_size]
            if found is None:
                found, _ = run(windows, language)
            decoded = list(found)
            found = None
            done = list(windows)
            for _ in range(resumes):
                rests = _unfinished(windows, pipeline.stops) if timestamps else []
                if not rests:
                    break
                again = list(run(rests, language)[0])
                stats.resumed_windows += len(rests)
                stats.resumed_segments += len(again)
                decoded += again
                windows = rests
                done += rests
            if timestamps:
                decoded = checked(decoded, done)
            yield from sorted(decoded, key=lambda segment: segment.start)

    def checked(decoded: list[FwSegment], windows: list[tuple[int, int]]) -> list[FwSegment]:
        """Drop what silent windows said; decode failed ones again with temperature fallback."""
        replaced: list[tuple[int, int]] = []
        for a, b in windows:
            quality = pipeline.quality.get(a)
            if quality is None or any(x <= a and b <= y for x, y in replaced):
                continue
            verdict = _verdict(*quality)
            if verdict == "ok" or (verdict == "retry" and not fallback):
                continue
            if verdict == "silent":
                stats.silent_windows += 1
                again: list[FwSegment] = []
            else:
                stats.fallback_windows += 1
                redo, _ = model.transcribe(speech[a:b], language=language, beam_size=beam_size,
                                           temperature=FALLBACK_TEMPERATURES, vad_filter=False,
                                           condition_on_previous_text=False)
                again = list(redo)
                for segment in again:  # onto the packed timeline, inside this window
                    segment.start = min(segment.start + a / RATE, b / RATE)
                    segment.end = min(max(segment.end + a / RATE, segment.start), b / RATE)
            decoded = [s for s in decoded if not a <= round(s.start * RATE) < b] + again
            replaced.append((a, b))
        return decoded

    spans = [{"start": a, "end": b} for a, b in stretches]
    return iter(restore_speech_timestamps(batches(), spans, RATE)), info


def _verdict(avg_logprob: float, no_speech_prob: float, compression_ratio: float) -> str:
    """Whisper's checks on one window's text (faster-whisper's defaults): "silent", "retry"
    or "ok"."""
    if no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
        return "silent"
    if compression_ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD:
        return "retry"
    return "ok"


def _unfinished(windows: Sequence[tuple[int, int]], stops: dict[int, int]
                ) -> list[tuple[int, int]]:
    """The rest of each window whose text stopped short of its end (by more than a token)."""
    rests = []
    for a, b in windows:
        covered = stops.get(a)
        if covered is not None and 0 < covered and a + covered < b - MIN_REST:
            rests.append((a + covered, b))
    return rests
