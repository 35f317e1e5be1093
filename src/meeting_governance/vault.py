"""Envelope encryption: the only way personal data reaches the database.

Each sealed value gets a fresh 256-bit data key; the payload is AES-256-GCM with a random nonce
and associated data naming the item and its purpose, so a ciphertext copied onto another row
fails to open. The data key is wrapped by the current KEK, with associated data naming the
item and the KEK version. Callers never choose a nonce or forget associated data: they call
`seal` and `open` (like Fernet, unlike the AESGCM primitive underneath).

Crypto-shredding (`shred`) erases the wrapped key and the ciphertext: without the data key
nothing can be recovered, even from a backup once the KEK that wrapped it is retired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from meeting_governance.clock import Clock, SystemClock
from meeting_governance.errors import IntegrityError, NotFoundError, ShreddedError
from meeting_governance.identity import normalise_email, normalise_object_id
from meeting_governance.keys import KeyProvider
from meeting_governance.models import KekVersion, VaultItem

_NONCE = 12
_FORMAT = b"mg-vault/1"


def _payload_aad(item_id: str, purpose: str) -> bytes:
    return b"|".join((_FORMAT, b"payload", item_id.encode(), purpose.encode()))


def _wrap_aad(item_id: str, kek_version: int) -> bytes:
    return b"|".join((_FORMAT, b"data-key", item_id.encode(), str(kek_version).encode()))


class Vault:
    """Seal, open and shred values; derive blind-index values. Holds no state but the keys."""

    def __init__(self, keys: KeyProvider, clock: Clock | None = None) -> None:
        self.keys = keys
        self.clock = clock or SystemClock()
        self._blind_key = keys.blind_key()

    # -- sealing -------------------------------------------------------------------------
    def seal(self, session: Session, plaintext: bytes, *, purpose: str,
             item_id: str | None = None) -> str:
        """Encrypt `plaintext` under a new data key, add the row to `session`, return its id."""
        item_id = item_id or uuid.uuid4().hex
        version = self.keys.current_version()
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _payload_aad(item_id, purpose))
        wrapped = self.keys.wrap(version, data_key, _wrap_aad(item_id, version))
        session.add(VaultItem(id=item_id, purpose=purpose, kek_version=version,
                              wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext,
                              created_at=self.clock.now()))
        return item_id

    def seal_text(self, session: Session, text: str, *, purpose: str) -> str:
        return self.seal(session, text.encode("utf-8"), purpose=purpose)

    def seal_json(self, session: Session, value: Any, *, purpose: str) -> str:
        payload = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self.seal(session, payload, purpose=purpose)

    def open(self, session: Session, item_id: str) -> bytes:
        """Decrypt one item; `IntegrityError` when it was tampered with, moved or the key is wrong."""
        item = session.get(VaultItem, item_id)
        if item is None:
            raise NotFoundError(f"vault item {item_id} does not exist")
        return self.open_item(item)

    def open_item(self, item: VaultItem) -> bytes:
        if item.wrapped_key is None or item.ciphertext is None or item.nonce is None:
            raise ShreddedError(f"vault item {item.id} was shredded; its contents are gone by design")
        data_key = self.keys.unwrap(item.kek_version, item.wrapped_key,
                                    _wrap_aad(item.id, item.kek_version))
        try:
            return AESGCM(data_key).decrypt(item.nonce, item.ciphertext,
                                            _payload_aad(item.id, item.purpose))
        except (InvalidTag, ValueError):  # ValueError: a nonce or key of the wrong length
            raise IntegrityError(
                f"vault item {item.id} failed authentication: its ciphertext was changed or moved "
                "from another row; restore it from a backup"
            ) from None

    def open_text(self, session: Session, item_id: str) -> str:
        return self.open(session, item_id).decode("utf-8")

    def open_json(self, session: Session, item_id: str) -> Any:
        return json.loads(self.open(session, item_id))

    # -- shredding -----------------------------------------------------------------------
    def shred(self, session: Session, item_id: str | None) -> bool:
        """Destroy an item's data key and ciphertext; True if it held anything. Idempotent."""
        if not item_id:
            return False
        item = session.get(VaultItem, item_id)
        if item is None or item.shredded_at is not None:
            return False
        item.wrapped_key = None
        item.ciphertext = None
        item.nonce = None
        item.shredded_at = self.clock.now()
        session.add(item)
        return True

    # -- blind index ---------------------------------------------------------------------
    def blind(self, kind: str, normalised_value: str) -> str:
        """HMAC-SHA256 of an already-normalised value: findable, not readable."""
        msg = f"{kind}:{normalised_value}".encode()
        return hmac.new(self._blind_key, msg, hashlib.sha256).hexdigest()

    def blind_email(self, email: str) -> str:
        return self.blind("email", normalise_email(email))

    def blind_object_id(self, object_id: str) -> str:
        return self.blind("oid", normalise_object_id(object_id))

    def blind_identities(self, *, email: str | None = None,
                         object_id: str | None = None) -> list[str]:
        values = []
        if email:
            values.append(self.blind_email(email))
        if object_id:
            values.append(self.blind_object_id(object_id))
        return values


def register_kek_versions(session: Session, keys: KeyProvider, clock: Clock) -> None:
    """Keep `kek_version` in step with the provider (called by `init` and `keys rotate`)."""
    known = {kv.version for kv in session.exec(select(KekVersion)).all()}
    for version in keys.versions():
        if version not in known:
            session.add(KekVersion(version=version, created_at=clock.now()))


def rewrap_all(engine: Engine, vault: Vault, *, batch_size: int,
               progress: Callable[[int, int], None] | None = None) -> int:
    """Re-wrap every live data key under the current KEK, batch by batch (payloads untouched).

    Each batch is one transaction, so a crash leaves some keys on the old version and a rerun
    finishes the job.
    """
    current = vault.keys.current_version()
    with Session(engine) as session:
        total = session.exec(
            select(func.count()).select_from(VaultItem).where(
                col(VaultItem.kek_version) != current, col(VaultItem.wrapped_key).is_not(None))
        ).one()
    done = 0
    while True:
        with Session(engine) as session:
            items = session.exec(
                select(VaultItem).where(col(VaultItem.kek_version) != current,
                                        col(VaultItem.wrapped_key).is_not(None))
                .order_by(col(VaultItem.id)).limit(batch_size)
            ).all()
            if not items:
                break
            for item in items:
                assert item.wrapped_key is not None
                data_key = vault.keys.unwrap(item.kek_version, item.wrapped_key,
                                             _wrap_aad(item.id, item.kek_version))
                item.wrapped_key = vault.keys.wrap(current, data_key, _wrap_aad(item.id, current))
                item.kek_version = current
                session.add(item)
            session.commit()
            done += len(items)
            if progress:
                progress(done, int(total))
    return done


def versions_in_use(session: Session) -> dict[int, int]:
    rows: Iterable[tuple[int, int]] = session.exec(
        select(VaultItem.kek_version, func.count()).where(col(VaultItem.wrapped_key).is_not(None))
        .group_by(col(VaultItem.kek_version))
    ).all()
    return {int(v): int(n) for v, n in rows}
