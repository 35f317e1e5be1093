"""The speech the benchmarks transcribe, with reference texts: what `decoding.py` scores and
`throughput.py` queues.

- `meeting10.m4a` (587 s, AAC, several speakers with pauses) and `ls60.flac` (60 s of
  LibriSpeech joined without pauses) from ../shared/data/speech (or $MG_BENCH_SPEECH);
- the corpus' short clips one by one (2 to 16 s each: the short-recording case);
- `long_meeting(minutes)`: an hour-long meeting built from those clips in a seeded random order,
  with pauses drawn like meeting10's (mostly 0.6-3 s between turns, now and then 5-20 s, one
  break of a minute every 20 minutes) and a level per turn, encoded as AAC at 48 kHz the way
  Teams carries audio. Built once and cached (~/.cache/meeting-governance/bench, keyed by its
  inputs); the same inputs give the same file.

The corpus has 19 distinct utterances (about 2 minutes of distinct speech): the long meeting
repeats them in new orders and contexts, so it tests windowing and long-recording behaviour,
not new words. Nothing here prints transcript text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("MG_BENCH_SPEECH", REPO.parent / "shared" / "data" / "speech"))
RATE = 16_000
OUT_RATE = 48_000  # Teams recordings carry 48 kHz AAC
BIT_RATE = 64_000
BUILD_VERSION = 1  # bump when the recipe changes: the cache key includes it


@dataclass(frozen=True)
class Recording:
    """One recording to transcribe, with what it should say."""

    name: str
    path: Path
    seconds: float
    reference: str
    kind: str  # "meeting", "join", "clip", "long"


def available() -> bool:
    return (SPEECH / "meeting10.m4a").is_file() and (SPEECH / "manifest.tsv").is_file()


def clips() -> list[Recording]:
    """Every clip of the corpus, alone (the reference texts come from its manifest)."""
    with (SPEECH / "manifest.tsv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [Recording(row["file"], SPEECH / row["file"], float(row["seconds"]), row["reference"],
                      "clip") for row in rows]


def meeting10() -> Recording:
    return Recording("meeting10", SPEECH / "meeting10.m4a", 587.1,
                     (SPEECH / "meeting10_ref.txt").read_text(encoding="utf-8"), "meeting")


def ls60() -> Recording:
    return Recording("ls60", SPEECH / "ls60.flac", 60.5,
                     (SPEECH / "ls60_ref.txt").read_text(encoding="utf-8"), "join")


def _decode(path: Path) -> np.ndarray:
    from meeting_governance.audio import iter_audio

    return np.concatenate(list(iter_audio(path)))


def _turns(names: list[str], seconds: float, seed: int) -> Iterator[tuple[str, float, float]]:
    """(clip, pause before it in seconds, gain) until about `seconds` of meeting."""
    rng = random.Random(seed)
    at, previous, since_break = 0.0, "", 0.0
    lengths = {name: _length(name) for name in names}
    while at < seconds:
        name = rng.choice([n for n in names if n != previous])
        if since_break > 20 * 60:
            pause, since_break = 60.0, 0.0
        elif rng.random() < 0.05:
            pause = rng.uniform(5.0, 20.0)
        else:
            pause = min(max(rng.lognormvariate(np.log(1.6), 0.45), 0.6), 4.0)
        yield name, pause, rng.uniform(0.6, 1.0)
        at += pause + lengths[name]
        since_break += pause + lengths[name]
        previous = name


def _length(name: str) -> float:
    return next(c.seconds for c in clips() if c.name == name)


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "meeting-governance" / "bench"


def long_meeting(minutes: float = 60.0, seed: int = 19) -> Recording:
    """An hour (or `minutes`) of meeting made of the corpus' clips; built once, then cached."""
    corpus = {c.name: c for c in clips() if c.path.suffix == ".flac"}
    names = sorted(corpus)
    key = hashlib.sha256(json.dumps(
        [BUILD_VERSION, minutes, seed, [(n, corpus[n].path.stat().st_size) for n in names]]
    ).encode()).hexdigest()[:12]
    out = _cache_dir() / f"long-{minutes:g}min-{key}.m4a"
    meta = out.with_suffix(".json")
    if not (out.is_file() and meta.is_file()):
        out.parent.mkdir(parents=True, exist_ok=True)
        segments = _encode(out.with_suffix(".tmp.m4a"), corpus, names, minutes * 60, seed)
        meta.write_text(json.dumps(segments), encoding="utf-8")
        out.with_suffix(".tmp.m4a").replace(out)
    segments = json.loads(meta.read_text(encoding="utf-8"))
    reference = " ".join(corpus[s["clip"]].reference for s in segments)
    seconds = segments[-1]["end"] + 1.0 if segments else 0.0
    return Recording(f"long{minutes:g}", out, round(seconds, 1), reference, "long")


def _encode(dest: Path, corpus: dict[str, Recording], names: list[str], seconds: float,
            seed: int) -> list[dict[str, object]]:
    """Write the meeting as AAC/MP4, turn by turn (bounded memory); return where each turn is."""
    import av

    audio = {name: _decode(corpus[name].path) for name in names}
    segments: list[dict[str, object]] = []
    with av.open(str(dest), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=OUT_RATE, layout="mono")
        stream.bit_rate = BIT_RATE
        container.metadata.clear()
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=OUT_RATE)
        written = 0  # samples at RATE

        def write(samples: np.ndarray) -> None:
            nonlocal written
            for start in range(0, samples.size, RATE):
                piece = np.ascontiguousarray(samples[start:start + RATE], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = RATE, written
                written += piece.size
                for resampled in resampler.resample(frame):
                    for packet in stream.encode(resampled):
                        container.mux(packet)

        for name, pause, gain in _turns(names, seconds, seed):
            write(np.zeros(int(pause * RATE), dtype=np.float32))
            start = written / RATE
            write(audio[name] * gain)
            segments.append({"start": round(start, 3), "end": round(written / RATE, 3),
                             "clip": name})
        write(np.zeros(RATE, dtype=np.float32))
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return segments


def evaluation_set(long_minutes: float) -> list[Recording]:
    """What decoding modes are scored on: meeting10, ls60, every clip alone, the long meeting
    (left out when `long_minutes` is 0)."""
    found = [meeting10(), ls60(), *clips()]
    if long_minutes > 0:
        found.append(long_meeting(long_minutes))
    return found
