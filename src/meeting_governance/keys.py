"""Key-encryption keys (KEKs) and the other long-lived secrets, behind one `KeyProvider`.

The keyring holds: versioned KEKs (AES-256) that wrap every data key, the blind-index key
(HMAC-SHA256), the Ed25519 key that signs purge receipts, and the web session secret.
Providers: a local file created by `init` with mode 0600 (refused when others can read it), or
the same JSON in an environment variable (for containers and systemd credentials). A cloud KMS
fits the same interface: it implements `wrap`/`unwrap` remotely and never hands out the KEK.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meeting_governance.errors import ConfigError, IntegrityError, KeyError_

KEYRING_FORMAT = "meeting-governance-keyring/1"
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"keyring: {what} is not valid base64; restore the keyring from backup") from exc


class KeyProvider(Protocol):
    """What the vault needs from key management. KEK material never leaves `wrap`/`unwrap`."""

    description: str

    def current_version(self) -> int: ...
    def versions(self) -> list[int]: ...
    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes: ...
    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes: ...
    def blind_key(self) -> bytes: ...
    def signing_key(self) -> Ed25519PrivateKey: ...
    def session_secret(self) -> bytes: ...
    def add_version(self) -> int: ...
    def retire(self, version: int) -> None: ...


def new_keyring() -> dict[str, Any]:
    signing = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    raw = signing.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return {
        "format": KEYRING_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "current": 1,
        "keks": {"1": _b64(AESGCM.generate_key(bit_length=256))},
        "retired": [],
        "blind_key": _b64(secrets.token_bytes(32)),
        "signing_key": _b64(raw),
        "session_secret": _b64(secrets.token_bytes(32)),
    }


class _KeyringProvider:
    """Shared logic of the local providers: the keyring is a small JSON document."""

    description = "keyring"

    def __init__(self, data: dict[str, Any]) -> None:
        if data.get("format") != KEYRING_FORMAT:
            raise KeyError_(f"{self.description}: not a Meeting Governance keyring "
                            f"(expected format {KEYRING_FORMAT})")
        self._data = data
        self._keks = {int(v): _unb64(k, f"KEK {v}") for v, k in data["keks"].items()}
        if int(data["current"]) not in self._keks:
            raise KeyError_(f"{self.description}: current KEK version {data['current']} is missing")

    def current_version(self) -> int:
        return int(self._data["current"])

    def versions(self) -> list[int]:
        return sorted(self._keks)

    def _kek(self, version: int) -> bytes:
        try:
            return self._keks[version]
        except KeyError:
            raise KeyError_(
                f"KEK version {version} is not in the {self.description} (retired or wrong "
                "keyring): data wrapped with it cannot be opened; restore the keyring that has it"
            ) from None

    def wrap(self, version: int, data_key: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self._kek(version)).encrypt(nonce, data_key, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self._kek(version)).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except (InvalidTag, ValueError):  # ValueError: truncated, nonce of the wrong length
            raise IntegrityError(
                "a data key failed to unwrap: the keyring is not the one it was wrapped with, or "
                "the row was tampered with or moved"
            ) from None

    def blind_key(self) -> bytes:
        return _unb64(self._data["blind_key"], "blind_key")

    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(_unb64(self._data["signing_key"], "signing_key"))

    def session_secret(self) -> bytes:
        return _unb64(self._data["session_secret"], "session_secret")

    def add_version(self) -> int:
        version = max(self._keks) + 1
        key = AESGCM.generate_key(bit_length=256)
        self._data["keks"][str(version)] = _b64(key)
        self._data["current"] = version
        self._save()
        self._keks[version] = key
        return version

    def retire(self, version: int) -> None:
        if version == self.current_version():
            raise KeyError_(f"KEK version {version} is the current one; rotate first, then retire it")
        self._kek(version)
        del self._data["keks"][str(version)]
        self._data.setdefault("retired", []).append(
            {"version": version, "retired_at": datetime.now(UTC).isoformat()})
        self._save()
        del self._keks[version]

    def _save(self) -> None:
        raise KeyError_(f"the {self.description} is read-only: change the keyring where it is kept")


class FileKeyProvider(_KeyringProvider):
    """The embedded default: `$MG_HOME/keys/keys.json`, mode 0600, directory 0700."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"keyring file {path}"
        if not path.is_file():
            raise KeyError_(f"keyring file {path} does not exist: run `meeting-governance init` "
                            "(or restore it from your key backup)")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyError_(f"keyring file {path} is readable by others (mode {mode:o}); "
                            f"refusing to start: run `chmod 600 {path}` and check who read it")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyError_(f"keyring file {path} cannot be read as JSON ({exc.__class__.__name__}); "
                            "restore it from your key backup") from exc
        super().__init__(data)

    @staticmethod
    def create(path: Path) -> bool:
        """Create a new keyring at `path` (0600 in a 0700 dir); False when one already exists."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        if path.exists():
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(new_keyring(), handle, indent=2)
        return True

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class EnvKeyProvider(_KeyringProvider):
    """The keyring JSON (or its base64) in an environment variable; rotation happens outside."""

    def __init__(self, var: str) -> None:
        self.description = f"keyring in ${var}"
        raw = os.environ.get(var)
        if not raw:
            raise KeyError_(f"environment variable {var} is empty: put the keyring JSON there, "
                            "or set keys.provider = \"file\"")
        text = raw.strip()
        if not text.startswith("{"):
            text = _unb64(text, var).decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise KeyError_(f"{var} does not hold keyring JSON") from exc
        super().__init__(data)


def provider_from_settings(settings: Any) -> KeyProvider:
    """The provider the configuration names (`keys.provider`)."""
    kind = settings.keys.provider
    if kind == "file":
        return FileKeyProvider(settings.keys_file)
    if kind == "env":
        return EnvKeyProvider(settings.keys.env_var)
    raise ConfigError(f"keys.provider {kind!r} is not supported; allowed: file, env")
