"""Who spoke when: speaker turns from the transcriber's own chunks, in bounded memory.

The transcriber decodes each recording once and hands every chunk (about two minutes of
samples plus its voice-activity figures) to `Diarizer.feed` before it forgets it. Per chunk:

1. speech stretches from the chunk's VAD figures (the transcriber's one Silero pass);
2. 1.6 s windows every `step_s` over each stretch (a stretch shorter than a window but longer
   than `min_speech_s` is repeated to fill one), their mel spectrogram and voice embeddings
   (`encoder.py`);
3. the chunk's windows clustered strictly (`local_threshold`), so that each local cluster is
   almost surely one voice; only the clusters' mean embeddings and durations are kept, with
   each window's time and cluster number. The window embeddings are dropped with the chunk.

`finish` clusters the local clusters of the whole recording (`threshold`, average linkage
weighted by seconds of speech), folds clusters with very little speech into the nearest larger
one, gives each 10 ms of speech the speaker of the nearest window, and returns the turns,
labelled "Speaker 1", "Speaker 2", ... in order of first appearance. Memory: a few hundred
bytes per window and one 256-float mean per local cluster, whatever the recording's length;
the global clustering's matrix is (local clusters)^2, a few hundred squared for two hours.

This is the same design as pyannote's (local speakers per chunk, then global clustering of
their embeddings), with a smaller encoder and no overlap detection: overlapping speech is
given to one speaker.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from meeting_governance.diarization import cluster
from meeting_governance.diarization.encoder import (
    HOP,
    RATE,
    WINDOW_FRAMES,
    SpeakerEncoder,
    loudness_gain,
    mel_frames,
)
from meeting_governance.diarization.turns import SpeakerTurn, merge_runs, speaker_label

if TYPE_CHECKING:
    from meeting_governance.transcribe import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiarizationOptions:
    """The knobs, with the defaults bench/diarization.py chose on real meetings."""

    threshold: float = 0.65  # global: merge speakers at least this similar (cosine)
    local_threshold: float = 0.85  # within a chunk: stricter, only near-certain merges
    step_s: float = 0.8  # one 1.6 s window every this many seconds of speech
    min_speech_s: float = 0.4  # shorter stretches get no window of their own
    min_speaker_s: float = 2.0  # a "speaker" with less speech is folded into the nearest one
    min_turn_s: float = 1.0  # a shorter run inside a stretch goes to its neighbour
    vad_min_silence_ms: int = 300  # pause that separates stretches for diarization
    vad_pad_ms: int = 100
    max_items: int = 600  # local speakers kept before the most alike are merged (memory bound)


@dataclass
class _Windows:
    """Per recording: every window's place and local cluster, every stretch, local means."""

    starts: list[float] = field(default_factory=list)  # seconds
    ends: list[float] = field(default_factory=list)
    local: list[int] = field(default_factory=list)  # each window's local cluster
    owner: list[int] = field(default_factory=list)  # each local cluster's row in means
    stretches: list[tuple[float, float]] = field(default_factory=list)
    means: list[np.ndarray] = field(default_factory=list)  # unit-length mean embeddings
    weights: list[float] = field(default_factory=list)  # seconds each row of means covers


@dataclass(frozen=True)
class ChunkWindows:
    """One chunk's windows: times (seconds on the recording's timeline) and embeddings."""

    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray  # (windows, 256), unit length
    stretches: tuple[tuple[float, float], ...]


def window_chunk(encoder: SpeakerEncoder, chunk: Chunk, options: DiarizationOptions
                 ) -> ChunkWindows:
    """Embeddings of the speech in one chunk (steps 1 and 2 above)."""
    from faster_whisper.vad import VadOptions

    vad = VadOptions(min_silence_duration_ms=options.vad_min_silence_ms,
                     speech_pad_ms=options.vad_pad_ms)
    step = max(1, round(options.step_s * RATE / HOP))
    min_frames = max(1, round(options.min_speech_s * RATE / HOP))
    mels: list[np.ndarray] = []
    starts: list[float] = []
    ends: list[float] = []
    stretches: list[tuple[float, float]] = []
    for lo, hi in chunk.speech(vad):
        piece = chunk.samples[lo:hi]
        begin = chunk.offset + lo / RATE
        stretches.append((begin, chunk.offset + hi / RATE))
        frames = mel_frames(piece * loudness_gain(piece), encoder.filters)
        count = frames.shape[0]
        if count >= WINDOW_FRAMES:
            offsets = list(range(0, count - WINDOW_FRAMES + 1, step))
            if offsets[-1] + WINDOW_FRAMES < count:
                offsets.append(count - WINDOW_FRAMES)  # the stretch's last 1.6 s too
            for first in offsets:
                mels.append(frames[first:first + WINDOW_FRAMES])
                starts.append(begin + first * HOP / RATE)
                ends.append(min(begin + (first + WINDOW_FRAMES) * HOP / RATE,
                                chunk.offset + hi / RATE))
        elif count >= min_frames:
            # Too short for a window: repeat it to fill one (repeating a voice keeps its
            # character; padding with silence would not).
            mels.append(np.resize(frames, (WINDOW_FRAMES, frames.shape[1])))
            starts.append(begin)
            ends.append(chunk.offset + hi / RATE)
    embeddings = (encoder.embed(np.stack(mels)) if mels
                  else np.zeros((0, 256), dtype=np.float32))
    return ChunkWindows(np.asarray(starts), np.asarray(ends), embeddings, tuple(stretches))


def _timed_window(encoder: SpeakerEncoder, chunk: Chunk, options: DiarizationOptions
                  ) -> tuple[ChunkWindows, float]:
    started = time.thread_time()
    found = window_chunk(encoder, chunk, options)
    return found, time.thread_time() - started


class Diarizer:
    """Speaker turns of one recording, fed chunk by chunk; use a new one per recording.

    With an `executor` (one worker thread), each chunk's embeddings are computed while the
    caller goes on transcribing the next one: NumPy and CTranslate2 both release the GIL, so on
    2 cores the encoder's single BLAS thread shares the CPU instead of adding its whole time
    to the recording's. At most `PENDING` chunks wait (their samples are held until then).
    """

    PENDING = 2

    def __init__(self, encoder: SpeakerEncoder, options: DiarizationOptions | None = None,
                 executor: Executor | None = None) -> None:
        self.encoder = encoder
        self.options = options or DiarizationOptions()
        self._executor = executor
        self._pending: deque[Future[tuple[ChunkWindows, float]]] = deque()
        self._state = _Windows()
        self._seconds = 0.0  # CPU time spent on this recording, for the log line
        self._compactions = 0

    def feed(self, chunk: Chunk) -> None:
        """Take one chunk's speech into account; keeps no audio and no window embedding."""
        if self._executor is None:
            found, spent = _timed_window(self.encoder, chunk, self.options)
            self._seconds += spent
            self.add(found)
            return
        self._pending.append(self._executor.submit(_timed_window, self.encoder, chunk,
                                                   self.options))
        while len(self._pending) > self.PENDING:
            self._collect()

    def _collect(self) -> None:
        found, spent = self._pending.popleft().result()  # re-raises the worker's exception
        self._seconds += spent
        self.add(found)

    def add(self, found: ChunkWindows) -> None:
        """Step 3: cluster one chunk's windows strictly and keep only the clusters' means."""
        state = self._state
        state.stretches.extend(found.stretches)
        if not len(found.starts):
            return
        local = cluster.agglomerate(found.embeddings, self.options.local_threshold)
        seconds = found.ends - found.starts
        base = len(state.owner)
        means = cluster.centroids(found.embeddings, local, seconds)
        for index in range(means.shape[0]):
            state.owner.append(len(state.means))
            state.means.append(means[index].astype(np.float32))
            state.weights.append(float(seconds[local == index].sum()))
        state.starts.extend(found.starts.tolist())
        state.ends.extend(found.ends.tolist())
        state.local.extend((local + base).tolist())
        if len(state.means) > self.options.max_items:
            self._compact()

    def _compact(self) -> None:
        """Merge the most alike local speakers until at most half of `max_items` are left.

        Keeps the final clustering's matrix bounded on long recordings: first only merges that
        are near certain (local_threshold), then looser ones in steps. Normally the global
        threshold is reached long before the bound needs more; if not (speech so varied that
        nothing is alike), the bound wins and merging goes on below it.
        """
        state = self._state
        means = np.stack(state.means)
        weights = np.asarray(state.weights)
        limit = max(1, self.options.max_items // 2)
        level = self.options.local_threshold
        while True:
            labels = cluster.agglomerate(means, level, weights)
            if labels.max() + 1 <= limit or level <= -1.0:
                break
            level -= 0.025
        merged = cluster.centroids(means, labels, weights)
        state.means = [row.astype(np.float32) for row in merged]
        state.weights = np.bincount(labels, weights=weights).tolist()
        state.owner = [int(labels[item]) for item in state.owner]
        self._compactions += 1

    def finish(self) -> tuple[SpeakerTurn, ...]:
        """Cluster the whole recording's local speakers and return its turns."""
        while self._pending:
            self._collect()
        started = time.thread_time()
        state = self._state
        if not state.means:
            return ()
        means = np.stack(state.means)
        weights = np.asarray(state.weights)
        speakers = cluster.agglomerate(means, self.options.threshold, weights)
        speakers = _fold_small(means, weights, speakers, self.options.min_speaker_s)
        window_speaker = speakers[np.asarray(state.owner)[np.asarray(state.local)]]
        turns = _turns(np.asarray(state.starts), np.asarray(state.ends), window_speaker,
                       state.stretches, self.options)
        self._seconds += time.thread_time() - started
        log.info("diarized", extra={"speakers": len({t.speaker for t in turns}),
                                    "turns": len(turns), "windows": len(state.starts),
                                    "local_clusters": len(state.owner),
                                    "compactions": self._compactions,
                                    "seconds": round(self._seconds, 2)})
        return turns


def _fold_small(means: np.ndarray, weights: np.ndarray, labels: np.ndarray,
                min_seconds: float) -> np.ndarray:
    """Give the speech of clusters under `min_seconds` to the most similar larger cluster."""
    totals = np.bincount(labels, weights=weights)
    big = np.flatnonzero(totals >= min_seconds)
    if big.size == 0 or big.size == totals.size:
        return labels
    centres = cluster.centroids(means, labels, weights)
    target = {int(small): int(big[np.argmax(centres[big] @ centres[small])])
              for small in np.flatnonzero(totals < min_seconds)}
    folded = np.array([target.get(int(label), int(label)) for label in labels])
    return cluster.first_appearance(folded)


def _turns(starts: np.ndarray, ends: np.ndarray, speakers: np.ndarray,
           stretches: list[tuple[float, float]], options: DiarizationOptions
           ) -> tuple[SpeakerTurn, ...]:
    """Each stretch split among the speakers of the windows nearest to each of its moments."""
    centres = (starts + ends) / 2
    order = np.argsort(centres, kind="stable")
    centres, speakers = centres[order], speakers[order]
    pieces: list[tuple[float, float, int]] = []
    for begin, end in sorted(stretches):
        inside = np.flatnonzero((centres >= begin) & (centres <= end))
        if inside.size == 0:
            # No window of its own (too short): the nearest window's speaker, if close.
            if centres.size == 0:
                continue
            middle = (begin + end) / 2
            nearest = int(np.argmin(np.abs(centres - middle)))
            if abs(centres[nearest] - middle) <= 2.0:
                pieces.append((begin, end, int(speakers[nearest])))
            continue
        local_centres = centres[inside]
        local_speakers = speakers[inside]
        # Boundaries halfway between neighbouring windows of different speakers.
        runs: list[list[float]] = []  # [start, end, speaker]
        run_start = begin
        for k in range(1, inside.size):
            if local_speakers[k] != local_speakers[k - 1]:
                cut = float((local_centres[k] + local_centres[k - 1]) / 2)
                runs.append([run_start, cut, float(local_speakers[k - 1])])
                run_start = cut
        runs.append([run_start, end, float(local_speakers[-1])])
        runs = _absorb_short(runs, options.min_turn_s)
        pieces.extend((a, b, int(s)) for a, b, s in runs)
    # Number speakers by first appearance on the timeline.
    order_of: dict[int, int] = {}
    labelled = []
    for a, b, s in sorted(pieces):
        index = order_of.setdefault(s, len(order_of))
        labelled.append((round(a, 3), round(b, 3), speaker_label(index)))
    return tuple(merge_runs(labelled))


def _absorb_short(runs: list[list[float]], min_seconds: float) -> list[list[float]]:
    """Runs shorter than `min_seconds` between others go to the longer neighbour."""
    changed = True
    while changed and len(runs) > 1:
        changed = False
        lengths = [b - a for a, b, _ in runs]
        shortest = int(np.argmin(lengths))
        if lengths[shortest] >= min_seconds:
            break
        if shortest == 0:
            neighbour = 1
        elif shortest == len(runs) - 1:
            neighbour = shortest - 1
        else:
            neighbour = (shortest - 1 if lengths[shortest - 1] >= lengths[shortest + 1]
                         else shortest + 1)
        runs[shortest][2] = runs[neighbour][2]
        merged: list[list[float]] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
            else:
                merged.append(list(run))
        runs = merged
        changed = True
    return runs
