"""Signed checkpoints of the audit chain head, kept where a database writer cannot reach.

The hash chain detects an entry changed in place, but someone who can write the database can
also drop its tail, or remove entries and recompute every hash after them, and the chain would
still hold. A checkpoint is the head (`seq`, `hash`) signed with the installation's Ed25519
key; it is written to the database (`audit_checkpoint`), appended to a file outside it
(`audit.checkpoint_file`, opened `O_APPEND`, fsynced) and logged. `verify` walks the chain and
then compares it with every checkpoint in that file: the chain must reach each one's `seq`
with exactly its hash. It names the first entry missing (a dropped tail, an older database
restored) or the span in which the chain was rewritten (between the last checkpoint that
still matches and the first that does not).

Checkpoints are taken at each purge, by `audit checkpoint`, and daily by the daemon.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from meeting_governance import audit
from meeting_governance.canonical import canonical_bytes
from meeting_governance.context import AppContext
from meeting_governance.models import AuditCheckpoint, AuditEntry, AuditHead
from meeting_governance.receipts import key_fingerprint

log = logging.getLogger(__name__)
FORMAT = "meeting-governance-audit-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    head_seq: int
    head_hash: str
    created_at: str
    line: str


def take(app: AppContext, *, reason: str) -> Checkpoint:
    """Sign the current head; write it to the database, the checkpoint file and the log."""
    key = app.keys.signing_key()
    with app.session() as session:
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        now = app.clock.now()
        stamp = now.isoformat()
        body: dict[str, Any] = {"format": FORMAT, "created_at": stamp, "head_seq": head.seq,
                "head_hash": head.hash, "reason": reason,
                "public_key_sha256": key_fingerprint(key)}
        signature = base64.b64encode(key.sign(canonical_bytes(body))).decode("ascii")
        line = canonical_bytes({"checkpoint": body, "signature": signature}).decode("utf-8")
        session.add(AuditCheckpoint(created_at=now, head_seq=head.seq, head_hash=head.hash,
                                    line=line))
        _append(app.settings.checkpoint_file, line)
    log.info("audit checkpoint", extra={"head_seq": head.seq, "head_hash": head.hash,
                                        "reason": reason, "signature": signature})
    return Checkpoint(head.seq, head.hash, stamp, line)


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path, public: Ed25519PublicKey) -> tuple[list[dict[str, Any]], list[str]]:
    """The checkpoints in `path` whose signature holds, and a note for each line that does not."""
    good: list[dict[str, Any]] = []
    bad: list[str] = []
    if not path.is_file():
        return good, bad
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            body = doc["checkpoint"]
            public.verify(base64.b64decode(doc["signature"], validate=True), canonical_bytes(body))
            good.append(body)
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidSignature):
            bad.append(f"line {number} of {path} is not a checkpoint signed by this installation")
    return good, bad


@dataclass(frozen=True)
class Verification:
    """`audit verify`: the chain itself, then against the checkpoints outside the database."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""
    checkpoints: int = 0
    latest_checkpoint_seq: int | None = None
    notes: tuple[str, ...] = ()


def verify(app: AppContext) -> Verification:
    """Walk the chain, then hold it against every signed checkpoint in the checkpoint file."""
    chain = audit.verify(app.engine)
    path = app.settings.checkpoint_file
    found, bad = read_file(path, app.keys.signing_key().public_key())
    notes = list(bad)
    if not found:
        notes.append(f"no signed checkpoint found in {path}: a dropped tail or a rewritten chain "
                     "cannot be detected (run `meeting-governance audit checkpoint`)")
    latest = max((c["head_seq"] for c in found), default=None)
    if not chain.ok:
        return Verification(False, chain.entries, chain.first_bad_seq, chain.problem, len(found),
                            latest, tuple(notes))
    if bad:
        return Verification(False, chain.entries, None, bad[0], len(found), latest, tuple(notes))
    last, matched = chain.entries, 0
    ordered = sorted(found, key=lambda c: int(c["head_seq"]))
    with Session(app.engine) as session:
        for body in ordered:
            seq, want = int(body["head_seq"]), str(body["head_hash"])
            if seq == 0 or seq > last:
                continue
            got = session.exec(select(AuditEntry.hash).where(col(AuditEntry.seq) == seq)).first()
            if got != want:
                return Verification(False, chain.entries, matched + 1,
                                    f"the chain was rewritten: entry {seq} does not match the "
                                    f"checkpoint of {body['created_at']}; the first changed or "
                                    f"removed entry is between {matched + 1} and {seq}",
                                    len(found), latest, tuple(notes))
            matched = seq
    beyond = [c for c in ordered if int(c["head_seq"]) > last]
    if beyond:
        body = beyond[-1]
        return Verification(False, chain.entries, last + 1,
                            f"entry {last + 1} is missing: the checkpoint of {body['created_at']} "
                            f"records {body['head_seq']} entries, the database has {last} — its "
                            "tail was deleted, an older database was restored, or entries after "
                            f"entry {matched} were removed and the rest rehashed",
                            len(found), latest, tuple(notes))
    return Verification(True, chain.entries, None, "", len(found), latest, tuple(notes))
