"""The keyring: epoch keys that can be destroyed, and the few long-lived secrets.

Two parts behind one `Keyring`:

- **epoch keys** (AES-256) wrap data keys; each belongs to one retention epoch (see `epochs`)
  and is destroyed when nothing in its epoch may live on. They sit in an `EpochStore`: the
  keyring file (`keyring_file`, the embedded default) or a PKCS#11 token (`keyring_pkcs11`,
  an HSM: keys are created, used and destroyed inside it and never leave it);
- **secrets** that live as long as the installation: the blind-index key (HMAC-SHA256), the
  Ed25519 key that signs receipts and audit checkpoints, the web session secret, and the
  KEK versions of databases from before epoch keys (`legacy`, only ever used to migrate them).
  They come from the keyring file or, read-only, from an environment variable.

`keys.provider` picks the combination: `file` (both in `keys.json`), `env` (secrets from
`MG_KEYRING`, epoch keys in `keys.epoch_file`) or `pkcs11` (secrets in `keys.json`, epoch keys
in the token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meeting_governance.errors import ConfigError, IntegrityError, KeyError_

KEYRING_FORMAT = "meeting-governance-keyring/1"
NONCE = 12
_FINGERPRINT_AAD = b"mg-epoch-key-fingerprint/1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"keyring: {what} is not valid base64; restore the keyring from backup") from exc


def new_key_id() -> str:
    """A fresh epoch key id: unique across installations sharing a token."""
    return uuid.uuid4().hex[:24]


def fingerprint(encrypt: Callable[[bytes, bytes, bytes], bytes]) -> str:
    """A key's public fingerprint: AES-GCM of 32 zero bytes under a fixed nonce and label.

    A MAC of a constant, so it names the key without revealing it; computed the same way in
    software and inside a token (where the key cannot be read). `encrypt(nonce, data, aad)`.
    """
    return hashlib.sha256(encrypt(bytes(NONCE), bytes(32), _FINGERPRINT_AAD)).hexdigest()[:32]


def unwrap_failed() -> IntegrityError:
    return IntegrityError(
        "a data key failed to unwrap: the keyring is not the one it was wrapped with, or the row "
        "was tampered with or moved")


class EpochStore(Protocol):
    """Where epoch keys live. Key material never leaves `wrap`/`unwrap`."""

    description: str

    def create(self, key_id: str) -> str:
        """Make a new AES-256 key named `key_id`; returns its fingerprint."""

    def destroy(self, key_id: str) -> None:
        """Destroy the key for good (idempotent: an absent key is fine)."""

    def exists(self, key_id: str) -> bool: ...
    def fingerprint(self, key_id: str) -> str: ...
    def key_ids(self) -> list[str]: ...
    def wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes: ...
    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes: ...


def missing_key(key_id: str, where: str) -> KeyError_:
    return KeyError_(f"epoch key {key_id} is not in the {where}: it was destroyed (what it "
                     "wrapped is gone by design) or this is the wrong keyring")


class Secrets:
    """The long-lived part of a keyring document (file or environment)."""

    def __init__(self, data: dict[str, Any], description: str) -> None:
        if data.get("format") != KEYRING_FORMAT:
            raise KeyError_(f"{description}: not a Meeting Governance keyring "
                            f"(expected format {KEYRING_FORMAT})")
        self.description = description
        self.data = data
        self.keks = {int(v): unb64(k, f"KEK {v}") for v, k in (data.get("keks") or {}).items()}
        current = data.get("current")
        if current is not None and self.keks and int(current) not in self.keks:
            raise KeyError_(f"{description}: current KEK version {current} is missing")
        for name in ("blind_key", "signing_key", "session_secret"):
            if not isinstance(data.get(name), str):
                raise KeyError_(f"{description}: {name} is missing; restore the keyring from backup")

    def blind_key(self) -> bytes:
        return unb64(self.data["blind_key"], "blind_key")

    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(unb64(self.data["signing_key"], "signing_key"))

    def session_secret(self) -> bytes:
        return unb64(self.data["session_secret"], "session_secret")

    def legacy_unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        key = self.keks.get(version)
        if key is None:
            raise KeyError_(f"KEK version {version} is not in the {self.description} (retired or "
                            "wrong keyring): data wrapped with it cannot be opened; restore the "
                            "keyring that has it")
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE], wrapped[NONCE:], aad)
        except (InvalidTag, ValueError):
            raise unwrap_failed() from None


def new_keyring() -> dict[str, Any]:
    """A fresh keyring document: secrets, no epoch key yet (they are made as data arrives)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return {
        "format": KEYRING_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "keks": {},
        "retired": [],
        "blind_key": b64(secrets.token_bytes(32)),
        "signing_key": b64(raw),
        "session_secret": b64(secrets.token_bytes(32)),
        "epochs": {},
        "destroyed": {},
    }


class Keyring:
    """What the vault, receipts and the web app need: secrets plus an epoch store."""

    def __init__(self, secrets_: Secrets, store: EpochStore,
                 retire_legacy: Callable[[int], None] | None = None) -> None:
        self.secrets = secrets_
        self.store = store
        self._retire_legacy = retire_legacy
        self.description = store.description

    # secrets
    def blind_key(self) -> bytes:
        return self.secrets.blind_key()

    def signing_key(self) -> Ed25519PrivateKey:
        return self.secrets.signing_key()

    def session_secret(self) -> bytes:
        return self.secrets.session_secret()

    # epoch keys
    def create(self, key_id: str) -> str:
        return self.store.create(key_id)

    def destroy(self, key_id: str) -> None:
        self.store.destroy(key_id)

    def exists(self, key_id: str) -> bool:
        return self.store.exists(key_id)

    def fingerprint(self, key_id: str) -> str:
        return self.store.fingerprint(key_id)

    def key_ids(self) -> list[str]:
        return self.store.key_ids()

    def wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes:
        return self.store.wrap(key_id, data_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return self.store.unwrap(key_id, wrapped, aad)

    # legacy KEKs (databases from before epoch keys)
    def legacy_versions(self) -> list[int]:
        return sorted(self.secrets.keks)

    def legacy_unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return self.secrets.legacy_unwrap(version, wrapped, aad)

    def retire_legacy(self, version: int) -> None:
        if version not in self.secrets.keks:
            raise KeyError_(f"KEK version {version} is not in the {self.secrets.description}")
        if self._retire_legacy is None:
            raise KeyError_(f"the {self.secrets.description} is read-only: remove KEK version "
                            f"{version} where that keyring is kept")
        self._retire_legacy(version)


def _env_secrets(var: str) -> Secrets:
    raw = os.environ.get(var)
    if not raw:
        raise KeyError_(f"environment variable {var} is empty: put the keyring JSON there, "
                        "or set keys.provider = \"file\"")
    text = raw.strip()
    if not text.startswith("{"):
        text = unb64(text, var).decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeyError_(f"{var} does not hold keyring JSON") from exc
    return Secrets(data, f"keyring in ${var}")


def provider_from_settings(settings: Any) -> Keyring:
    """The keyring the configuration names (`keys.provider`)."""
    from meeting_governance.keyring_file import KeyFile

    kind = settings.keys.provider
    if kind == "file":
        keyfile = KeyFile(settings.keys_file)
        return Keyring(keyfile.secrets(), keyfile, keyfile.retire_legacy)
    if kind == "env":
        return Keyring(_env_secrets(settings.keys.env_var),
                       KeyFile(settings.epoch_file, epochs_only=True))
    if kind == "pkcs11":
        from meeting_governance.keyring_pkcs11 import Pkcs11Store

        keyfile = KeyFile(settings.keys_file)
        return Keyring(keyfile.secrets(), Pkcs11Store.from_settings(settings.keys),
                       keyfile.retire_legacy)
    raise ConfigError(f"keys.provider {kind!r} is not supported; allowed: file, env, pkcs11")


KeyProvider = Keyring  # the name the rest of the code used before epoch keys
