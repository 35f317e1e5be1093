#!/usr/bin/env python3
"""Diarization benchmark: diarization error rate, the time it adds, and its memory.

    python bench/diarization.py [--quick] [--no-memory] [--long-minutes 120]

Needs the speaker encoder (`scripts/install-model resemblyzer`) and `pyannote.metrics` (the
dev extra). Speech comes from ../shared/data/speech (or $MG_BENCH_SPEECH).

- **DER** with `pyannote.metrics` (`DiarizationErrorRate`, collar 0.5 s in pyannote's terms,
  i.e. 0.25 s either side of every reference boundary, overlapping speech scored) on
  `meeting10.m4a` against `meeting10_segments.tsv` (9 speakers, 57 utterances), and on
  recordings built here from clips of other corpora (AMI meeting headset, the faster-whisper
  stereo pair, JFK, LibriSpeech): a quick five-way dialogue with 0.3 s pauses, the stereo pair
  mixed to mono (two people talking at once), and one speaker alone (any second label is an
  error). Baseline: the same speech given to a single speaker (pyannote's usual floor).
  The reference segments are whole clips, including each clip's silent lead-in and tail, so
  "missed" speech is mostly reference silence; confusion is the speaker-attribution error.
- **Threshold**: the clustering threshold is swept on every recording and chosen by the rule
  in `choose_threshold` (lowest mean DER; of equals, the higher threshold, because splitting
  one person into two labels is safer than merging two people when turns are redacted per
  person). The figure says whether the configured default is that choice.
- **Time**: tiny.en `Transcriber` with and without diarization on the same file, in turns
  (wall clock and process CPU), plus the diarizer's own seconds. Target: under 15 %.
- **Attribution**: the share of transcript words whose segment's speaker label maps (optimal
  one-to-one mapping of labels to reference speakers) to the speaker who said them.
- **Memory**: peak RSS of child processes for 10 minutes against 2 hours (the meeting repeated,
  AAC remuxed): diarization alone (decode, VAD, encoder, clustering; a couple of minutes) and,
  in full mode, transcription with and without diarization (about ten minutes each for 2 h).

Prints one JSON document through `common.emit`. Never prints transcript text or embeddings.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
SPEECH = Path(os.environ.get("MG_BENCH_SPEECH", REPO.parent / "shared" / "data" / "speech"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import emit, figure, progress, quick_mode  # noqa: E402

# The defaults these figures depend on: a change marks them stale in the generated prose.
SETTINGS = ["transcription", "diarization"]
QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 5400
QUICK_TIMEOUT_S = 900

COLLAR = 0.5  # pyannote's collar is the total: 0.25 s either side of a reference boundary
THRESHOLDS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
RATE = 16_000


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    reference: list[tuple[float, float, str]]
    what: str


def read_reference(tsv: Path) -> list[tuple[float, float, str]]:
    with tsv.open(newline="") as handle:
        return [(float(r["start"]), float(r["end"]), r["speaker"])
                for r in csv.DictReader(handle, delimiter="\t")]


def annotation(items: list[tuple[float, float, str]]) -> Any:
    from pyannote.core import Annotation, Segment

    result = Annotation()
    for start, end, who in items:
        if end > start:
            result[Segment(start, end)] = who
    return result


def score(reference: list[tuple[float, float, str]], turns: list[tuple[float, float, str]],
          collar: float = COLLAR) -> dict[str, float]:
    """DER and its parts as fractions of the reference speech, from pyannote.metrics."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    detail = metric(annotation(reference), annotation(turns), detailed=True)
    total = detail["total"] or 1.0
    return {"der": round(detail["diarization error rate"], 4),
            "confusion": round(detail["confusion"] / total, 4),
            "missed": round(detail["missed detection"] / total, 4),
            "false_alarm": round(detail["false alarm"] / total, 4),
            "reference_s": round(total, 1)}


# -- building the other recordings -----------------------------------------------------------

def decode(path: Path) -> np.ndarray:
    from meeting_governance.audio import iter_audio

    return np.concatenate(list(iter_audio(path)))


def write_wav(path: Path, samples: np.ndarray) -> Path:
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def joined(clips: list[tuple[str, str]], pause_s: float, dest: Path
           ) -> tuple[Path, list[tuple[float, float, str]]]:
    """Clips back to back with `pause_s` of silence between; the reference is clip by clip."""
    pieces, reference, at = [], [], 0
    pause = np.zeros(int(pause_s * RATE), dtype=np.float32)
    for name, who in clips:
        speech = decode(SPEECH / name)
        reference.append((at / RATE, (at + speech.size) / RATE, who))
        pieces += [speech, pause]
        at += speech.size + pause.size
    return write_wav(dest, np.concatenate(pieces)), reference


def stereo_mix(dest: Path) -> tuple[Path, list[tuple[float, float, str]]]:
    """The faster-whisper stereo pair summed to mono; each side's speech from its own VAD."""
    from faster_whisper.vad import VadOptions

    from meeting_governance.vad import SpeechMap

    left, right = decode(SPEECH / "stereo_diar_left.flac"), decode(SPEECH / "stereo_diar_right.flac")
    size = max(left.size, right.size)
    left, right = np.pad(left, (0, size - left.size)), np.pad(right, (0, size - right.size))
    reference = []
    for samples, who in ((left, "FW-L"), (right, "FW-R")):
        options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
        for start, end in SpeechMap.of(samples).speech(0, samples.size, options):
            reference.append((start / RATE, end / RATE, who))
    return write_wav(dest, (left + right) / 2), sorted(reference)


def cases(work: Path) -> list[Case]:
    out = [Case("meeting10", SPEECH / "meeting10.m4a", read_reference(SPEECH / "meeting10_segments.tsv"),
                "10 min, 9 speakers (LibriSpeech, AMI, JFK, faster-whisper pair), 1-2 s pauses")]
    dialogue = [("ami-ES2011a-h0-40s-46s.flac", "AMI"), ("1988-24833-0000.flac", "LS-1988"),
                ("stereo_diar_left.flac", "FW-L"), ("2412-153948-0002.flac", "LS-2412"),
                ("1988-24833-0002.flac", "LS-1988"), ("ami-ES2011a-h0-40s-46s.flac", "AMI"),
                ("2412-153948-0001.flac", "LS-2412"), ("stereo_diar_left.flac", "FW-L"),
                ("1988-24833-0003.flac", "LS-1988"), ("3752-4944-0001.flac", "LS-3752")]
    path, reference = joined(dialogue, 0.3, work / "dialogue.wav")
    out.append(Case("dialogue", path, reference, "5 speakers of 3 corpora, 0.3 s pauses"))
    path, reference = stereo_mix(work / "stereo_mix.wav")
    out.append(Case("stereo_mix", path, reference, "two people at once (faster-whisper pair)"))
    single = [(f"1988-24833-000{i}.flac", "LS-1988") for i in range(4)] * 2
    path, reference = joined(single, 0.8, work / "one_speaker.wav")
    out.append(Case("one_speaker", path, reference, "one LibriSpeech speaker, 8 utterances"))
    return out


# -- diarization without the transcriber (embeddings once, clustering swept) ----------------

def windows(path: Path, step_s: float) -> tuple[list[Any], float]:
    """Each chunk's windows and embeddings, as the transcriber's chunks would give them."""
    from meeting_governance.config import TranscriptionSettings
    from meeting_governance.diarization.diarizer import DiarizationOptions, window_chunk
    from meeting_governance.diarization.encoder import SpeakerEncoder
    from meeting_governance.transcribe import iter_chunks

    encoder = SpeakerEncoder.load("resemblyzer")
    options = DiarizationOptions(step_s=step_s)
    found, spent = [], 0.0
    for chunk in iter_chunks(path, TranscriptionSettings().chunk_seconds):
        started = time.process_time()
        found.append(window_chunk(encoder, chunk, options))
        spent += time.process_time() - started
    return found, spent


def cluster_turns(found: list[Any], threshold: float) -> list[tuple[float, float, str]]:
    from meeting_governance.diarization.diarizer import DiarizationOptions, Diarizer

    defaults = DiarizationOptions()
    options = replace(defaults, threshold=threshold,
                      local_threshold=max(defaults.local_threshold, threshold))
    diarizer = Diarizer(encoder=None, options=options)  # type: ignore[arg-type]
    for item in found:
        diarizer.add(item)
    return [(t.start, t.end, t.speaker) for t in diarizer.finish()]


def one_speaker(turns: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The baseline: the same speech, all given to one speaker."""
    return [(start, end, "everyone") for start, end, _ in turns]


def choose_threshold(sweeps: dict[str, list[dict[str, Any]]]) -> tuple[float, dict[float, float]]:
    """The threshold with the lowest DER averaged over every recording (meeting10 and the
    others); of equals (within 0.001), the higher one: splitting one person into two labels is
    the safer error when turns are redacted per person. Returns it and the mean DER of each."""
    mean = {t: float(np.mean([next(r["der"] for r in rows if r["threshold"] == t)
                              for rows in sweeps.values()])) for t in THRESHOLDS}
    best = min(mean.values())
    return max(t for t, der in mean.items() if der <= best + 0.001), mean


# -- time added to transcription ----------------------------------------------------------

def overhead(path: Path, repeats: int) -> dict[str, Any]:
    from meeting_governance.config import DiarizationSettings, TranscriptionSettings
    from meeting_governance.diarization import Diarization
    from meeting_governance.transcribe import Transcriber

    plain = Transcriber(TranscriptionSettings())
    diarization = Diarization.from_settings(DiarizationSettings(enabled=True))
    with_speakers = Transcriber(TranscriptionSettings(), model=plain.model, diarization=diarization)
    plain.transcribe(path)  # warm-up: model caches, page cache, BLAS threads
    walls: dict[str, list[float]] = {"plain": [], "diarized": []}
    cpus: dict[str, list[float]] = {"plain": [], "diarized": []}
    result = None
    for _ in range(repeats):
        for name, transcriber in (("plain", plain), ("diarized", with_speakers)):
            started, cpu = time.perf_counter(), time.process_time()
            out = transcriber.transcribe(path)
            walls[name].append(time.perf_counter() - started)
            cpus[name].append(time.process_time() - cpu)
            if name == "diarized":
                result = out
    return {"wall": {k: float(np.median(v)) for k, v in walls.items()},
            "cpu": {k: float(np.median(v)) for k, v in cpus.items()},
            "runs": walls, "result": result}


def attribution(result: Any, reference: list[tuple[float, float, str]]) -> dict[str, Any]:
    """Share of words in segments whose label maps to the speaker who said them."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = [(t.start, t.end, t.speaker) for t in result.turns]
    mapping = DiarizationErrorRate().optimal_mapping(annotation(reference), annotation(hypothesis))
    right = words = unlabelled = 0
    for segment in result.segments:
        count = len(segment.text.split())
        words += count
        truth, best = None, 0.0
        for start, end, who in reference:
            overlap = min(end, segment.end) - max(start, segment.start)
            if overlap > best:
                truth, best = who, overlap
        if segment.speaker is None:
            unlabelled += count
        elif mapping.get(segment.speaker) == truth:
            right += count
    return {"accuracy": round(right / words, 4) if words else None, "words": words,
            "unlabelled_words": unlabelled}


# -- memory -----------------------------------------------------------------------------------

def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(mode: str, path: Path) -> dict[str, Any]:
    """One case in its own process: its peak is its own."""
    from meeting_governance.audio import probe
    from meeting_governance.config import DiarizationSettings, TranscriptionSettings
    from meeting_governance.diarization import Diarization
    from meeting_governance.transcribe import Transcriber, iter_chunks

    started = time.monotonic()
    speakers = 0
    if mode == "diarize":
        diarization = Diarization.from_settings(DiarizationSettings(enabled=True))
        assert diarization is not None
        diarizer = diarization.diarizer()
        for chunk in iter_chunks(path, TranscriptionSettings().chunk_seconds):
            diarizer.feed(chunk)
        speakers = len({t.speaker for t in diarizer.finish()})
    else:
        diarization = (Diarization.from_settings(DiarizationSettings(enabled=True))
                       if mode == "transcribe+diarize" else None)
        result = Transcriber(TranscriptionSettings(), diarization=diarization).transcribe(path)
        speakers = len({t.speaker for t in result.turns})
    return {"mode": mode, "audio_s": round(probe(path).duration, 1),
            "peak_rss_mb": round(vm_hwm_mb(), 1), "wall_s": round(time.monotonic() - started, 1),
            "speakers": speakers}


def memory(modes: list[str], long_minutes: float, work: Path) -> list[dict[str, Any]]:
    from transcription import repeat_audio

    meeting = SPEECH / "meeting10.m4a"
    from meeting_governance.audio import probe

    times = max(2, round(long_minutes * 60 / probe(meeting).duration))
    long_audio = repeat_audio(meeting, times, work / "long.m4a")
    rows = []
    for mode in modes:
        for path in (meeting, long_audio):
            progress(f"memory: {mode} on {path.name}")
            cmd = [sys.executable, __file__, "--memory-child", mode, "--audio", str(path)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                rows.append({"mode": mode, "error": done.stderr[-800:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            progress(json.dumps(rows[-1]))
    return rows


# -- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="overhead on 60 s; memory of diarization alone only (10 min vs 2 h)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--long-minutes", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, help="overhead runs per side (default 3, quick 1)")
    parser.add_argument("--memory-child", choices=["diarize", "transcribe", "transcribe+diarize"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.audio)))
        return 0
    quick = quick_mode(args.quick)
    from meeting_governance.config import DiarizationSettings

    default = DiarizationSettings()
    figures: dict[str, dict[str, Any]] = {}
    details: dict[str, Any] = {"collar_s": COLLAR, "collar_meaning": "pyannote total; 0.25 s "
                               "either side of each reference boundary", "sets": {}}
    with tempfile.TemporaryDirectory(prefix="mg-bench-diar-") as tmp:
        work = Path(tmp)
        all_cases = cases(work)
        for case in all_cases:
            progress(f"windows and embeddings: {case.name}")
            found, cpu = windows(case.path, default.step_seconds)
            speakers = len({who for _, _, who in case.reference})
            rows = []
            for threshold in THRESHOLDS:
                turns = cluster_turns(found, threshold)
                row = {"threshold": threshold, **score(case.reference, turns),
                       "speakers_found": len({who for _, _, who in turns})}
                if threshold == default.threshold:
                    row["baseline_one_speaker"] = score(case.reference, one_speaker(turns))
                rows.append(row)
            chosen = next(r for r in rows if r["threshold"] == default.threshold)
            details["sets"][case.name] = {"what": case.what, "speakers": speakers,
                                          "encoder_cpu_s": round(cpu, 2), "sweep": rows}
            base = chosen["baseline_one_speaker"]
            figures[f"der_{case.name}"] = figure(
                chosen["der"], "fraction", baseline=base["der"],
                notes=f"threshold {default.threshold}: confusion {chosen['confusion']:.3f}, "
                      f"missed {chosen['missed']:.3f}, false alarm {chosen['false_alarm']:.3f}; "
                      f"{chosen['speakers_found']} speakers found of {speakers}; baseline: the "
                      f"same speech as one speaker; collar 0.25 s each side; {case.what}")
            progress(json.dumps({case.name: rows}))
        picked, mean = choose_threshold({k: v["sweep"] for k, v in details["sets"].items()})
        details["mean_der_by_threshold"] = {str(k): round(v, 4) for k, v in mean.items()}
        figures["chosen_threshold"] = figure(
            picked, "cosine", baseline=default.threshold,
            notes="rule: lowest DER averaged over the recordings above (ties: the higher "
                  "threshold); baseline = the configured default, so ratio 1 means the default "
                  f"is the rule's choice; mean DER {mean[picked]:.3f} there")

        path = SPEECH / ("ls60.flac" if quick else "meeting10.m4a")
        repeats = args.repeats or (1 if quick else 3)
        progress(f"overhead on {path.name}, {repeats} run(s) each")
        timing = overhead(path, repeats)
        wall, cpu = timing["wall"], timing["cpu"]
        figures["time_with_diarization"] = figure(
            wall["diarized"], "s", baseline=wall["plain"],
            notes=f"tiny.en Transcriber on {path.name}, median of {repeats}, in turns; ratio - 1 "
                  "is the time diarization adds (target < 0.15)")
        figures["cpu_with_diarization"] = figure(
            cpu["diarized"], "s", baseline=cpu["plain"], notes="process CPU time, same runs")
        details["overhead_runs_s"] = timing["runs"]
        if not quick:
            reference = read_reference(SPEECH / "meeting10_segments.tsv")
            share = attribution(timing["result"], reference)
            details["attribution"] = share
            if share["accuracy"] is not None:
                figures["words_attributed_right"] = figure(
                    share["accuracy"], "fraction",
                    notes=f"meeting10, {share['words']} words, {share['unlabelled_words']} in "
                          "unlabelled segments; labels mapped one-to-one to reference speakers")

        if not args.no_memory:
            modes = ["diarize"] if quick else ["diarize", "transcribe", "transcribe+diarize"]
            rows = memory(modes, args.long_minutes, work)
            details["memory"] = rows
            by = {(r.get("mode"), r.get("audio_s", 0) > 1000): r for r in rows if "peak_rss_mb" in r}
            for mode in modes:
                short, long = by.get((mode, False)), by.get((mode, True))
                if short and long:
                    figures[f"mem_{mode.replace('+', '_')}_long_vs_10min"] = figure(
                        long["peak_rss_mb"], "MiB", baseline=short["peak_rss_mb"],
                        notes=f"peak RSS, {long['audio_s'] / 60:.0f} min against "
                              f"{short['audio_s'] / 60:.0f} min (meeting10 repeated)")
            plain, both = by.get(("transcribe", True)), by.get(("transcribe+diarize", True))
            if plain and both:
                figures["mem_diarization_added_long"] = figure(
                    both["peak_rss_mb"], "MiB", baseline=plain["peak_rss_mb"],
                    notes=f"peak RSS of transcription with diarization against without, "
                          f"{both['audio_s'] / 60:.0f} min")
    emit("diarization", figures, details, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
