"""The NumPy speaker encoder computes what resemblyzer's own torch code computes, and its weights
come only from an installed, hash-checked file."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import pickle
import shutil
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from meeting_governance.diarization import encoder as encoder_module
from meeting_governance.diarization.encoder import KNOWN, SpeakerEncoder, loudness_gain, mel_frames
from meeting_governance.errors import ConfigError

from .conftest import DATA, REPO, SPEECH, decode


def reference() -> dict:
    return json.loads((DATA / "encoder_reference.json").read_text())["clips"]


@pytest.mark.parametrize("clip", sorted(reference()))
def test_mel_and_embeddings_match_resemblyzers_torch_implementation(encoder: SpeakerEncoder,
                                                                    clip: str) -> None:
    expected = reference()[clip]
    wav = decode(SPEECH / clip)
    mel = mel_frames(wav * loudness_gain(wav), encoder.filters)

    assert mel.shape == (expected["mel_frames"], 40)
    assert mel.astype(np.float64).sum() == pytest.approx(expected["mel_sum"], rel=1e-5)
    np.testing.assert_allclose(mel[:3], expected["mel_first_frames"], rtol=1e-2, atol=1e-8)
    windows = np.stack([mel[s:s + 160] for s in expected["window_starts"]])
    ours = encoder.embed(windows)
    theirs = np.asarray(expected["embeddings"])
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_same_voice_is_closer_than_another_voice(encoder: SpeakerEncoder) -> None:
    """What the encoder is for: two windows of one person beat windows of two people."""
    embeddings = {clip: np.asarray(item["embeddings"]) for clip, item in reference().items()}
    for clip, own in embeddings.items():
        same = float(own[0] @ own[-1])
        others = [float(own[0] @ other[0]) for name, other in embeddings.items() if name != clip]
        assert same > max(others)


def test_an_empty_batch_and_a_wrong_shape(encoder: SpeakerEncoder) -> None:
    assert encoder.embed(np.zeros((0, 160, 40))).shape == (0, 256)
    with pytest.raises(ValueError, match="mel windows"):
        encoder.embed(np.zeros((2, 160, 80)))


def test_quiet_audio_is_raised_and_loud_audio_left_alone() -> None:
    quiet = np.full(16_000, 0.001, dtype=np.float32)
    loud = np.full(16_000, 0.5, dtype=np.float32)
    assert 20 * np.log10(np.sqrt(np.mean((quiet * loudness_gain(quiet)) ** 2))) == pytest.approx(-30)
    assert loudness_gain(loud) == 1.0
    assert loudness_gain(np.zeros(100, dtype=np.float32)) == 1.0


@pytest.fixture
def no_installed_encoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(encoder_module, "REPO_MODELS_DIR", tmp_path / "repo-models")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_missing_encoder_names_the_command_that_installs_it(no_installed_encoder: Path) -> None:
    with pytest.raises(ConfigError, match=r"scripts/install-model resemblyzer") as caught:
        SpeakerEncoder.load("resemblyzer")
    assert "diarization.enabled = false" in str(caught.value)


def test_encoder_in_the_user_cache_is_found(no_installed_encoder: Path,
                                            encoder: SpeakerEncoder) -> None:
    target = no_installed_encoder / "cache" / "meeting-governance" / "models" / "resemblyzer"
    shutil.copytree(_installed_dir(), target)

    assert SpeakerEncoder.load("resemblyzer").name == "resemblyzer"


def _installed_dir() -> Path:
    for root in (REPO / "models", encoder_module.user_models_dir()):
        if (root / "resemblyzer" / "encoder.bin").is_file():
            return root / "resemblyzer"
    pytest.fail("the encoder is not installed: run scripts/install-model resemblyzer")


def test_a_damaged_encoder_is_refused(no_installed_encoder: Path) -> None:
    target = no_installed_encoder / "repo-models" / "resemblyzer"
    shutil.copytree(_installed_dir(), target)
    blob = bytearray((target / "encoder.bin").read_bytes())
    blob[1234] ^= 0x01  # one bit of one weight
    (target / "encoder.bin").write_bytes(bytes(blob))

    with pytest.raises(ConfigError, match="damaged or was replaced"):
        SpeakerEncoder.load("resemblyzer")


@pytest.mark.parametrize("value", ["speechbrain", "/nonexistent/encoder"])
def test_anything_else_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="neither a known encoder"):
        SpeakerEncoder.load(value)


# -- scripts/install-model ---------------------------------------------------------------------

def load_script() -> ModuleType:
    path = REPO / "scripts" / "install-model"
    loader = importlib.machinery.SourceFileLoader("install_model_diar", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


def test_the_script_and_the_service_pin_the_same_weights() -> None:
    script = load_script()
    assert script.ENCODERS["resemblyzer"].encoder_sha256 == KNOWN["resemblyzer"]


def legacy_checkpoint(path: Path, tensors: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch,
                      extra: object = None) -> Path:
    """A file in PyTorch's legacy (pre-1.6) format, written without torch: the pickler only
    needs objects that claim the names torch's own would have (in stand-in modules, for the
    length of the test)."""
    fake_torch, fake_utils = ModuleType("torch"), ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:
        return None

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    fake_torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    fake_torch._utils = fake_utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Storage:
        def __init__(self, key: str, numel: int) -> None:
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, storage: Storage, shape: tuple[int, ...]) -> None:
            self.storage, self.shape = storage, shape

        def __reduce__(self) -> tuple:
            stride = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
            return (_rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False, {}))

    class Writer(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.numel, None)
            return None

    state: dict[str, object] = {}
    blobs: list[bytes] = []
    keys: list[str] = []
    for index, (name, value) in enumerate(tensors.items()):
        data = np.ascontiguousarray(value, dtype="<f4")
        keys.append(str(1000 + index))
        blobs.append(data.tobytes())
        state[name] = Tensor(Storage(keys[-1], data.size), data.shape)
    with path.open("wb") as handle:
        for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, handle, protocol=2)
        Writer(handle, protocol=2).dump({"model_state": state, "extra": extra})
        pickle.dump(keys, handle, protocol=2)
        for data in blobs:
            handle.write(struct.pack("<q", len(data) // 4))
            handle.write(data)
    return path


def _tensors(script: ModuleType) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    shapes = {}
    for layer in range(3):
        inputs = 40 if layer == 0 else 256
        shapes[f"lstm.weight_ih_l{layer}"] = (1024, inputs)
        shapes[f"lstm.weight_hh_l{layer}"] = (1024, 256)
        shapes[f"lstm.bias_ih_l{layer}"] = (1024,)
        shapes[f"lstm.bias_hh_l{layer}"] = (1024,)
    shapes["linear.weight"] = (256, 256)
    shapes["linear.bias"] = (256,)
    assert set(shapes) == set(script.ENCODER_TENSORS)
    return {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}


def test_conversion_writes_every_tensor_and_checks_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script()
    tensors = _tensors(script)
    checkpoint = legacy_checkpoint(tmp_path / "pretrained.pt", tensors, monkeypatch)
    expected = b"".join(np.ascontiguousarray(tensors[n], dtype="<f4").tobytes()
                        for n in script.ENCODER_TENSORS)
    import dataclasses
    import hashlib

    good = dataclasses.replace(script.ENCODERS["resemblyzer"],
                               encoder_sha256=hashlib.sha256(expected).hexdigest())
    staging = tmp_path / "staging"
    staging.mkdir()
    script.convert_encoder(checkpoint, staging, good)

    assert (staging / "encoder.bin").read_bytes() == expected
    manifest = json.loads((staging / "encoder.json").read_text())
    layout = {t["name"]: t for t in manifest["tensors"]}
    assert layout["lstm.weight_hh_l1"]["shape"] == [1024, 256]
    # The service reads it back exactly (under the manifest's own hash).
    loaded = SpeakerEncoder.load(staging)
    assert loaded.embed(np.ones((1, 160, 40))).shape == (1, 256)

    wrong = dataclasses.replace(good, encoder_sha256="0" * 64)
    with pytest.raises(script.InstallError, match="SHA-256"):
        script.convert_encoder(checkpoint, tmp_path, wrong)


def test_a_checkpoint_that_names_other_code_is_refused_unrun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpickling runs what a pickle names: the reader allows three names and no more."""
    script = load_script()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    path = legacy_checkpoint(tmp_path / "evil.pt", _tensors(script), monkeypatch, extra=Payload())
    with pytest.raises(script.InstallError, match="refusing"):
        script.read_legacy_checkpoint(path)
    assert not marker.exists()
