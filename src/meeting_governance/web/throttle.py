"""The sign-in limit: at most `max_attempts` attempts per window, per user name and per client
address, counted in the database so that every `serve` process and a restart agree.

An attempt is *reserved* before its password is checked, in one short transaction that counts
and inserts atomically (PostgreSQL: an advisory lock per key; SQLite: the write lock every
transaction takes), so 30 concurrent guesses at a limit of 5 get exactly 5 password checks.
The check itself (argon2, deliberately slow) runs after that transaction has committed, so it
never holds a database lock. A reservation counts as a failure until a correct password clears
the name's attempts; a process killed mid-check leaves a failure behind (the safe side).

Names and addresses are stored only as keyed hashes: the name field may hold someone's e-mail
address, and a client address is personal data too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from math import ceil

from sqlalchemy import delete, text
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.models import LoginAttempt
from meeting_governance.web.sessions import derive_key


@dataclass(frozen=True, slots=True)
class Reservation:
    """One attempt allowed to check its password."""

    attempt: str
    name_key: str


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"meeting-governance:login:{key}".encode()).digest()[:8],
                          "big", signed=True)


class LoginThrottle:
    def __init__(self, ctx: AppContext, *, max_attempts: int, window_s: int) -> None:
        self.ctx = ctx
        self.max_attempts = max_attempts
        self.window = timedelta(seconds=window_s)
        self._key = derive_key(ctx.keys.session_secret(), "login throttle")

    def keys(self, name: str, client: str) -> tuple[str, str]:
        """The keyed hashes of the name (case and spaces ignored) and of the client address."""
        def mac(value: str) -> str:
            return hmac.new(self._key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

        return mac("user:" + " ".join(name.casefold().split())), mac("addr:" + client)

    def reserve(self, name: str, client: str) -> Reservation | int:
        """A reservation, or the seconds to wait when the name or the address is at its limit."""
        name_key, addr_key = self.keys(name, client)
        now = self.ctx.clock.now()
        since = now - self.window
        with self.ctx.session() as db:
            self._lock(db, sorted({name_key, addr_key}))
            db.exec(delete(LoginAttempt).where(col(LoginAttempt.at) <= since))
            wait = 0.0
            for key in (name_key, addr_key):
                stamps = db.exec(select(LoginAttempt.at).where(
                    LoginAttempt.key == key, col(LoginAttempt.at) > since)
                    .order_by(col(LoginAttempt.at))).all()
                if len(stamps) >= self.max_attempts:
                    # The oldest of the last `max_attempts` leaving the window frees a slot.
                    oldest = stamps[len(stamps) - self.max_attempts]
                    wait = max(wait, (oldest + self.window - now).total_seconds())
            if wait > 0:
                return max(1, ceil(wait))
            attempt = secrets.token_hex(16)
            db.add(LoginAttempt(key=name_key, attempt=attempt, at=now))
            db.add(LoginAttempt(key=addr_key, attempt=attempt, at=now))
        return Reservation(attempt=attempt, name_key=name_key)

    def succeeded(self, reservation: Reservation) -> None:
        """A correct password clears the name's attempts (not the address's others)."""
        with self.ctx.session() as db:
            db.exec(delete(LoginAttempt).where(
                (col(LoginAttempt.key) == reservation.name_key)
                | (col(LoginAttempt.attempt) == reservation.attempt)))

    def _lock(self, db: Session, keys: list[str]) -> None:
        """Serialise reservations for these keys until the transaction ends."""
        if is_sqlite(self.ctx.engine):
            return  # BEGIN IMMEDIATE (db.py) already made this transaction the only writer
        for key in keys:  # sorted by the caller: two attempts never wait on each other in a cycle
            db.connection().execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(key)})
