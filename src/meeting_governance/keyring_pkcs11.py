"""Epoch keys in an HSM, through PKCS#11 (`keys.provider = "pkcs11"`).

Each epoch key is an AES-256 secret-key object made inside the token (`CKA_TOKEN`,
`CKA_SENSITIVE`, not `CKA_EXTRACTABLE`), labelled `mg-epoch:<key id>`; data keys are wrapped and
unwrapped by AES-GCM inside the token (`CKM_AES_GCM`, a random 96-bit nonce, associated data
naming the item and the key), and destroying an epoch is `C_DestroyObject`. The key never
exists outside the token, so nothing this service writes (database, backups, logs, the keyring
file) can bring it back.

Tested against SoftHSM2; any PKCS#11 v2.20+ library that offers `CKM_AES_GCM` and destroys
objects at once should work: a network HSM's client library (Thales Luna) or a cloud HSM's
(AWS CloudHSM `libcloudhsm_pkcs11.so`) — see SECURITY.md for the settings.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

from meeting_governance.errors import ConfigError, KeyError_
from meeting_governance.keys import NONCE, fingerprint, missing_key, unwrap_failed

_LABEL = "mg-epoch:"
_LIBS: dict[str, Any] = {}  # a PKCS#11 library is initialised once per process
_LIBS_LOCK = threading.Lock()
_LOGGED_IN: dict[tuple[str, str], str] = {}


def _library(path: str) -> Any:
    import pkcs11

    with _LIBS_LOCK:
        if path not in _LIBS:
            if not os.path.isfile(path):
                raise ConfigError(f"keys.pkcs11_library {path} does not exist: install the HSM's "
                                  "PKCS#11 library (e.g. Debian's softhsm2) or fix the path")
            _LIBS[path] = pkcs11.lib(path)
        return _LIBS[path]


class Pkcs11Store:
    """An `EpochStore` in a PKCS#11 token; one logged-in session per process."""

    def __init__(self, library: str, token_label: str, pin: str) -> None:
        import pkcs11

        self.description = f"PKCS#11 token {token_label!r} ({library})"
        self._pkcs11 = pkcs11
        try:
            token = _library(library).get_token(token_label=token_label)
            try:
                self._session = token.open(user_pin=pin, rw=True)
                _LOGGED_IN[(library, token_label)] = pin
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Login is per process: another store of this process logged in already. The
                # token cannot check this PIN again, so we do: never accept a different one.
                if _LOGGED_IN.get((library, token_label)) != pin:
                    raise pkcs11.exceptions.PinIncorrect() from None
                self._session = token.open(rw=True)
        except pkcs11.exceptions.NoSuchToken:
            raise ConfigError(f"no PKCS#11 token labelled {token_label!r} in {library}: check "
                              "keys.pkcs11_token_label (softhsm2-util --show-slots)") from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyError_(f"cannot log in to the {self.description} "
                            f"({type(exc).__name__}): check the PIN in keys.pkcs11_pin_env") from None
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, keys: Any) -> Pkcs11Store:
        if not keys.pkcs11_token_label:
            raise ConfigError("keys.provider = \"pkcs11\" needs keys.pkcs11_token_label")
        pin = os.environ.get(keys.pkcs11_pin_env, "")
        if not pin:
            raise ConfigError(f"the PKCS#11 user PIN goes in the environment variable "
                              f"{keys.pkcs11_pin_env} (keys.pkcs11_pin_env); it is empty")
        return cls(keys.pkcs11_library, keys.pkcs11_token_label, pin)

    def _find(self, key_id: str) -> Any:
        key = self._cache.get(key_id)
        if key is not None:
            return key
        p = self._pkcs11
        try:
            key = self._session.get_key(object_class=p.ObjectClass.SECRET_KEY,
                                        label=_LABEL + key_id)
        except p.exceptions.NoSuchKey:
            raise missing_key(key_id, self.description) from None
        self._cache[key_id] = key
        return key

    def _gcm(self, nonce: bytes, aad: bytes) -> Any:
        from pkcs11.mechanisms import GCMParams

        return GCMParams(nonce, aad, 128)

    def create(self, key_id: str) -> str:
        p = self._pkcs11
        with self._lock:
            key = self._session.generate_key(
                p.KeyType.AES, 256, label=_LABEL + key_id, id=key_id.encode(), store=True,
                template={p.Attribute.SENSITIVE: True, p.Attribute.EXTRACTABLE: False,
                          p.Attribute.ENCRYPT: True, p.Attribute.DECRYPT: True,
                          p.Attribute.WRAP: False, p.Attribute.UNWRAP: False})
            self._cache[key_id] = key
        return self.fingerprint(key_id)

    def destroy(self, key_id: str) -> None:
        p = self._pkcs11
        with self._lock:
            self._cache.pop(key_id, None)
            for key in list(self._session.get_objects({p.Attribute.CLASS: p.ObjectClass.SECRET_KEY,
                                                       p.Attribute.LABEL: _LABEL + key_id})):
                key.destroy()

    def exists(self, key_id: str) -> bool:
        with self._lock:
            self._cache.pop(key_id, None)
            try:
                self._find(key_id)
            except KeyError_:
                return False
            return True

    def fingerprint(self, key_id: str) -> str:
        with self._lock:
            key = self._find(key_id)
            return fingerprint(lambda nonce, data, aad: bytes(key.encrypt(
                data, mechanism=self._pkcs11.Mechanism.AES_GCM,
                mechanism_param=self._gcm(nonce, aad))))

    def key_ids(self) -> list[str]:
        p = self._pkcs11
        with self._lock:
            labels = [str(o[p.Attribute.LABEL]) for o in self._session.get_objects(
                {p.Attribute.CLASS: p.ObjectClass.SECRET_KEY})]
        return sorted(lbl[len(_LABEL):] for lbl in labels if lbl.startswith(_LABEL))

    def wrap(self, key_id: str, data_key: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE)
        with self._lock:
            key = self._find(key_id)
            sealed = key.encrypt(data_key, mechanism=self._pkcs11.Mechanism.AES_GCM,
                                 mechanism_param=self._gcm(nonce, aad))
        return nonce + bytes(sealed)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        if len(wrapped) < NONCE + 16:
            raise unwrap_failed()
        with self._lock:
            for attempt in (1, 2):
                key = self._find(key_id)
                try:
                    return bytes(key.decrypt(wrapped[NONCE:],
                                             mechanism=self._pkcs11.Mechanism.AES_GCM,
                                             mechanism_param=self._gcm(wrapped[:NONCE], aad)))
                except self._pkcs11.exceptions.PKCS11Error:
                    if attempt == 2:
                        raise unwrap_failed() from None
                    # The cached handle may name a key another process destroyed: look again
                    # (a key that is gone raises "destroyed", not "tampered").
                    self._cache.pop(key_id, None)
        raise unwrap_failed()

    def close(self) -> None:
        with self._lock:
            self._session.close()
