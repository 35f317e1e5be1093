"""The audit log: append-only, each entry bound to the previous by SHA-256.

`entry_hash` is a pure function of an entry's fields and the previous hash, over a canonical
JSON encoding. `verify` walks the chain and names the first entry that was changed, removed or
reordered; the single-row head (locked by every appender) also catches a deleted tail.
Entries carry ids and blind-index values only, never an address, a name or transcript text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from meeting_governance.canonical import canonical
from meeting_governance.clock import Clock, SystemClock
from meeting_governance.models import AuditEntry, AuditHead

GENESIS = "0" * 64
_EMAIL_LIKE = re.compile(r"[^@\s]+(?:@|%40|%2540)[^@\s]+\.[^@\s]+", re.IGNORECASE)  # or URL-encoded


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(*, prev_hash: str, seq: int, at: datetime, actor: str, action: str,
               target_type: str, target_id: str, details: str) -> str:
    """SHA-256 over the canonical encoding of one entry and the hash before it."""
    body = canonical([prev_hash, seq, _instant(at), actor, action, target_type, target_id, details])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _check_no_personal_data(details: Any, key: str = "") -> None:
    """Refuse anything shaped like an e-mail address, at any depth (keys and values)."""
    if isinstance(details, dict):
        for name, value in details.items():
            _check_no_personal_data(str(name), str(name))
            _check_no_personal_data(value, str(name))
    elif isinstance(details, list | tuple | set | frozenset):
        for value in details:
            _check_no_personal_data(value, key)
    elif isinstance(details, str) and _EMAIL_LIKE.search(details):
        raise ValueError(f"audit detail {key!r} looks like an e-mail address; "
                         "store a blind-index value instead")


def append(session: Session, *, actor: str, action: str, target_type: str = "",
           target_id: str = "", details: dict[str, Any] | None = None,
           clock: Clock | None = None) -> AuditEntry:
    """Add an entry in the caller's transaction (so the audited change and its entry commit
    together). Locks the head row: concurrent appenders queue, never fork the chain."""
    details = details or {}
    _check_no_personal_data(details)
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    at = (clock or SystemClock()).now()
    at = at.replace(microsecond=at.microsecond)  # stored to the microsecond on both databases
    seq = head.seq + 1
    encoded = canonical(details)
    digest = entry_hash(prev_hash=head.hash, seq=seq, at=at, actor=actor, action=action,
                        target_type=target_type, target_id=target_id, details=encoded)
    entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, target_type=target_type,
                       target_id=target_id, details=encoded, prev_hash=head.hash, hash=digest)
    session.add(entry)
    head.seq = seq
    head.hash = digest
    session.add(head)
    session.flush()
    return entry


def append_many(session: Session, *, actor: str, action: str, target_type: str,
                entries: Sequence[tuple[str, dict[str, Any]]],
                clock: Clock | None = None) -> None:
    """Many entries of one kind (`(target_id, details)` each), chained exactly as `append`
    chains them, with the head locked and written once and the rows inserted in one statement
    — for batch work (a purge batch, a CSV import) where per-entry appends dominate."""
    if not entries:
        return
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()
                        .execution_options(populate_existing=True)).one()
    at = (clock or SystemClock()).now()
    seq, prev = head.seq, head.hash
    rows: list[dict[str, Any]] = []
    for target_id, details in entries:
        _check_no_personal_data(details)
        seq += 1
        encoded = canonical(details)
        digest = entry_hash(prev_hash=prev, seq=seq, at=at, actor=actor, action=action,
                            target_type=target_type, target_id=target_id, details=encoded)
        rows.append({"seq": seq, "at": at, "actor": actor, "action": action,
                     "target_type": target_type, "target_id": target_id, "details": encoded,
                     "prev_hash": prev, "hash": digest})
        prev = digest
    session.connection().execute(insert(AuditEntry), rows)
    head.seq, head.hash = seq, prev
    session.add(head)
    session.flush()


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify(engine: Engine, batch: int = 2000) -> Verification:
    """Walk the whole chain; stop at the first entry that does not hold."""
    expected_seq = 1
    prev = GENESIS
    count = 0
    with Session(engine) as session:
        for entry in _stream(session, batch):
            count += 1
            if entry.seq != expected_seq:
                return Verification(False, count, expected_seq,
                                    f"entry {expected_seq} is missing (deleted) before entry {entry.seq}")
            if entry.prev_hash != prev:
                return Verification(False, count, entry.seq,
                                    f"entry {entry.seq} does not follow entry {entry.seq - 1} "
                                    "(reordered, or the one before it was replaced)")
            digest = entry_hash(prev_hash=entry.prev_hash, seq=entry.seq, at=entry.at,
                                actor=entry.actor, action=entry.action,
                                target_type=entry.target_type, target_id=entry.target_id,
                                details=entry.details)
            if digest != entry.hash:
                return Verification(False, count, entry.seq, f"entry {entry.seq} was changed")
            prev = entry.hash
            expected_seq += 1
        head = session.get(AuditHead, 1)
        last_seq = expected_seq - 1
        if head is None:
            return Verification(False, count, None, "the chain head row is missing")
        if head.seq != last_seq or head.hash != prev:
            return Verification(False, count, last_seq + 1,
                                f"entries after {last_seq} were deleted (the head records {head.seq})")
    return Verification(True, count)


def _stream(session: Session, batch: int) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.exec(select(AuditEntry).where(col(AuditEntry.seq) > last)
                            .order_by(col(AuditEntry.seq)).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def head_hash(session: Session) -> tuple[int, str]:
    head = session.get(AuditHead, 1)
    return (head.seq, head.hash) if head else (0, GENESIS)


def entries(session: Session, *, limit: int = 100, target_id: str | None = None,
            action: str | None = None) -> list[AuditEntry]:
    """Newest first; filtered by target or action."""
    query = select(AuditEntry)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(session.exec(query.order_by(col(AuditEntry.seq).desc()).limit(limit)).all())
