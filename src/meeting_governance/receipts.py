"""Signed purge receipts: evidence, outside the database, of what a purge destroyed.

A receipt is one line of canonical JSON (sorted keys, no spaces) carrying the tombstone ids, the
counts, the audit chain head at signing time, the Ed25519 public key and a signature over the
canonical encoding of everything else. Verification re-encodes the parsed document and demands
the file be byte-for-byte that encoding, so any changed byte fails, including whitespace.
The signing key is the keyring's own Ed25519 key, separate from every KEK.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RECEIPT_FORMAT = "meeting-governance-purge-receipt/1"


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The receipt file's bytes: `body` plus the public key and the signature over both."""
    doc = dict(body)
    doc["format"] = RECEIPT_FORMAT
    doc["public_key"] = public_key_b64(key)
    doc.pop("signature", None)
    doc["signature"] = base64.b64encode(key.sign(canonical_bytes(doc))).decode("ascii")
    return canonical_bytes(doc) + b"\n"


@dataclass(frozen=True)
class WrittenReceipt:
    id: str
    path: Path
    sha256: str


def write(receipts_dir: Path, receipt_id: str, data: bytes) -> WrittenReceipt:
    """Write atomically (temp file, fsync, rename) as 0600 in a 0700 directory."""
    receipts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = receipts_dir / f"purge-{receipt_id}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return WrittenReceipt(receipt_id, path, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class ReceiptCheck:
    """The outcome of `verify_receipt`; `problem` says what failed when `ok` is False."""

    ok: bool
    problem: str = ""
    receipt_id: str = ""
    created_at: str = ""
    purged: int = 0
    audit_head_seq: int | None = None
    public_key: str = ""
    signer_checked: bool = False  # True when checked against a key given, not the embedded one


def verify_bytes(data: bytes, public_key: str | Ed25519PublicKey | None = None) -> ReceiptCheck:
    """Check a receipt's bytes. Without `public_key` only the embedded key is used: that
    proves the receipt is intact, not who signed it; pass the installation's key for that."""
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return ReceiptCheck(False, "not a receipt: the file is not ASCII JSON")
    if not isinstance(doc, dict) or doc.get("format") != RECEIPT_FORMAT:
        return ReceiptCheck(False, f"not a receipt: expected format {RECEIPT_FORMAT}")
    if canonical_bytes(doc) + b"\n" != data:
        return ReceiptCheck(False, "the file is not in canonical form: it was edited")
    signature_b64 = doc.pop("signature", None)
    embedded = doc.get("public_key")
    if not isinstance(signature_b64, str) or not isinstance(embedded, str):
        return ReceiptCheck(False, "the receipt has no signature or no public key")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key = _public_key(public_key if public_key is not None else embedded)
    except (binascii.Error, ValueError):
        return ReceiptCheck(False, "the signature or public key is not valid base64 / Ed25519")
    if public_key is not None and public_key_b64(key) != embedded:
        return ReceiptCheck(False, "the receipt was signed by another key than the one given")
    try:
        key.verify(signature, canonical_bytes(doc))
    except InvalidSignature:
        return ReceiptCheck(False, "the signature does not match: the receipt was changed")
    audit = doc.get("audit") or {}
    return ReceiptCheck(True, "", receipt_id=str(doc.get("receipt_id", "")),
                        created_at=str(doc.get("created_at", "")),
                        purged=len(doc.get("tombstone_ids") or []),
                        audit_head_seq=audit.get("head_seq"), public_key=embedded,
                        signer_checked=public_key is not None)


def verify_receipt(path: Path, public_key: str | Ed25519PublicKey | None = None) -> ReceiptCheck:
    """Read and check a receipt file (see `verify_bytes`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ReceiptCheck(False, f"cannot read {path}: {exc.strerror or exc}")
    return verify_bytes(data, public_key)


def _public_key(value: str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))


def instant(at: datetime) -> str:
    return at.isoformat()
