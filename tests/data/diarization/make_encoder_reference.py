#!/usr/bin/env python3
"""Write encoder_reference.json: what resemblyzer's own code computes for the test clips.

    python tests/data/diarization/make_encoder_reference.py RESEMBLYZER_DIR

The oracle for tests/diarization/test_encoder.py: the original implementation (PyTorch
`VoiceEncoder` and its librosa mel spectrogram, from the resemblyzer 0.1.4 wheel unpacked in
RESEMBLYZER_DIR) on the LibriSpeech clips in tests/data/speech. Needs torch, librosa and PyAV,
which the project itself never needs; it was run once, in a throwaway virtual environment
(torch 2.13.0 CPU, librosa 0.11.0). `webrtcvad` is stubbed: only the mel spectrogram and the
network are used, not resemblyzer's own silence trimming.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEECH = HERE.parent / "speech"


def decode(path: Path) -> object:
    import av
    import numpy as np

    resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            out += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
    out += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) / 32768.0


def main() -> int:
    sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")
    import scipy.ndimage

    sys.modules.setdefault("scipy.ndimage.morphology", scipy.ndimage)
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import torch
    from resemblyzer import audio
    from resemblyzer.voice_encoder import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    clips = {}
    for path in sorted(SPEECH.glob("*.flac")):
        wav = audio.normalize_volume(decode(path), -30, increase_only=True)
        mel = audio.wav_to_mel_spectrogram(wav)
        starts = sorted({0, max(0, (mel.shape[0] - 160) // 2), max(0, mel.shape[0] - 160)})
        with torch.no_grad():
            embeddings = encoder(torch.from_numpy(np.stack([mel[s:s + 160] for s in starts])))
        clips[path.name] = {
            "mel_frames": mel.shape[0],
            "mel_sum": float(mel.astype(np.float64).sum()),
            "mel_first_frames": np.round(mel[:3], 9).tolist(),
            "window_starts": starts,
            "embeddings": np.round(embeddings.numpy(), 7).tolist(),
        }
    document = {"source": "resemblyzer 0.1.4 VoiceEncoder (torch " + torch.__version__ + ") and "
                          "resemblyzer.audio.wav_to_mel_spectrogram after normalize_volume(-30 dBFS)",
                "clips": clips}
    (HERE / "encoder_reference.json").write_text(json.dumps(document) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
