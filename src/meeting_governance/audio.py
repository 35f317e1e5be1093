"""Streaming audio decoding with PyAV: 16 kHz mono float32 blocks, never the whole file.

faster-whisper's own `decode_audio` holds the entire recording in memory (as bytes, floats and
features, growing with its length); here a recording is read packet by packet so
the caller decides how much it keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from meeting_governance.errors import TranscriptionError

SAMPLE_RATE = 16_000
# How far the decoded length may fall short of the container's declared duration before the
# file counts as truncated (AAC priming and rounding account for a fraction of a second).
_TRUNCATION_TOLERANCE_S = 2.0
_TRUNCATION_TOLERANCE_RATIO = 0.05
# Input samples per resampling call (faster-whisper's figure: ~10 s at 48 kHz, a few MB).
_GROUP_SAMPLES = 500_000


@dataclass(frozen=True)
class AudioInfo:
    """What the container declares before decoding; `duration` is 0.0 when it does not say."""

    duration: float
    codec: str
    sample_rate: int
    channels: int


def _fail(path: Path, problem: str) -> TranscriptionError:
    return TranscriptionError(
        f"cannot transcribe {path.name}: {problem}; "
        "check that the file is a complete audio or video recording (re-download it if it was cut)"
    )


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise _fail(path, "the file does not exist")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not a readable media file ({type(exc).__name__})") from None


def _audio_info(path: Path, container: av.container.InputContainer) -> AudioInfo:
    if not container.streams.audio:
        raise _fail(path, "the file has no audio stream")
    stream = container.streams.audio[0]
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return AudioInfo(
        duration=max(duration, 0.0),
        codec=stream.codec_context.name,
        sample_rate=stream.codec_context.sample_rate or 0,
        channels=stream.codec_context.channels or 0,
    )


def probe(path: Path) -> AudioInfo:
    """Open the container only, to fail fast and to learn the duration for progress."""
    with _open(path) as container:
        return _audio_info(path, container)


def iter_audio(path: Path, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield the first audio stream as 16 kHz mono float32 blocks of about `block_seconds`.

    Undecodable packets are skipped (as faster-whisper does), but a file whose audio cannot be
    decoded at all, or stops well short of its declared duration, raises TranscriptionError:
    a silently shortened transcript would look complete.
    """
    block = max(1, int(block_seconds * SAMPLE_RATE))
    container = _open(path)
    try:
        info = _audio_info(path, container)
        stream = container.streams.audio[0]
        # Same conversion as faster_whisper.audio.decode_audio, so results match it exactly.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        pending_len = 0
        produced = 0
        try:
            for group in _grouped(_frames(path, container, stream)):
                for out in resampler.resample(group):
                    pcm = out.to_ndarray().reshape(-1)
                    pending.append(pcm)
                    pending_len += pcm.size
                if pending_len >= block:
                    data = np.concatenate(pending)
                    pending, pending_len = [], 0
                    for start in range(0, data.size - block + 1, block):
                        produced += block
                        yield _to_float(data[start : start + block])
                    rest = data[(data.size // block) * block :]
                    if rest.size:
                        pending, pending_len = [rest], rest.size
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise _fail(path, f"decoding failed ({type(exc).__name__})") from None
        if pending:
            tail = np.concatenate(pending)
            if tail.size:
                produced += tail.size
                yield _to_float(tail)
        _check_complete(path, info, produced / SAMPLE_RATE)
    finally:
        container.close()
        # No gc.collect() here (faster-whisper calls one per file against PyAV's old resampler
        # cycles, faster-whisper issue #390): with PyAV 18 reference counting frees the graph,
        # a test holds that, and a full collection in a process holding the model and the ORM
        # showed up in the pipeline benchmark on every recording.


def _frames(
    path: Path, container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame]:
    decoded_any = False
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue  # one damaged packet: skip it, as faster-whisper does
        for frame in frames:
            decoded_any = True
            yield frame
    if not decoded_any:
        raise _fail(path, "no audio could be decoded")


def _grouped(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Decoded frames joined into frames of about `_GROUP_SAMPLES`, as faster-whisper does.

    Resampling has a fixed cost per call whatever the frame's size, and an AAC frame holds
    only 1 024 samples: joining them first makes decoding several times faster for the same
    output. A frame whose format differs from the ones
    before it (a stream that changes layout or rate) closes the group first.
    """
    fifo = av.AudioFifo()
    for frame in frames:
        frame.pts = None  # the FIFO checks timestamps for gaps; decoding does not need them
        try:
            fifo.write(frame)
        except ValueError:  # another format: hand out what is held, start a new group
            if fifo.samples:
                yield from _drain(fifo)
            fifo = av.AudioFifo()
            fifo.write(frame)
        if fifo.samples >= _GROUP_SAMPLES:
            yield from _drain(fifo)
    if fifo.samples:
        yield from _drain(fifo)


def _drain(fifo: av.AudioFifo) -> Iterator[av.AudioFrame]:
    frame = fifo.read()  # everything held; None only when it holds nothing
    if frame is not None:
        yield frame


def _wav_shortfall(path: Path) -> int:
    """Bytes a WAV's `data` chunk declares beyond what the file holds (0 when complete).

    FFmpeg's WAV demuxer clamps the declared duration to the bytes present, so a WAV whose
    header promises ten hours but holds a second would otherwise pass as complete. The
    streaming marker 0xFFFFFFFF ("length unknown") is accepted as it is meant."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return 0
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if declared == 0xFFFFFFFF:
                    return 0
                return max(0, declared - (size - offset - 8))
            offset += 8 + declared + (declared & 1)
    return 0


def _check_complete(path: Path, info: AudioInfo, decoded: float) -> None:
    if decoded < 0.1:
        # Nothing a meeting could be; also what is left of a stream whose length was unknown.
        raise _fail(path, f"the file holds only {decoded * 1000:.0f} ms of audio")
    missing = _wav_shortfall(path)
    if missing > SAMPLE_RATE:  # more than about a second of 8-bit mono missing
        raise _fail(path, f"the WAV header declares {missing} more bytes of audio than the file "
                          "holds (truncated or damaged)")
    if info.duration <= 0:
        return
    allowed = max(_TRUNCATION_TOLERANCE_S, info.duration * _TRUNCATION_TOLERANCE_RATIO)
    if decoded + allowed < info.duration:
        raise _fail(
            path,
            f"the audio stops after {decoded:.1f} s of a declared {info.duration:.1f} s "
            "(truncated or damaged)",
        )


def _to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0
