"""Signed purge receipts: evidence, outside the database, of what a purge destroyed.

A receipt is two files in `purge.receipts_dir`:

- `purge-<id>.json`: one line of canonical JSON (see `canonical`) plus a newline: the tombstone
  ids, the counts, the **epoch keys destroyed** (id, epoch label, fingerprint), the signed
  **audit checkpoint** taken at the end of the run, whether SQLite compaction completed, and
  the signer's public key;
- `purge-<id>.json.sig`: the raw 64-byte Ed25519 signature of exactly those bytes, newline
  included.

So anyone verifies a receipt with OpenSSL alone, given the installation's public key (written
by `meeting-governance keys export-public --out receipt-key.pem`):

    openssl pkeyutl -verify -pubin -inkey receipt-key.pem -rawin \
        -in purge-<id>.json -sigfile purge-<id>.json.sig

The public key inside the receipt proves nothing about who signed it (anyone can re-sign with
their own key): `verify` says the signer is unverified unless a trusted key is given.
Receipts of format 1 (signature inside the JSON) are still verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from meeting_governance.canonical import canonical_bytes

RECEIPT_FORMAT = "meeting-governance-purge-receipt/2"
RECEIPT_FORMAT_1 = "meeting-governance-purge-receipt/1"


def _public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    raw = _public(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM: what `openssl pkeyutl -pubin` reads."""
    return _public(key).public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: short enough to read out over the phone."""
    raw = _public(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(value: str) -> Ed25519PublicKey:
    """A trusted key as given: a PEM file path, PEM text, or base64 of the raw 32 bytes."""
    text = value.strip()
    path = Path(text)
    if not text.startswith("-----") and len(text) < 1024 and path.is_file():
        text = path.read_text(encoding="ascii").strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def sign(body: dict[str, Any], key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The receipt file's bytes and their detached signature."""
    doc = dict(body)
    doc["format"] = RECEIPT_FORMAT
    doc["public_key"] = public_key_b64(key)
    doc["public_key_sha256"] = key_fingerprint(key)
    data = canonical_bytes(doc) + b"\n"
    return data, key.sign(data)


@dataclass(frozen=True)
class WrittenReceipt:
    id: str
    path: Path
    sha256: str


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write(receipts_dir: Path, receipt_id: str, signed: tuple[bytes, bytes]) -> WrittenReceipt:
    """Write both files atomically (temp file, fsync, rename) as 0600 in a 0700 directory."""
    data, signature = signed
    receipts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = receipts_dir / f"purge-{receipt_id}.json"
    _write_file(path.with_name(path.name + ".sig"), signature)
    _write_file(path, data)
    return WrittenReceipt(receipt_id, path, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class ReceiptCheck:
    """The outcome of `verify_receipt`; `problem` says what failed when `ok` is False.

    `ok` means intact *and* signed by a trusted key; `signer_checked` False means only the
    embedded key was available, which proves nothing about who signed."""

    ok: bool
    problem: str = ""
    receipt_id: str = ""
    created_at: str = ""
    purged: int = 0
    audit_head_seq: int | None = None
    public_key: str = ""
    signer_checked: bool = False
    destroyed_keys: tuple[str, ...] = ()
    keys_still_present: tuple[str, ...] = ()
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _bad(problem: str) -> ReceiptCheck:
    return ReceiptCheck(False, problem)


def verify_bytes(data: bytes, signature: bytes | None,
                 trusted: Ed25519PublicKey | None = None) -> ReceiptCheck:
    """Check a receipt's bytes against its signature and (when given) the trusted key."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _bad("not a receipt: the file is not UTF-8 JSON")
    if not isinstance(doc, dict) or doc.get("format") not in (RECEIPT_FORMAT, RECEIPT_FORMAT_1):
        return _bad(f"not a receipt: expected format {RECEIPT_FORMAT}")
    if canonical_bytes(doc) + b"\n" != data:
        return _bad("the file is not in canonical form: it was edited")
    embedded = doc.get("public_key")
    if doc["format"] == RECEIPT_FORMAT_1:
        sig_b64 = doc.pop("signature", None)
        signed = canonical_bytes(doc)
        try:
            signature = base64.b64decode(sig_b64 or "", validate=True)
        except binascii.Error:
            return _bad("the embedded signature is not valid base64")
    else:
        signed = data
    if not signature or not isinstance(embedded, str):
        return _bad("the receipt has no signature (the .sig file is missing) or no public key")
    try:
        key = trusted or Ed25519PublicKey.from_public_bytes(base64.b64decode(embedded, validate=True))
    except (binascii.Error, ValueError):
        return _bad("the public key in the receipt is not a valid Ed25519 key")
    if trusted is not None and public_key_b64(trusted) != embedded:
        return _bad("the receipt was signed by another key than the trusted one")
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return _bad("the signature does not match: the receipt was changed")
    audit = doc.get("audit") or {}
    destroyed = tuple(str(k.get("key_id")) for k in doc.get("keys_destroyed") or [])
    return ReceiptCheck(trusted is not None,
                        "" if trusted is not None else
                        "the signer is unverified: the receipt is intact, but only under the key it "
                        "carries itself; give the installation's key (--public-key FILE, from "
                        "`meeting-governance keys export-public`)",
                        receipt_id=str(doc.get("receipt_id", "")),
                        created_at=str(doc.get("created_at", "")),
                        purged=len(doc.get("tombstone_ids") or []),
                        audit_head_seq=audit.get("head_seq"), public_key=embedded,
                        signer_checked=trusted is not None, destroyed_keys=destroyed, body=doc)


def verify_receipt(path: Path, trusted: Ed25519PublicKey | None = None) -> ReceiptCheck:
    """Read and check a receipt and its `.sig` file (see `verify_bytes`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _bad(f"cannot read {path}: {exc.strerror or exc}")
    sig_path = path.with_name(path.name + ".sig")
    signature = sig_path.read_bytes() if sig_path.is_file() else None
    return verify_bytes(data, signature, trusted)
