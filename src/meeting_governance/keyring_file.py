"""The file keyring, the embedded default: `$MG_HOME/keys/keys.json`, 0600 in a 0700 directory.

It holds the secrets and the epoch keys. Every change (a key created or destroyed) is made
under an exclusive `flock` on `keys.json.lock` after re-reading the file, so several processes
of one host never lose each other's keys; the new document is written to a temporary file,
fsynced, and renamed over the old one (then the directory is fsynced). When a key is destroyed
the old file's bytes are also overwritten in place before it is released, so the key does not
stay readable in the freed blocks of the file system's view of it (an SSD or a copy-on-write
file system may still keep old blocks: see SECURITY.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meeting_governance.errors import KeyError_
from meeting_governance.keyring_path import check_keyring_file
from meeting_governance.keys import (
    KEYRING_FORMAT,
    NONCE,
    Secrets,
    b64,
    fingerprint,
    missing_key,
    new_keyring,
    unb64,
    unwrap_failed,
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_keyring_file(path: Path, *, epochs_only: bool = False) -> bool:
    """Create a new keyring at `path` (0600 in a 0700 dir); False when one already exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists():
        return False
    doc = ({"format": KEYRING_FORMAT, "epochs": {}, "destroyed": {}} if epochs_only
           else new_keyring())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(path.parent)
    return True


class KeyFile:
    """A keyring document on disk; with `epochs_only` it holds epoch keys and nothing else."""

    def __init__(self, path: Path, *, epochs_only: bool = False) -> None:
        self.path = path
        self.epochs_only = epochs_only
        self.description = f"keyring file {path}"
        if epochs_only and not path.exists():
            create_keyring_file(path, epochs_only=True)
        self._data = self._read()
        self._keys: dict[str, bytes] = {}
        self._load_keys()
        if not epochs_only:
            self.secrets()  # validates the secrets and any legacy KEKs now, with a clear error

    # -- reading ----------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int]:
        info = self.path.stat()
        return info.st_ino, info.st_mtime_ns

    def _read(self) -> dict[str, Any]:
        path = self.path
        check_keyring_file(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyError_(f"keyring file {path} cannot be read as JSON "
                            f"({exc.__class__.__name__}); restore it from your key backup") from exc
        if not isinstance(data, dict) or data.get("format") != KEYRING_FORMAT:
            raise KeyError_(f"{self.description}: not a Meeting Governance keyring "
                            f"(expected format {KEYRING_FORMAT})")
        self._seen = self._stamp()
        data.setdefault("epochs", {})
        data.setdefault("destroyed", {})
        return data

    def _load_keys(self) -> None:
        self._keys = {kid: unb64(k, f"epoch key {kid}") for kid, k in self._data["epochs"].items()}

    def secrets(self) -> Secrets:
        return Secrets(self._data, self.description)

    # -- changing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Re-read under an exclusive lock, let the caller change the document, save it."""
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._data = self._read()
            yield self._data
            self._save(self._data)
            self._load_keys()
        finally:
            os.close(fd)  # closing releases the lock

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        old = os.open(self.path, os.O_RDWR)
        try:
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            # The replaced file's blocks still hold the old document (and any key just
            # destroyed): overwrite them before letting go of the inode.
            size = os.fstat(old).st_size
            os.pwrite(old, secrets.token_bytes(size), 0)
            os.fsync(old)
        finally:
            os.close(old)

    def create(self, key_id: str) -> str:
        key = AESGCM.generate_key(bit_length=256)
        with self._locked() as data:
            if key_id in data["epochs"] or key_id in data["destroyed"]:
                raise KeyError_(f"epoch key {key_id} already exists in the {self.description}")
            data["epochs"][key_id] = b64(key)
        return self.fingerprint(key_id)

    def destroy(self, key_id: str) -> None:
        if key_id not in self._data["epochs"] and key_id in self._data["destroyed"]:
            return
        with self._locked() as data:
            key = data["epochs"].pop(key_id, None)
            if key is not None:
                print_ = fingerprint(AESGCM(unb64(key, key_id)).encrypt)
                data["destroyed"][key_id] = {"at": datetime.now(UTC).isoformat(),
                                             "fingerprint": print_}
        self._keys.pop(key_id, None)

    def retire_legacy(self, version: int) -> None:
        with self._locked() as data:
            if str(version) == str(data.get("current")):
                data["current"] = None
            data["keks"].pop(str(version), None)
            data.setdefault("retired", []).append(
                {"version": version, "retired_at": datetime.now(UTC).isoformat()})

    # -- the EpochStore interface --------------------------------------------------------------
    def _key(self, key_id: str) -> bytes:
        key = self._keys.get(key_id)
        if key is None or self._stamp() != self._seen:
            # Another process may have made it, or destroyed it, since we read the file: a
            # destroyed key must not live on in this process's memory.
            self._data = self._read()
            self._load_keys()
            key = self._keys.get(key_id)
        if key is None:
            raise missing_key(key_id, self.description)
        return key

    def exists(self, key_id: str) -> bool:
        self._data = self._read()
        self._load_keys()
        return key_id in self._keys

    def fingerprint(self, key_id: str) -> str:
        if key_id not in self._keys and key_id in self._data["destroyed"]:
            return str(self._data["destroyed"][key_id].get("fingerprint", ""))
        return fingerprint(AESGCM(self._key(key_id)).encrypt)

    def destroyed_fingerprint(self, key_id: str) -> str | None:
        entry = self._data["destroyed"].get(key_id)
        return str(entry.get("fingerprint")) if entry else None

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        return nonce + AESGCM(self._key(key_id)).encrypt(nonce, data_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self._key(key_id)).decrypt(wrapped[:NONCE], wrapped[NONCE:], aad)
        except (InvalidTag, ValueError):
            raise unwrap_failed() from None
