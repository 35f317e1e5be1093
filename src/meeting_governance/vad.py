"""Voice-activity detection run once per recording, shared by the chunk cutter and the model.

faster-whisper's `vad_filter` runs Silero VAD over whatever audio it is given, and cutting a
long recording into chunks at pauses needs VAD around every boundary too: with 120-second
chunks that was about 1.5 passes of Silero over every recording, a fifth of the whole
transcription time on 2 cores. Here the speech probability of each 512-sample window is
computed once, as the stream is decoded, with the model's recurrent state carried from block
to block (so the figures are exactly those of one pass over the whole file), and both the
cutter and the transcriber read stretches of speech off them.

`speech_stretches` is faster-whisper's `get_speech_timestamps` (MIT licence, SYSTRAN) with the
model call taken out: the same thresholds, padding and splitting, on given probabilities. A
test checks that the two agree on real speech.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper.vad import VadOptions

WINDOW = 512  # samples per Silero VAD window at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees with each window
RATE = 16_000


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    """Silero VAD v6 from faster-whisper's package assets (never a download), loaded once."""
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1  # tiny model: a second thread only adds hand-offs
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(
        os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
        providers=["CPUExecutionProvider"],
        sess_options=options,
    )


def speech_stretches(probs: np.ndarray, length: int, options: VadOptions) -> list[dict[str, int]]:
    """Stretches of speech, in samples, from per-window speech probabilities.

    `length` is the number of audio samples the windows stand for (the last window may be
    padding). Same rules, step by step, as faster_whisper.vad.get_speech_timestamps.
    """
    threshold = options.threshold
    neg_threshold = options.neg_threshold
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    min_speech = RATE * options.min_speech_duration_ms / 1000
    pad = RATE * options.speech_pad_ms / 1000
    max_speech = RATE * options.max_speech_duration_s - WINDOW - 2 * pad
    min_silence = RATE * options.min_silence_duration_ms / 1000
    min_silence_at_max_speech = RATE * 98 / 1000

    triggered = False
    speeches: list[dict[str, int]] = []
    current: dict[str, int] = {}
    temp_end = prev_end = next_start = 0
    for i, prob in enumerate(np.asarray(probs, dtype=np.float32).reshape(-1).tolist()):
        here = WINDOW * i
        if prob >= threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = here
        if prob >= threshold and not triggered:
            triggered = True
            current["start"] = here
            continue
        if triggered and here - current["start"] > max_speech:
            if prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                current["end"] = here
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if prob < neg_threshold and triggered:
            if not temp_end:
                temp_end = here
            if here - temp_end > min_silence_at_max_speech:
                prev_end = temp_end
            if here - temp_end < min_silence:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            continue
    if current and length - current["start"] > min_speech:
        current["end"] = length
        speeches.append(current)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * pad:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(length, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(length, speech["end"] + pad))
    return speeches


@dataclass(frozen=True)
class SpeechMap:
    """Speech probabilities for a stretch of audio, in the caller's sample coordinates.

    `values[i]` is the probability for the window that starts at sample `origin + i * WINDOW`;
    `origin` may be negative when the first window began before the caller's sample 0.
    """

    values: np.ndarray
    origin: int = 0

    @classmethod
    def of(cls, samples: np.ndarray) -> SpeechMap:
        """Probabilities for a lone piece of audio (a fresh VAD pass from its first sample)."""
        stream = VadStream()
        stream.feed(samples)
        stream.finish()
        return stream.map(0, samples.size)

    def speech(self, lo: int, hi: int, options: VadOptions) -> list[tuple[int, int]]:
        """(start, end) stretches of speech between samples `lo` and `hi`, clipped to them."""
        if hi <= lo:
            return []
        first = max(0, (lo - self.origin) // WINDOW)
        last = min(self.values.size, -(-(hi - self.origin) // WINDOW))
        if last <= first:
            return []
        base = self.origin + first * WINDOW
        found = speech_stretches(self.values[first:last], hi - base, options)
        out: list[tuple[int, int]] = []
        for stretch in found:
            start, end = max(lo, stretch["start"] + base), min(hi, stretch["end"] + base)
            if end > start:
                out.append((start, end))
        return out


class VadStream:
    """Silero VAD over a stream of 16 kHz float32 blocks, each sample seen once.

    Windows are aligned on the stream's first sample; the model's recurrent state and the
    64 samples of context carry across `feed` calls, so the probabilities equal those of one
    pass over the concatenated audio. `forget_before` drops what a consumer no longer needs,
    which keeps memory bounded on long recordings (one float per 512 samples in any case).
    """

    def __init__(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._tail = np.zeros(0, dtype=np.float32)  # fed samples not yet a whole window
        self._values = np.zeros(0, dtype=np.float32)
        self._first = 0  # stream index of the window self._values[0] belongs to
        self._finished = False

    @property
    def windows(self) -> int:
        """Windows computed so far, from the start of the stream."""
        return self._first + self._values.size

    def feed(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("VadStream.feed after finish")
        data = np.concatenate([self._tail, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = (data.size // WINDOW) * WINDOW
        self._tail = data[whole:].copy()
        if whole:
            self._run(data[:whole])

    def finish(self) -> None:
        """The stream has ended: the last partial window is padded with silence."""
        if self._finished:
            return
        self._finished = True
        # faster-whisper pads to the next multiple of 512 plus one, so a length that already is
        # a multiple gets a whole window of silence: the same here, for the same figures.
        padded = np.zeros(WINDOW, dtype=np.float32)
        padded[: self._tail.size] = self._tail
        self._tail = np.zeros(0, dtype=np.float32)
        self._run(padded)

    def _run(self, data: np.ndarray) -> None:
        windows = data.reshape(-1, WINDOW)
        context = np.empty((windows.shape[0], CONTEXT), dtype=np.float32)
        context[0] = self._context
        context[1:] = windows[:-1, -CONTEXT:]
        batch = np.concatenate([context, windows], axis=1)
        outputs = []
        for start in range(0, batch.shape[0], 10_000):  # faster-whisper's batch size
            out, self._h, self._c = _session().run(
                None, {"input": batch[start : start + 10_000], "h": self._h, "c": self._c}
            )
            outputs.append(np.asarray(out, dtype=np.float32).reshape(-1))
        self._context = windows[-1, -CONTEXT:].copy()
        self._values = np.concatenate([self._values, *outputs])

    def map(self, start: int, end: int) -> SpeechMap:
        """Probabilities covering stream samples [start, end), with sample `start` as 0.

        Windows not computed yet (the stream has not reached them) read as silence.
        """
        first = start // WINDOW
        last = max(first, math.ceil(end / WINDOW))
        values = np.zeros(last - first, dtype=np.float32)
        lo, hi = max(first, self._first), min(last, self.windows)
        if hi > lo:
            values[lo - first : hi - first] = self._values[lo - self._first : hi - self._first]
        return SpeechMap(values=values, origin=first * WINDOW - start)

    def forget_before(self, sample: int) -> None:
        """Drop the windows that end at or before stream sample `sample`."""
        keep_from = max(self._first, sample // WINDOW)
        if keep_from > self._first:
            self._values = self._values[keep_from - self._first :].copy()
            self._first = keep_from
