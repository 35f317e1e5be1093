"""Sealed values and the keys that wrap them (`vault`, `epochs`, `keys`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


class VaultItem(SQLModel, table=True):
    """One sealed value: AES-256-GCM ciphertext under its own data key, wrapped by the key of
    its epoch (`epoch_id`, see `epochs`), bound to the row and field that own it.

    Crypto-shredding sets `wrapped_key`, `nonce` and `ciphertext` to NULL and stamps
    `shredded_at`; the epoch key that wrapped it is then destroyed, which is what reaches the
    copies of the database that row deletion cannot. `kek_version` > 0 marks an item from
    before epoch keys (wrapped by a KEK version; `keys migrate` re-seals it).
    """

    __tablename__ = "vault_item"
    # Closing an epoch reads its items in id order, a batch at a time (migration 0019).
    __table_args__ = (Index("ix_vault_item_epoch_id_id", "epoch_id", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=40, index=True)
    kek_version: int = Field(default=0, index=True)
    epoch_id: str | None = Field(default=None, max_length=40)
    owner_table: str | None = Field(default=None, max_length=40)
    owner_id: str | None = Field(default=None, max_length=64)
    field: str | None = Field(default=None, max_length=40)
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    nonce: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    shredded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class KeyEpoch(SQLModel, table=True):
    """One epoch key: which epoch it serves, and whether it still exists.

    The key material is in the keyring (file or HSM), never here. `label` names the epoch
    (`retention:2026-03-02`, `metadata:…`, `hold`, `standing:optout`); a label has one active
    generation at a time, and a rotation or a retirement destroys the old one.
    """

    __tablename__ = "key_epoch"

    id: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=80, index=True)
    kind: str = Field(max_length=20)
    generation: int = 1
    period_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: str = Field(default="active", max_length=12, index=True)  # active|closing|destroyed
    fingerprint: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    destroyed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_reason: str = Field(default="", max_length=40)


class KekVersion(SQLModel, table=True):
    """KEK versions of databases from before epoch keys (kept for `keys migrate` and history)."""

    __tablename__ = "kek_version"

    version: int = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
