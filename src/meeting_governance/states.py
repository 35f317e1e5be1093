"""A recording's life as data: the states, the allowed transitions, and the one function that
applies a transition (in the caller's transaction, with its audit entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from meeting_governance.context import AppContext
from meeting_governance.errors import GovernanceError
from meeting_governance.models import Recording


class State(StrEnum):
    DISCOVERED = "discovered"
    WAITING = "waiting"          # participants not yet known; retried until the deadline
    BLOCKED = "blocked"          # terminal: an opt-out, or participants unknown past the deadline
    DOWNLOADING = "downloading"
    TRANSCRIBING = "transcribing"
    STORED = "stored"
    FAILED = "failed"            # with error, attempts and next retry time
    PURGED = "purged"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.DISCOVERED: frozenset({S.WAITING, S.BLOCKED, S.DOWNLOADING, S.FAILED}),
    # Waiting past the deadline, blocked and failed-for-good recordings lose their metadata
    # after `retention.metadata_days` (purge_metadata): PURGED, a tombstone.
    S.WAITING: frozenset({S.WAITING, S.BLOCKED, S.DOWNLOADING, S.FAILED, S.PURGED}),
    # A worker that died mid-item leaves these behind; the next owner starts again at the gate.
    S.DOWNLOADING: frozenset({S.TRANSCRIBING, S.BLOCKED, S.FAILED, S.WAITING, S.DOWNLOADING}),
    S.TRANSCRIBING: frozenset({S.STORED, S.BLOCKED, S.FAILED, S.WAITING, S.DOWNLOADING}),
    S.FAILED: frozenset({S.WAITING, S.BLOCKED, S.DOWNLOADING, S.FAILED, S.PURGED}),
    S.STORED: frozenset({S.PURGED}),
    S.BLOCKED: frozenset({S.PURGED}),
    S.PURGED: frozenset(),
}
PENDING = (S.DISCOVERED, S.WAITING, S.FAILED)
IN_FLIGHT = (S.DOWNLOADING, S.TRANSCRIBING)


@dataclass(frozen=True)
class Status:
    """How a recording's state reads to an operator. Presentation only: the stored state stays
    `failed` either way (renaming it in the data would change every query, metric and audit
    entry for no gain); `retry_pending` and `given_up` go into `--json` beside `state`."""

    label: str
    retry_pending: bool = False
    given_up: bool = False


def status_of(state: str, *, attempts: int, next_attempt_at: datetime | None,
              max_attempts: int) -> Status:
    """`failed` with a next attempt is "retry pending (attempt n/m, next at …)"; without one it
    has given up and says which command brings it back. `waiting` says when it looks again."""
    when = (next_attempt_at.isoformat(timespec="seconds") if next_attempt_at is not None
            else None)
    if state == State.FAILED:
        if when is not None:
            return Status(f"retry pending (attempt {attempts}/{max_attempts}, "
                          f"next at {when})", retry_pending=True)
        return Status("given up — run `recordings retry` after fixing the cause",
                      given_up=True)
    if state == State.WAITING and when is not None:
        return Status(f"waiting (next check at {when})", retry_pending=True)
    return Status(state)


_ADDRESS_LIKE = re.compile(r"[^\s@]+(?:@|%40|%2540)[^\s@]+", re.IGNORECASE)  # also URL-encoded


def safe_reason(text: str) -> str:
    """A reason fit for the database and the audit log: anything shaped like an address
    (an e-mail, or `user@host` from a connection error) is masked, and it stays short."""
    return _ADDRESS_LIKE.sub("[redacted]", text)[:500]


class TransitionError(GovernanceError):
    """A transition the state table does not allow: a bug or a race lost to another worker."""


def transition(app: AppContext, session: Session, rec: Recording, new: State, *,
               reason: str = "", actor: str | None = None, retry_in: timedelta | None = None,
               count_attempt: bool = False, **details: object) -> None:
    """Move `rec` to `new` in the caller's transaction and audit it (ids and states only)."""
    old = State(rec.state)
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"recording {rec.id}: {old} -> {new} is not an allowed transition")
    now = app.clock.now()
    rec.state = new.value
    rec.reason = safe_reason(reason)
    rec.updated_at = now
    if count_attempt:
        rec.attempts += 1
    rec.next_attempt_at = now + retry_in if retry_in is not None else None
    if new not in IN_FLIGHT:
        rec.lease_owner = None
        rec.lease_expires_at = None
    session.add(rec)
    app.audit(session, f"recording.{new.value}", target_type="recording", target_id=str(rec.id),
              actor=actor, previous=old.value, reason=rec.reason, **details)
