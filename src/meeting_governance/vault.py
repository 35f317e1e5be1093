"""Envelope encryption: the only way personal data reaches the database.

Each sealed value gets a fresh 256-bit data key; the payload is AES-256-GCM with a random nonce
and associated data naming the **owner** of the value (table, row id, field), the vault item id
and its purpose, so a ciphertext copied onto another row or field, or an item reference swapped
between two rows, fails to open with an error that says so. The data key is wrapped by the key
of the value's **epoch** (see `epochs`), with associated data naming the item, the epoch key id
and the owner. Callers never choose a nonce or forget associated data: they call `seal` with
the owner and the epoch, and `open` with the owner they expect (like Fernet, unlike the AESGCM
primitive underneath).

Crypto-shredding (`shred`) erases the wrapped key and the ciphertext; `epochs.settle` then
destroys every epoch key that ever wrapped the shredded data key, which is what makes the value
unreadable in every copy of the database (backups, replicas, dead tuples), not just this one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from meeting_governance import epochs
from meeting_governance.clock import Clock, SystemClock
from meeting_governance.epochs import EpochPolicy, EpochSpec, Owner
from meeting_governance.errors import IntegrityError, KeyError_, NotFoundError, ShreddedError
from meeting_governance.identity import normalise_email, normalise_object_id
from meeting_governance.keys import Keyring
from meeting_governance.models import KeyEpoch, VaultItem

_NONCE = 12
_LEGACY = b"mg-vault/1"
_FORMAT = b"mg-vault/2"


def _canon(*parts: str) -> bytes:
    """The associated data's encoding. Deliberately not `canonical.canonical_bytes`: these bytes
    are bound into every ciphertext already sealed, so they must never change (ASCII-escaped)."""
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def payload_aad(item_id: str, owner: Owner, purpose: str) -> bytes:
    return _FORMAT + b"|payload|" + _canon(item_id, owner.table, owner.id, owner.field, purpose)


def wrap_aad(item_id: str, key_id: str, owner: Owner) -> bytes:
    return _FORMAT + b"|data-key|" + _canon(item_id, key_id, owner.table, owner.id, owner.field)


def _legacy_payload_aad(item_id: str, purpose: str) -> bytes:
    return b"|".join((_LEGACY, b"payload", item_id.encode(), purpose.encode()))


def _legacy_wrap_aad(item_id: str, kek_version: int) -> bytes:
    return b"|".join((_LEGACY, b"data-key", item_id.encode(), str(kek_version).encode()))


class Vault:
    """Seal, open and shred values; derive blind-index values. Holds no state but the keys."""

    def __init__(self, keys: Keyring, clock: Clock | None = None,
                 policy: EpochPolicy | None = None) -> None:
        self.keys = keys
        self.clock = clock or SystemClock()
        self.policy = policy or EpochPolicy()
        self._blind_key = keys.blind_key()

    # -- which epoch --------------------------------------------------------------------------
    def retention_epoch(self, retain_until: datetime | None) -> EpochSpec:
        return self.policy.retention(retain_until, self.clock.now())

    def metadata_epoch(self, anchor: datetime | None = None) -> EpochSpec:
        now = self.clock.now()
        return self.policy.metadata(anchor or now, now)

    # -- sealing -------------------------------------------------------------------------------
    def seal(self, session: Session, plaintext: bytes, *, owner: Owner,
             epoch: EpochSpec | KeyEpoch, purpose: str | None = None,
             item_id: str | None = None) -> str:
        """Encrypt `plaintext` under a new data key for `owner`, wrapped by `epoch`'s key; add
        the row to `session` and return its id."""
        item_id = item_id or uuid.uuid4().hex
        purpose = purpose or owner.field
        key = epoch if isinstance(epoch, KeyEpoch) else epochs.active(
            session, self.keys, epoch, self.clock.now())
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, payload_aad(item_id, owner, purpose))
        wrapped = self.keys.wrap(key.id, data_key, wrap_aad(item_id, key.id, owner))
        session.add(VaultItem(id=item_id, purpose=purpose, kek_version=0, epoch_id=key.id,
                              owner_table=owner.table, owner_id=owner.id, field=owner.field,
                              wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext,
                              created_at=self.clock.now()))
        return item_id

    def seal_text(self, session: Session, text: str, **kw: Any) -> str:
        return self.seal(session, text.encode("utf-8"), **kw)

    def seal_json(self, session: Session, value: Any, **kw: Any) -> str:
        payload = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self.seal(session, payload, **kw)

    # -- opening -------------------------------------------------------------------------------
    def open(self, session: Session, item_id: str, *, owner: Owner) -> bytes:
        """Decrypt one item that `owner` points at; `IntegrityError` when it was tampered with,
        moved from another row or field, or the key is wrong."""
        item = session.get(VaultItem, item_id)
        if item is None:
            raise NotFoundError(f"vault item {item_id} does not exist")
        return self.open_item(item, owner=owner)

    def open_item(self, item: VaultItem, *, owner: Owner) -> bytes:
        if item.wrapped_key is None or item.ciphertext is None or item.nonce is None:
            raise ShreddedError(f"vault item {item.id} was shredded; its contents are gone by design")
        stored = Owner(item.owner_table or "", item.owner_id or "", item.field or "")
        if item.epoch_id is None:  # sealed before epoch keys: `keys migrate` re-seals it
            return self._open_legacy(item, owner, stored)
        if stored != owner:
            raise IntegrityError(
                f"vault item {item.id} belongs to {stored}, not to {owner}: it was moved from "
                "another row or field; restore the row from a backup")
        data_key = self.keys.unwrap(item.epoch_id, item.wrapped_key,
                                    wrap_aad(item.id, item.epoch_id, owner))
        return self._decrypt(item, data_key, payload_aad(item.id, owner, item.purpose))

    def _open_legacy(self, item: VaultItem, owner: Owner, stored: Owner) -> bytes:
        if item.owner_table is not None and stored != owner:
            raise IntegrityError(
                f"vault item {item.id} belongs to {stored}, not to {owner}: it was moved from "
                "another row or field; restore the row from a backup")
        assert item.wrapped_key is not None
        data_key = self.keys.legacy_unwrap(item.kek_version, item.wrapped_key,
                                           _legacy_wrap_aad(item.id, item.kek_version))
        return self._decrypt(item, data_key, _legacy_payload_aad(item.id, item.purpose))

    @staticmethod
    def _decrypt(item: VaultItem, data_key: bytes, aad: bytes) -> bytes:
        assert item.nonce is not None and item.ciphertext is not None
        try:
            return AESGCM(data_key).decrypt(item.nonce, item.ciphertext, aad)
        except (InvalidTag, ValueError):  # ValueError: a nonce or key of the wrong length
            raise IntegrityError(
                f"vault item {item.id} failed authentication: its ciphertext was changed or moved "
                "from another row; restore it from a backup"
            ) from None

    def open_text(self, session: Session, item_id: str, *, owner: Owner) -> str:
        return self.open(session, item_id, owner=owner).decode("utf-8")

    def open_json(self, session: Session, item_id: str, *, owner: Owner) -> Any:
        return json.loads(self.open(session, item_id, owner=owner))

    # -- re-wrapping and shredding ---------------------------------------------------------------
    def rewrapped(self, item: Any, source: KeyEpoch, target: KeyEpoch) -> dict[str, Any]:
        """One item's data key moved from `source`'s key to `target`'s (payload untouched), as
        the row values to write (`id`, `wrapped_key`, `epoch_id`)."""
        assert item.wrapped_key is not None and item.epoch_id == source.id
        owner = epochs.payload_owner(item)
        data_key = self.keys.unwrap(source.id, item.wrapped_key, wrap_aad(item.id, source.id, owner))
        return {"id": item.id, "epoch_id": target.id,
                "wrapped_key": self.keys.wrap(target.id, data_key,
                                              wrap_aad(item.id, target.id, owner))}

    def shred(self, session: Session, item_id: str | None) -> bool:
        """Destroy an item's data key and ciphertext; True if it held anything. Idempotent.

        The epoch key that wrapped it is destroyed (with the epoch rotated) by the caller's
        `epochs.settle`, after this transaction commits."""
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

    # -- blind index -----------------------------------------------------------------------------
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


# -- databases from before epoch keys ------------------------------------------------------------
def legacy_counts(session: Session) -> dict[int, int]:
    """Live items still wrapped by a KEK version, per version."""
    rows: Iterable[tuple[int, int]] = session.exec(
        select(VaultItem.kek_version, func.count()).where(
            col(VaultItem.epoch_id).is_(None), col(VaultItem.wrapped_key).is_not(None))
        .group_by(col(VaultItem.kek_version))).all()
    return {int(v): int(n) for v, n in rows}


def migrate_legacy(engine: Engine, vault: Vault, *, batch_size: int = 500,
                   progress: Callable[[int], None] | None = None) -> int:
    """Re-seal every item wrapped by a KEK version under a fresh data key and its epoch's key.

    Payloads are re-encrypted (their associated data gains the owner), so the old data keys
    are gone too; then the KEK versions are retired from the keyring. Batch by batch, one
    transaction each: a crash leaves some items legacy and a rerun finishes the job.
    """
    done = 0
    while True:
        with Session(engine) as session:
            items = list(session.exec(select(VaultItem).where(
                col(VaultItem.epoch_id).is_(None), col(VaultItem.wrapped_key).is_not(None))
                .order_by(col(VaultItem.id)).limit(batch_size)).all())
            if not items:
                break
            placement = epochs.Placement(session, vault.keys, vault.policy, vault.clock.now())
            placement.prepare(items)
            for item in items:
                if item.owner_table is None:  # referenced by no known row: kept, never lost
                    item.owner_table, item.owner_id, item.field = "unowned", item.id, item.purpose
                owner = epochs.payload_owner(item)
                plaintext = vault._open_legacy(item, owner, owner)
                target = placement.target(item)
                session.delete(item)
                session.flush()
                vault.seal(session, plaintext, owner=owner, epoch=target, purpose=item.purpose,
                           item_id=item.id)
            session.commit()
            done += len(items)
            if progress:
                progress(len(items))
    with Session(engine) as session:
        left = legacy_counts(session)
    for version in vault.keys.legacy_versions():
        if not left.get(version):
            try:
                vault.keys.retire_legacy(version)
            except KeyError_:
                break  # a read-only keyring (env) keeps it; `keys status` says so
    return done
