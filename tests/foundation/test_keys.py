"""Key providers: the key file's permissions, the environment provider, clear errors."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from meeting_governance.config import load_settings
from meeting_governance.errors import ConfigError, IntegrityError, KeyError_
from meeting_governance.keyring_file import KeyFile, create_keyring_file
from meeting_governance.keys import (
    KEYRING_FORMAT,
    EpochStore,
    Keyring,
    new_key_id,
    new_keyring,
    provider_from_settings,
)
from tests.conftest import HSM_PIN, SOFTHSM_LIBRARY


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "keys" / "keys.json"
    assert create_keyring_file(path) is True
    return path


def test_key_file_created_0600_in_a_0700_dir(key_file: Path) -> None:
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    data = json.loads(key_file.read_text())
    assert data["format"] == KEYRING_FORMAT
    assert create_keyring_file(key_file) is False  # never overwritten
    assert json.loads(key_file.read_text()) == data


def test_create_tightens_an_existing_directory(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o755)
    os.chmod(keys_dir, 0o755)
    create_keyring_file(keys_dir / "keys.json")
    assert mode(keys_dir) == 0o700


def test_key_file_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_keyring_file(tmp_path / "k" / "keys.json")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k" / "keys.json") == 0o600


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_readable_by_others_is_refused(key_file: Path, loose: int) -> None:
    os.chmod(key_file, loose)
    with pytest.raises(KeyError_) as info:
        KeyFile(key_file)
    assert f"chmod 600 {key_file}" in str(info.value)
    assert "readable by others" in str(info.value)
    os.chmod(key_file, 0o600)
    KeyFile(key_file)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match=r"does not exist: run `meeting-governance init`"):
        KeyFile(tmp_path / "nope.json")


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "cannot be read as JSON"),
    ('{"format": "something-else"}', "not a Meeting Governance keyring"),
    (json.dumps({**new_keyring(), "current": 5, "keks": {"1": base64.b64encode(b"k" * 32).decode()}}),
     "current KEK version 5 is missing"),
    (json.dumps({k: v for k, v in new_keyring().items() if k != "blind_key"}), "blind_key is missing"),
    (json.dumps({**new_keyring(), "keks": {"1": "***"}}), "not valid base64"),
])
def test_damaged_key_file(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyError_, match=needle):
        KeyFile(path)


# -- epoch stores: the file and an HSM (SoftHSM2 through PKCS#11) -------------------------

@pytest.fixture(params=["file", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def store(request: pytest.FixtureRequest, key_file: Path) -> EpochStore:
    if request.param == "pkcs11":
        from meeting_governance.keyring_pkcs11 import Pkcs11Store

        return Pkcs11Store(SOFTHSM_LIBRARY, request.getfixturevalue("softhsm"), HSM_PIN)
    return KeyFile(key_file)


def test_epoch_key_life(store: EpochStore) -> None:
    key_id = new_key_id()
    printed = store.create(key_id)
    assert len(printed) == 32 and store.fingerprint(key_id) == printed
    assert store.exists(key_id) and key_id in store.key_ids()
    wrapped = store.wrap(key_id, b"k" * 32, b"aad-1")
    assert b"k" * 32 not in wrapped and len(wrapped) == 12 + 32 + 16
    assert store.unwrap(key_id, wrapped, b"aad-1") == b"k" * 32
    with pytest.raises(IntegrityError):
        store.unwrap(key_id, wrapped, b"aad-2")  # associated data binds the wrap
    with pytest.raises(IntegrityError):
        store.unwrap(key_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"aad-1")
    other = new_key_id()
    store.create(other)
    assert store.fingerprint(other) != printed
    with pytest.raises(IntegrityError):
        store.unwrap(other, wrapped, b"aad-1")  # another key cannot unwrap it
    store.destroy(key_id)
    assert not store.exists(key_id) and key_id not in store.key_ids()
    with pytest.raises(KeyError_, match=f"epoch key {key_id} is not in the"):
        store.unwrap(key_id, wrapped, b"aad-1")
    store.destroy(key_id)  # idempotent
    assert store.unwrap(other, store.wrap(other, b"x" * 32, b"a"), b"a") == b"x" * 32


def test_file_keyring_destroys_for_good(key_file: Path) -> None:
    """The destroyed key is gone from the file, and the replaced file's bytes were
    overwritten before release (read through a descriptor opened before the destroy)."""
    keyfile = KeyFile(key_file)
    key_id = new_key_id()
    keyfile.create(key_id)
    secret = json.loads(key_file.read_text())["epochs"][key_id]
    old = os.open(key_file, os.O_RDONLY)  # the inode as it was
    try:
        keyfile.destroy(key_id)
        stale = os.pread(old, 1 << 20, 0)
    finally:
        os.close(old)
    assert secret.encode() not in stale and b"meeting-governance" not in stale
    now = key_file.read_text()
    assert secret not in now and key_id in json.loads(now)["destroyed"]
    assert mode(key_file) == 0o600 and not list(key_file.parent.glob("*.tmp"))
    assert not KeyFile(key_file).exists(key_id)  # from disk, as the next process would


def test_two_processes_never_lose_each_others_keys(key_file: Path) -> None:
    one, two = KeyFile(key_file), KeyFile(key_file)
    a, b = new_key_id(), new_key_id()
    one.create(a)
    two.create(b)  # two read the file before `a` existed; the lock re-reads it
    fresh = KeyFile(key_file)
    assert {a, b} <= set(fresh.key_ids())
    assert two.unwrap(a, one.wrap(a, b"z" * 32, b"x"), b"x") == b"z" * 32


def test_legacy_kek_unwraps_and_retires(tmp_path: Path) -> None:
    """A keyring from before epoch keys: its KEK versions open old items until retired."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kek = AESGCM.generate_key(bit_length=256)
    doc = {**new_keyring(), "current": 1, "keks": {"1": base64.b64encode(kek).decode()}}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    keyfile = KeyFile(path)
    keyring = Keyring(keyfile.secrets(), keyfile, keyfile.retire_legacy)
    wrapped = b"n" * 12 + AESGCM(kek).encrypt(b"n" * 12, b"d" * 32, b"aad")
    assert keyring.legacy_versions() == [1]
    assert keyring.legacy_unwrap(1, wrapped, b"aad") == b"d" * 32
    keyring.retire_legacy(1)
    assert KeyFile(path).secrets().keks == {}
    assert base64.b64encode(kek).decode() not in path.read_text()


@pytest.mark.parametrize("encoding", ["json", "base64", "json-with-whitespace"])
def test_env_provider(monkeypatch: pytest.MonkeyPatch, key_file: Path, tmp_path: Path,
                      encoding: str) -> None:
    doc = json.loads(key_file.read_text())
    doc.update(current=1, keks={"1": base64.b64encode(b"k" * 32).decode()})
    text = json.dumps(doc)
    value = {"json": text, "base64": base64.b64encode(text.encode()).decode(),
             "json-with-whitespace": "\n  " + text + "\n"}[encoding]
    monkeypatch.setenv("MG_KEYRING", value)
    monkeypatch.setenv("MG_KEYS__PROVIDER", "env")
    env = provider_from_settings(load_settings(None, home=tmp_path / "h"))
    from_file = KeyFile(key_file).secrets()
    assert env.blind_key() == from_file.blind_key()
    assert env.secrets.description == "keyring in $MG_KEYRING"
    # Epoch keys live in their own file beside it (the variable is read-only).
    key_id = new_key_id()
    env.create(key_id)
    assert (tmp_path / "h" / "keys" / "epochs.json").is_file()
    assert mode(tmp_path / "h" / "keys" / "epochs.json") == 0o600
    assert env.legacy_versions() == [1]
    with pytest.raises(KeyError_, match="read-only"):
        env.retire_legacy(1)


@pytest.mark.parametrize(("value", "needle"), [
    ("", "is empty"),
    ("not base64 !!", "not valid base64"),
    (base64.b64encode(b"not json").decode(), "does not hold keyring JSON"),
    ("{broken", "does not hold keyring JSON"),
])
def test_env_provider_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str,
                             needle: str) -> None:
    monkeypatch.setenv("MG_KEYRING", value)
    monkeypatch.setenv("MG_KEYS__PROVIDER", "env")
    with pytest.raises(KeyError_, match=needle):
        provider_from_settings(load_settings(None, home=tmp_path / "h"))


def test_provider_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                key_file: Path) -> None:
    settings = load_settings(None, home=tmp_path / "home", keys={"file": str(key_file)})
    assert isinstance(provider_from_settings(settings).store, KeyFile)
    monkeypatch.setenv("MG_KEYS__PROVIDER", "pkcs11")
    with pytest.raises(ConfigError, match="pkcs11_token_label"):
        provider_from_settings(load_settings(None, home=tmp_path / "home"))
    monkeypatch.setenv("MG_KEYS__PKCS11_TOKEN_LABEL", "mg")
    with pytest.raises(ConfigError, match="MG_PKCS11_PIN"):
        provider_from_settings(load_settings(None, home=tmp_path / "home"))


def test_pkcs11_wrong_pin_and_token(softhsm: str, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path, key_file: Path) -> None:
    monkeypatch.setenv("MG_KEYS__PROVIDER", "pkcs11")
    monkeypatch.setenv("MG_KEYS__FILE", str(key_file))
    monkeypatch.setenv("MG_KEYS__PKCS11_TOKEN_LABEL", softhsm)
    monkeypatch.setenv("MG_PKCS11_PIN", "0000")
    with pytest.raises(KeyError_, match="cannot log in"):
        provider_from_settings(load_settings(None, home=tmp_path / "home"))
    monkeypatch.setenv("MG_KEYS__PKCS11_TOKEN_LABEL", "no-such-token")
    with pytest.raises(ConfigError, match="no PKCS#11 token labelled"):
        provider_from_settings(load_settings(None, home=tmp_path / "home"))


def test_signing_and_session_keys(key_file: Path) -> None:
    provider = KeyFile(key_file).secrets()
    signature = provider.signing_key().sign(b"receipt")
    provider.signing_key().public_key().verify(signature, b"receipt")
    assert len(provider.session_secret()) == 32
    assert len(provider.blind_key()) == 32
    assert provider.blind_key() != provider.session_secret()


def test_pkcs11_keys_never_leave_the_token(softhsm: str) -> None:
    """Made inside the token as sensitive, non-extractable objects: their value cannot be read."""
    import pkcs11

    from meeting_governance.keyring_pkcs11 import Pkcs11Store

    store = Pkcs11Store(SOFTHSM_LIBRARY, softhsm, HSM_PIN)
    key_id = new_key_id()
    store.create(key_id)
    key = store._find(key_id)
    assert key[pkcs11.Attribute.TOKEN] and key[pkcs11.Attribute.SENSITIVE]
    assert not key[pkcs11.Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        key[pkcs11.Attribute.VALUE]
    store.destroy(key_id)
    assert not store.exists(key_id)
