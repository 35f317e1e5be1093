"""The speaker encoder: resemblyzer's GE2E voice encoder, run with NumPy on the CPU.

A 3-layer LSTM (256 units) reads 1.6 s of 40-band mel power spectrogram and its last hidden
state, through a linear layer, ReLU and L2 normalisation, is a 256-number voice embedding:
two stretches of speech by the same person point the same way (cosine similarity near 1).

The weights come from `scripts/install-model resemblyzer`, never from a hub; they are checked
against a pinned SHA-256 when loaded, so a damaged or replaced file is refused, not used.
torch is not needed: the network is small enough that NumPy (BLAS matrix products for the
gates, the input projections of all time steps done at once) runs it in a few seconds per
ten minutes of speech. Embeddings are biometric data: they live in memory only, while one
recording is processed, and are never stored or logged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meeting_governance.errors import ConfigError

ENCODER_FORMAT = "meeting-governance-speaker-encoder/1"
KNOWN = {
    # name: SHA-256 of encoder.bin as `scripts/install-model` writes it (same pin as there)
    "resemblyzer": "9253e3d277d7fee981eaa531e0f33e8d40814679648293925ded325c51f064d3",
}
REPO_MODELS_DIR = Path(__file__).resolve().parents[3] / "models"

RATE = 16_000
N_FFT = 400  # 25 ms windows
HOP = 160  # 10 ms steps: 100 mel frames a second
N_MELS = 40
HIDDEN = 256
LAYERS = 3
WINDOW_FRAMES = 160  # 1.6 s: the length of the partial utterances the encoder was trained on
TARGET_DBFS = -30.0  # resemblyzer's volume normalisation (raise quiet audio only)
BATCH = 32  # windows per pass through the network (bounds memory; as fast per window as 150)


def user_models_dir() -> Path:
    """Where `scripts/install-model --user` puts models (the same place as for Whisper's)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "meeting-governance" / "models"


def resolve_encoder(name_or_path: str | Path) -> Path:
    """`diarization.encoder` as a local directory holding encoder.json and encoder.bin."""
    text = str(name_or_path).strip()
    if text in KNOWN:
        for root in (REPO_MODELS_DIR, user_models_dir()):
            if (root / text / "encoder.bin").is_file():
                return root / text
        raise ConfigError(
            f"diarization is enabled but the speaker encoder {text!r} is not installed; install "
            f"it with `scripts/install-model {text}` (into models/{text}) or "
            f"`scripts/install-model {text} --user` (into {user_models_dir() / text}), "
            "or set diarization.enabled = false"
        )
    path = Path(text).expanduser()
    if path.is_dir() and (path / "encoder.bin").is_file() and (path / "encoder.json").is_file():
        return path
    raise ConfigError(
        f"diarization.encoder = {text!r} is neither a known encoder ({', '.join(KNOWN)}) nor a "
        "directory with encoder.json and encoder.bin; run `scripts/install-model resemblyzer` "
        "and set diarization.encoder = \"resemblyzer\""
    )


def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (librosa's default, which resemblyzer used), 40 bands."""
    from faster_whisper.feature_extractor import FeatureExtractor

    # faster-whisper's copy of librosa.filters.mel; its top frequency is fixed at 8 kHz,
    # which is what a 16 kHz rate gives anyway.
    filters = FeatureExtractor.get_mel_filters(RATE, N_FFT, n_mels=N_MELS)
    return np.asarray(filters, dtype=np.float32)  # (40, 201)


_MEL_BLOCK = 1000  # frames (10 s) per FFT pass
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_frames(samples: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Mel power spectrogram, (frames, 40): one frame per 10 ms, centred as librosa does.

    Frame k is centred on sample k * HOP (the signal is padded with N_FFT / 2 zeros at each
    end), so a stretch of n samples gives 1 + n // HOP frames. Computed 10 s at a time: the
    spectrum of a two-minute monologue at once would hold 100 MB for a moment.
    """
    signal = np.asarray(samples, dtype=np.float32).reshape(-1)
    padded = np.pad(signal, N_FFT // 2)
    if padded.size < N_FFT:
        padded = np.pad(padded, (0, N_FFT - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    out = np.empty((frames.shape[0], filters.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], _MEL_BLOCK):
        block = frames[start:start + _MEL_BLOCK]
        spectrum = np.fft.rfft(block * _WINDOW, n=N_FFT, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        out[start:start + block.shape[0]] = power @ filters.T
    return out


def loudness_gain(samples: np.ndarray) -> float:
    """Amplitude factor that raises `samples` to -30 dBFS (never lowers them): resemblyzer's
    normalisation, so speech recorded quietly is seen at the level the encoder learnt."""
    if samples.size == 0:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 1e-9:
        return 1.0
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return float(10 ** (change_db / 20)) if change_db > 0 else 1.0


@functools.lru_cache(maxsize=1)
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """A context in which NumPy's BLAS uses one thread (threadpoolctl, restored on exit)."""
    return _controller().limit(limits=1, user_api="blas")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 * (1 + tanh(x / 2)): the same function, and it cannot overflow.
    return 0.5 + 0.5 * np.tanh(0.5 * x)


@dataclass(frozen=True)
class _Layer:
    w_ih_t: np.ndarray  # (inputs, 4 * HIDDEN)
    w_hh_t: np.ndarray  # (HIDDEN, 4 * HIDDEN)
    bias: np.ndarray  # (4 * HIDDEN,): b_ih + b_hh


class SpeakerEncoder:
    """Voice embeddings for batches of mel windows. Load once per process with `load`."""

    def __init__(self, layers: tuple[_Layer, ...], linear_w_t: np.ndarray, linear_b: np.ndarray,
                 name: str) -> None:
        self._layers = layers
        self._linear_w_t = linear_w_t
        self._linear_b = linear_b
        self.filters = _mel_filters()
        self.name = name

    @classmethod
    def load(cls, name_or_path: str | Path) -> SpeakerEncoder:
        """Read and verify the weights; a missing, damaged or unknown file is a ConfigError."""
        text = str(name_or_path).strip()
        path = resolve_encoder(text)
        try:
            manifest = json.loads((path / "encoder.json").read_text(encoding="utf-8"))
            blob = (path / "encoder.bin").read_bytes()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the speaker encoder at {path}: {exc}; reinstall it "
                              "with `scripts/install-model resemblyzer --force`") from None
        digest = hashlib.sha256(blob).hexdigest()
        expected = KNOWN.get(text) or manifest.get("sha256")
        if digest != expected:
            raise ConfigError(
                f"the speaker encoder at {path} is damaged or was replaced (encoder.bin SHA-256 "
                f"{digest[:16]}..., expected {str(expected)[:16]}...); reinstall it with "
                "`scripts/install-model resemblyzer --force`"
            )
        if manifest.get("format") != ENCODER_FORMAT or manifest.get("dtype") != "<f4":
            raise ConfigError(f"{path / 'encoder.json'} is not a {ENCODER_FORMAT} manifest; "
                              "reinstall with `scripts/install-model resemblyzer --force`")
        tensors: dict[str, np.ndarray] = {}
        for entry in manifest.get("tensors", []):
            shape = tuple(int(d) for d in entry["shape"])
            count = int(np.prod(shape))
            start = int(entry["offset"])
            tensors[entry["name"]] = np.frombuffer(blob, dtype="<f4", count=count,
                                                   offset=start).reshape(shape)
        return cls._from_tensors(tensors, path, manifest_name=text)

    @classmethod
    def _from_tensors(cls, tensors: dict[str, np.ndarray], path: Path,
                      manifest_name: str) -> SpeakerEncoder:
        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            value = tensors.get(name)
            if value is None or value.shape != shape:
                raise ConfigError(f"the speaker encoder at {path} lacks {name} of shape {shape}; "
                                  "reinstall with `scripts/install-model resemblyzer --force`")
            return value.astype(np.float32)

        layers = []
        for index in range(LAYERS):
            inputs = N_MELS if index == 0 else HIDDEN
            w_ih = get(f"lstm.weight_ih_l{index}", (4 * HIDDEN, inputs))
            w_hh = get(f"lstm.weight_hh_l{index}", (4 * HIDDEN, HIDDEN))
            bias = (get(f"lstm.bias_ih_l{index}", (4 * HIDDEN,))
                    + get(f"lstm.bias_hh_l{index}", (4 * HIDDEN,)))
            layers.append(_Layer(np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
        linear_w = get("linear.weight", (HIDDEN, HIDDEN))
        linear_b = get("linear.bias", (HIDDEN,))
        return cls(tuple(layers), np.ascontiguousarray(linear_w.T), linear_b, manifest_name)

    def embed(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings (batch, 256), L2-normalised, of mel windows shaped (batch, frames, 40).

        Every window in a batch has the same number of frames (the encoder was trained on 160).
        BLAS runs on one thread here: each of the 480 recurrent steps is a small matrix product,
        and on 2 cores shared with the transcriber or anything else a second BLAS thread only
        waits for the first (measured: several times the CPU per window with two threads when
        the other core is busy).
        """
        x = np.asarray(mels, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != N_MELS:
            raise ValueError(f"expected (batch, frames, {N_MELS}) mel windows, got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        with _one_blas_thread():
            # In batches: the gates of a batch for every time step are held at once (160 x
            # batch x 1024 floats), 21 MB for 32 windows but 100 MB for a whole chunk's 150.
            return np.concatenate([self._embed(x[start:start + BATCH])
                                   for start in range(0, x.shape[0], BATCH)])

    def _embed(self, x: np.ndarray) -> np.ndarray:
        # Time-major, so that each step reads one contiguous block (batch-major was several
        # times slower for a few hundred windows: every step strided through the whole array).
        sequence = np.ascontiguousarray(x.transpose(1, 0, 2))
        last = len(self._layers) - 1
        for index, layer in enumerate(self._layers):
            sequence, h = _lstm_layer(layer, sequence, keep_sequence=index < last)
        raw = np.maximum(h @ self._linear_w_t + self._linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)


def _lstm_layer(layer: _Layer, x: np.ndarray, *, keep_sequence: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM layer over x (steps, batch, inputs), from a zero state, as PyTorch's nn.LSTM.

    Returns every step's hidden state (steps, batch, 256) when `keep_sequence` (the next layer
    reads them), else x unchanged, and the last hidden state (batch, 256). Its own function so
    that the gate array (steps x batch x 1024 floats) is freed on return, not kept alive by a
    view while the next layer allocates its own.
    """
    steps, batch, _ = x.shape
    # The input half of every gate for every time step in one matrix product.
    pre = (x.reshape(steps * batch, -1) @ layer.w_ih_t).reshape(steps, batch, 4 * HIDDEN)
    pre += layer.bias  # in place: a second array of this size would double the peak
    h = np.zeros((batch, HIDDEN), dtype=np.float32)
    c = np.zeros((batch, HIDDEN), dtype=np.float32)
    out = np.empty((steps, batch, HIDDEN), dtype=np.float32) if keep_sequence else x
    for t in range(steps):
        gates = pre[t]
        gates += h @ layer.w_hh_t
        i = _sigmoid(gates[:, :HIDDEN])
        f = _sigmoid(gates[:, HIDDEN:2 * HIDDEN])
        g = np.tanh(gates[:, 2 * HIDDEN:3 * HIDDEN])
        o = _sigmoid(gates[:, 3 * HIDDEN:])
        c = f * c + i * g
        h = o * np.tanh(c)
        if keep_sequence:
            out[t] = h
    return out, h
