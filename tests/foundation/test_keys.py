"""Key providers: the key file's permissions, the environment provider, clear errors."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from meeting_governance.config import load_settings
from meeting_governance.errors import IntegrityError, KeyError_
from meeting_governance.keys import (
    KEYRING_FORMAT,
    EnvKeyProvider,
    FileKeyProvider,
    new_keyring,
    provider_from_settings,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "keys" / "keys.json"
    assert FileKeyProvider.create(path) is True
    return path


def test_key_file_created_0600_in_a_0700_dir(key_file: Path) -> None:
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    data = json.loads(key_file.read_text())
    assert data["format"] == KEYRING_FORMAT
    assert FileKeyProvider.create(key_file) is False  # never overwritten
    assert json.loads(key_file.read_text()) == data


def test_create_tightens_an_existing_directory(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o755)
    os.chmod(keys_dir, 0o755)
    FileKeyProvider.create(keys_dir / "keys.json")
    assert mode(keys_dir) == 0o700


def test_key_file_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        FileKeyProvider.create(tmp_path / "k" / "keys.json")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k" / "keys.json") == 0o600


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_readable_by_others_is_refused(key_file: Path, loose: int) -> None:
    os.chmod(key_file, loose)
    with pytest.raises(KeyError_) as info:
        FileKeyProvider(key_file)
    assert f"chmod 600 {key_file}" in str(info.value)
    assert "readable by others" in str(info.value)
    os.chmod(key_file, 0o600)
    FileKeyProvider(key_file)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match=r"does not exist: run `meeting-governance init`"):
        FileKeyProvider(tmp_path / "nope.json")


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "cannot be read as JSON"),
    ('{"format": "something-else"}', "not a Meeting Governance keyring"),
    (json.dumps({**new_keyring(), "current": 5}), "current KEK version 5 is missing"),
    (json.dumps({**new_keyring(), "keks": {"1": "***"}}), "not valid base64"),
])
def test_damaged_key_file(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyError_, match=needle):
        FileKeyProvider(path)


def test_add_version_persists_and_stays_private(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    assert provider.add_version() == 2
    assert mode(key_file) == 0o600
    assert not list(key_file.parent.glob("*.tmp"))
    again = FileKeyProvider(key_file)
    assert again.current_version() == 2 and again.versions() == [1, 2]
    again.retire(1)
    assert FileKeyProvider(key_file).versions() == [2]
    with pytest.raises(KeyError_, match="not in the keyring"):
        again.retire(1)


def test_wrap_unwrap_binds_associated_data(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    wrapped = provider.wrap(1, b"k" * 32, b"aad-1")
    assert provider.unwrap(1, wrapped, b"aad-1") == b"k" * 32
    with pytest.raises(IntegrityError):
        provider.unwrap(1, wrapped, b"aad-2")


@pytest.mark.parametrize("encoding", ["json", "base64", "json-with-whitespace"])
def test_env_provider(monkeypatch: pytest.MonkeyPatch, key_file: Path, encoding: str) -> None:
    text = key_file.read_text()
    value = {"json": text, "base64": base64.b64encode(text.encode()).decode(),
             "json-with-whitespace": "\n  " + text + "\n"}[encoding]
    monkeypatch.setenv("MG_TEST_KEYRING", value)
    env = EnvKeyProvider("MG_TEST_KEYRING")
    from_file = FileKeyProvider(key_file)
    assert env.versions() == [1]
    assert env.blind_key() == from_file.blind_key()
    wrapped = from_file.wrap(1, b"d" * 32, b"aad")
    assert env.unwrap(1, wrapped, b"aad") == b"d" * 32
    with pytest.raises(KeyError_, match="read-only"):
        env.add_version()


@pytest.mark.parametrize(("value", "needle"), [
    ("", "is empty"),
    ("not base64 !!", "not valid base64"),
    (base64.b64encode(b"not json").decode(), "does not hold keyring JSON"),
    ("{broken", "does not hold keyring JSON"),
])
def test_env_provider_errors(monkeypatch: pytest.MonkeyPatch, value: str, needle: str) -> None:
    monkeypatch.setenv("MG_TEST_KEYRING", value)
    with pytest.raises(KeyError_, match=needle):
        EnvKeyProvider("MG_TEST_KEYRING")


def test_env_provider_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MG_TEST_KEYRING", raising=False)
    with pytest.raises(KeyError_, match="MG_TEST_KEYRING is empty"):
        EnvKeyProvider("MG_TEST_KEYRING")


def test_provider_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                key_file: Path) -> None:
    settings = load_settings(None, home=tmp_path / "home")
    assert isinstance(provider_from_settings(settings), FileKeyProvider)
    monkeypatch.setenv("MG_KEYS__PROVIDER", "env")
    monkeypatch.setenv("MG_KEYS__ENV_VAR", "MG_TEST_KEYRING")
    monkeypatch.setenv("MG_TEST_KEYRING", key_file.read_text())
    env_settings = load_settings(None, home=tmp_path / "home")
    assert isinstance(provider_from_settings(env_settings), EnvKeyProvider)


def test_signing_and_session_keys(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    signature = provider.signing_key().sign(b"receipt")
    provider.signing_key().public_key().verify(signature, b"receipt")
    assert len(provider.session_secret()) == 32
    assert len(provider.blind_key()) == 32
    assert provider.blind_key() != provider.session_secret()
