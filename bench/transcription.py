#!/usr/bin/env python3
"""Transcription benchmark: speed (real-time factor), accuracy (WER) and peak memory.

    python bench/transcription.py [--quick] [--no-memory] [--long-minutes 60] [--out FILE]

On `meeting10.m4a` (587 s, several LibriSpeech/AMI speakers with pauses; reference text beside
it in ../shared/data/speech, or $MG_BENCH_SPEECH) it runs tiny.en (and base, when
`scripts/install-model base` has installed it), int8, in these modes, side by side in one run:

- plain:      bare `WhisperModel.transcribe(file)`, no voice-activity filter
- vad:        the same with `vad_filter=True` (faster-whisper's Silero VAD)
- chunked:    our `Transcriber` (streaming decode, VAD-cut chunks of `chunk_seconds`, VAD on,
              condition_on_previous_text off); _N: N-second chunks; _ctx: conditioning on
- batched:    `BatchedInferencePipeline(model).transcribe(file, batch_size=8)`
- chunked_batched: our `Transcriber(..., batch_size=8)`: each chunk's speech packed into
              30 s windows, 8 at a time, timestamps kept (`decoding.py` in the package)
- ..._beam1:  the same with greedy decoding, to see what beam search buys

WER is jiwer's after lower-casing and stripping punctuation on both sides. RTF is wall time of
the transcription (decode included, model load excluded) over the audio's length.

Memory: each case runs in its own subprocess and reports `ru_maxrss` (peak resident set):
bare `WhisperModel.transcribe` against our chunked `Transcriber`, on the 10-minute meeting and
on a ~1-hour recording made by repeating it (AAC packets remuxed, no re-encoding).

Prints one JSON document through `common.emit` (figures: `<model>_<mode>_rtf` and `_wer`,
`mem_*` peaks against bare faster-whisper, `mem_<model>_growth`, `chosen_default_rtf`; the
raw rows under details); `bench/run` merges it into results.json. WER is reported twice: as
the issue defines it, and after Whisper's English normaliser (`whisper-normalizer`).
Transcript text is never printed: only figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("MG_BENCH_SPEECH", REPO.parent / "shared" / "data" / "speech"))
MEETING = "meeting10.m4a"
MEETING_REF = "meeting10_ref.txt"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    """The issue's WER: jiwer after lower-casing and stripping punctuation."""
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def wer_whisper(reference: str, hypothesis: str) -> float | None:
    """WER after Whisper's English normaliser (spellings, numbers, contractions), the other
    normalisation ../shared/data/speech/README.md allows: "counselled" and "counseled" are
    then one word. None when the `whisper-normalizer` package is not installed."""
    try:
        import jiwer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return None
    norm = EnglishTextNormalizer()
    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def threads() -> int:
    return os.cpu_count() or 1


def load_model(name: str, compute_type: str = "int8") -> Any:
    from faster_whisper import WhisperModel

    from meeting_governance.transcribe import resolve_model

    return WhisperModel(
        str(resolve_model(name)),
        device="cpu",
        compute_type=compute_type,
        cpu_threads=threads(),
        local_files_only=True,
    )


@dataclass(frozen=True)
class Mode:
    name: str
    run: Callable[[Any, Path, str], str]  # (model, audio, model name) -> transcript text


def _bare(vad: bool, beam: int) -> Callable[[Any, Path, str], str]:
    def run(model: Any, path: Path, name: str) -> str:
        segments, _ = model.transcribe(str(path), beam_size=beam, vad_filter=vad)
        return " ".join(s.text for s in segments)

    return run


def _batched(beam: int, batch_size: int = 8) -> Callable[[Any, Path, str], str]:
    def run(model: Any, path: Path, name: str) -> str:
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(model)
        segments, _ = pipeline.transcribe(str(path), beam_size=beam, batch_size=batch_size)
        return " ".join(s.text for s in segments)

    return run


def _chunked(
    chunk_seconds: float, beam: int, batch: int = 0, context: bool = False
) -> Callable[[Any, Path, str], str]:
    def run(model: Any, path: Path, name: str) -> str:
        from meeting_governance.config import TranscriptionSettings
        from meeting_governance.transcribe import Transcriber

        settings = TranscriptionSettings(
            model=name, chunk_seconds=chunk_seconds, beam_size=beam, cpu_threads=threads()
        )
        transcriber = Transcriber(settings, model=model, batch_size=batch, condition_on_previous_text=context)
        return transcriber.transcribe(path).text

    return run


MODES = {
    "plain": Mode("plain", _bare(vad=False, beam=5)),
    "vad": Mode("vad", _bare(vad=True, beam=5)),
    "vad_beam1": Mode("vad_beam1", _bare(vad=True, beam=1)),
    "chunked": Mode("chunked", _chunked(600, beam=5)),
    "chunked_ctx": Mode("chunked_ctx", _chunked(600, beam=5, context=True)),
    "chunked_300": Mode("chunked_300", _chunked(300, beam=5)),
    "chunked_120": Mode("chunked_120", _chunked(120, beam=5)),
    "chunked_120_ctx": Mode("chunked_120_ctx", _chunked(120, beam=5, context=True)),
    "chunked_120_beam1": Mode("chunked_120_beam1", _chunked(120, beam=1)),
    "chunked_beam1": Mode("chunked_beam1", _chunked(600, beam=1)),
    "chunked_batched": Mode("chunked_batched", _chunked(600, beam=5, batch=8)),
    "chunked_120_batched": Mode("chunked_120_batched", _chunked(120, beam=5, batch=8)),
    "batched": Mode("batched", _batched(beam=5)),
    "batched_beam1": Mode("batched_beam1", _batched(beam=1)),
}
QUICK_MODES = ("plain", "vad", "chunked", "batched")
MEMORY_MODES = ("vad", "chunked_120")  # vad: bare faster-whisper, the baseline


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def audio_seconds(path: Path) -> float:
    from meeting_governance.audio import probe

    return probe(path).duration


def speed_accuracy(models: list[str], modes: list[str], audio: Path, reference: str) -> list[dict]:
    seconds = audio_seconds(audio)
    rows: list[dict] = []
    for name in models:
        started = time.monotonic()
        model = load_model(name)
        load_s = time.monotonic() - started
        for mode in modes:
            started = time.monotonic()
            text = MODES[mode].run(model, audio, name)
            wall = time.monotonic() - started
            rows.append(
                {
                    "model": name,
                    "compute_type": "int8",
                    "mode": mode,
                    "threads": threads(),
                    "audio_s": round(seconds, 1),
                    "wall_s": round(wall, 2),
                    "rtf": round(wall / seconds, 4),
                    "wer": round(wer(reference, text), 4),
                    "wer_whisper_norm": _round(wer_whisper(reference, text)),
                    "model_load_s": round(load_s, 2),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del model
    return rows


def repeat_audio(source: Path, times: int, dest: Path) -> Path:
    """`times` copies of `source` back to back, by remuxing its AAC packets (no re-encoding)."""
    import av

    with av.open(str(dest), "w", format="mp4") as out:
        out_stream = None
        end = 0  # dts just past the last packet written, in the stream's time base
        for _ in range(times):
            with av.open(str(source)) as src:
                in_stream = src.streams.audio[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(in_stream)
                shift: int | None = None
                for packet in src.demux(in_stream):
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's empty flush packet
                    if shift is None:
                        shift = end - packet.dts if end else 0
                    packet.dts += shift
                    packet.pts = packet.dts if packet.pts is None else packet.pts + shift
                    end = packet.dts + (packet.duration or 0)
                    packet.stream = out_stream
                    out.mux(packet)
    return dest


def peak_rss_mb() -> float:
    """This process's peak resident set in MiB.

    Linux keeps the parent's ru_maxrss as a floor across fork and exec (the forked copy's high
    water mark is carried into the new program), so a child started by a parent holding a
    model would report the parent's size. /proc/self/status VmHWM belongs to this program's own
    address space only; ru_maxrss is the fallback elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_child(mode: str, audio: Path, reference: str, model_name: str) -> dict:
    """Runs in its own process so that the peak is this case's and nothing else's."""
    started = time.monotonic()
    model = load_model(model_name)
    after_load = peak_rss_mb()
    load_s = time.monotonic() - started
    started = time.monotonic()
    text = MODES[mode].run(model, audio, model_name)
    wall = time.monotonic() - started
    peak = peak_rss_mb()
    seconds = audio_seconds(audio)
    return {
        "model": model_name,
        "mode": mode,
        "audio_s": round(seconds, 1),
        "peak_rss_mb": round(peak, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_model_load_mb": round(after_load, 1),
        "rtf": round(wall / seconds, 4),
        "wer": round(wer(reference, text), 4),
        "model_load_s": round(load_s, 2),
    }


def memory(model_name: str, audio: Path, reference: str, long_minutes: float) -> list[dict]:
    rows: list[dict] = []
    seconds = audio_seconds(audio)
    times = max(1, round(long_minutes * 60 / seconds))
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        long_audio = repeat_audio(audio, times, Path(tmp) / "long.m4a")
        long_reference = " ".join([reference] * times)
        for path, ref in ((audio, reference), (long_audio, long_reference)):
            ref_file = Path(tmp) / "ref.txt"
            ref_file.write_text(ref)
            for mode in MEMORY_MODES:
                cmd = [
                    sys.executable, __file__, "--rss-child", mode, "--audio", str(path),
                    "--ref", str(ref_file), "--models", model_name,
                ]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    rows.append({"mode": mode, "audio_s": None, "error": done.stderr[-500:]})
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row["baseline"] = "bare WhisperModel.transcribe" if mode == "vad" else None
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def environment() -> dict:
    import ctranslate2
    import faster_whisper
    from common import _cpu_model as cpu_model

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def installed_models() -> list[str]:
    from meeting_governance.errors import ConfigError
    from meeting_governance.transcribe import resolve_model

    found = []
    for name in ("tiny.en", "base"):
        try:
            resolve_model(name)
            found.append(name)
        except ConfigError:
            pass
    return found


def run(
    quick: bool = False, with_memory: bool = True, long_minutes: float = 60.0,
    models: list[str] | None = None, modes: list[str] | None = None,
    memory_models: tuple[str, ...] = ("tiny.en",),
) -> dict:  # fmt: skip
    """Every transcription figure as one dict (the shape bench/run merges)."""
    audio = SPEECH / MEETING
    reference = (SPEECH / MEETING_REF).read_text()
    models = models or installed_models()
    modes = modes or list(QUICK_MODES if quick else MODES)
    result: dict[str, Any] = {
        "environment": environment(),
        "audio": {"file": MEETING, "seconds": round(audio_seconds(audio), 1)},
    }
    if with_memory:  # first, while this parent process is still small
        result["memory"] = [
            row for name in memory_models for row in memory(name, audio, reference, long_minutes)
        ]
    result["speed_accuracy"] = speed_accuracy(models, modes, audio, reference)
    return result


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def choose_default(rows: list[dict]) -> dict | None:
    """The issue's rule: the fastest setting within 0.5 points of the best WER."""
    usable = [r for r in rows if r.get("wer") is not None]
    if not usable:
        return None
    best = min(r["wer"] for r in usable)
    return min((r for r in usable if r["wer"] <= best + 0.005), key=lambda r: r["rtf"])


def figures_of(result: dict) -> dict[str, dict]:
    """results.json figures: RTF per model and mode (WER in the notes and its own figure),
    peak memory per case against bare faster-whisper on the same file, and how much the
    chunked Transcriber's peak grows from the 10-minute meeting to the long recording."""
    from common import figure

    out: dict[str, dict] = {}
    for row in result.get("speed_accuracy", []):
        key = f"{_key(row['model'])}_{row['mode']}"
        whisper_norm = row.get("wer_whisper_norm")
        extra = "" if whisper_norm is None else f", {whisper_norm * 100:.2f} % Whisper-normalised"
        out[f"{key}_rtf"] = figure(row["rtf"], "x", notes=(
            f"WER {row['wer'] * 100:.2f} %{extra}, {row['threads']} threads, "
            f"{row['compute_type']}"))
        out[f"{key}_wer"] = figure(row["wer"] * 100, "%", digits=2, notes=(
            "jiwer after lower-casing and stripping punctuation" + extra))
    memory_rows = [r for r in result.get("memory", []) if r.get("audio_s")]
    bare = {(r["model"], r["audio_s"]): r["peak_rss_mb"] for r in memory_rows if r["mode"] == "vad"}
    for row in memory_rows:
        minutes = round(row["audio_s"] / 60)
        out[f"mem_{_key(row['model'])}_{row['mode']}_{minutes}min"] = figure(
            row["peak_rss_mb"], "MiB", digits=1,
            baseline=None if row["mode"] == "vad" else bare.get((row["model"], row["audio_s"])),
            notes=(f"peak RSS transcribing {minutes} min; WER {row['wer'] * 100:.2f} %"
                   + ("; bare faster-whisper (decodes the whole file)" if row["mode"] == "vad"
                      else "; baseline: bare faster-whisper on the same file")))
    for model in sorted({r["model"] for r in memory_rows}):
        chunked = sorted((r for r in memory_rows if r["model"] == model
                          and r["mode"] == "chunked_120"), key=lambda r: r["audio_s"])
        if len(chunked) >= 2:
            short, long_ = chunked[0], chunked[-1]
            out[f"mem_{_key(model)}_growth"] = figure(
                long_["peak_rss_mb"], "MiB", digits=1, baseline=short["peak_rss_mb"],
                notes=(f"chunked 120 s: {round(long_['audio_s'] / 60)} min vs "
                       f"{round(short['audio_s'] / 60)} min; goal ratio <= 1.10"))
    chosen = choose_default(result.get("speed_accuracy", []))
    if chosen is not None:
        out["chosen_default_rtf"] = figure(chosen["rtf"], "x", notes=(
            f"{chosen['model']} {chosen['mode']}: the fastest within 0.5 points of the best "
            f"WER on this one file; its WER {chosen['wer'] * 100:.2f} %; goal RTF <= 0.02 at "
            "WER <= 2 %; the default follows bench/decoding.py, which scores several recordings"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="plain, vad, chunked, batched only")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--models", nargs="*", help="default: every installed model")
    parser.add_argument("--modes", nargs="*", choices=sorted(MODES))
    parser.add_argument("--memory-models", nargs="*", default=["tiny.en"],
                        help="models whose peak memory is measured (default: tiny.en)")
    parser.add_argument("--out", type=Path, help="also write the raw rows here")
    parser.add_argument("--rss-child", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        row = rss_child(args.rss_child, args.audio, args.ref.read_text(), args.models[0])
        print(json.dumps(row))
        return 0
    result = run(args.quick, not args.no_memory, args.long_minutes, args.models, args.modes,
                 tuple(args.memory_models))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    from common import emit

    chosen = choose_default(result.get("speed_accuracy", []))
    details = {"environment": result["environment"], "audio": result["audio"],
               "chosen_default": chosen, "speed_accuracy": result.get("speed_accuracy", []),
               "memory": result.get("memory", [])}
    emit("transcription", figures_of(result), details, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
