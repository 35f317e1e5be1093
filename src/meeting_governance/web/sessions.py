"""Sessions of the web app: signed-in sessions in the database, and the pre-sign-in cookie.

Signed in, the browser holds `mg_session`: 32 random bytes and nothing else. The database holds
only the token's SHA-256 (`web_session`), with the user's row id, the absolute expiry (fixed at
sign-in, never extended) and the time it was last used (idle expiry). Every `serve` process
reads the same rows, so signing out, `users disable` and `users sessions revoke` end a session
everywhere at once, and a restart forgets nothing. The CSRF token is derived from the cookie
token, so it changes with every sign-in.

Before sign-in, `mg_pre` carries the login form's CSRF token and an Entra ID flow in progress
(state, nonce, PKCE verifier): Fernet-encrypted under a key derived from the keyring's session
secret, so it is neither readable nor forgeable, and it stops working an hour after it was
first issued whatever is done with it. It grants nothing: no database row exists for it, so
anonymous visitors cannot fill the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete
from sqlmodel import col, select

from meeting_governance.context import AppContext
from meeting_governance.models import User, WebSession

COOKIE_NAME = "mg_session"
PRE_COOKIE_NAME = "mg_pre"
PRE_MAX_AGE_S = 3600  # the sign-in page and an Entra ID round trip must finish within this
TOKEN_BYTES = 32
MAX_COOKIE_CHARS = 4096


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose from one secret (HKDF-SHA256), so no two uses share a key."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=f"meeting-governance {purpose}".encode()).derive(secret)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def _display_cipher(token: str) -> Fernet:
    key = derive_key(token.encode("ascii", "replace"), "session display name")
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The session of this request and its user (re-read from the database every request)."""

    session_id: str  # the stored hash, never the token
    user_id: int
    name: str
    role: str
    display: str
    method: str
    csrf: str
    created_at: datetime
    expires_at: datetime


class SessionStore:
    """Creates, loads, and ends signed-in sessions (`web_session` rows).

    `max_age` is absolute (from sign-in); `idle` ends a session nobody used for that long.
    `last_seen_at` is written at most once per `touch_every`, so a busy page does not turn every
    request into a database write; idle expiry is exact to that interval.
    """

    def __init__(self, ctx: AppContext, *, max_age: timedelta, idle: timedelta) -> None:
        self.ctx = ctx
        self.max_age = max_age
        self.idle = idle
        self.touch_every = min(timedelta(seconds=60), idle / 10)

    def create(self, user_id: int, *, method: str, display: str | None) -> tuple[str, SignedIn]:
        """A new session for the user; returns the cookie token (shown to nobody else)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.ctx.clock.now()
        sealed = (_display_cipher(token).encrypt(display.encode("utf-8"))
                  if display else None)
        with self.ctx.session() as db:
            self._sweep(db, now)
            row = WebSession(id=_token_hash(token), user_id=user_id, method=method,
                             display_sealed=sealed, created_at=now, last_seen_at=now,
                             expires_at=now + self.max_age)
            db.add(row)
        loaded = self.load(token)
        assert loaded is not None, "a session just created must load"
        return token, loaded

    def load(self, token: str | None) -> SignedIn | None:
        """The live session this cookie token names, or None (unknown, expired, idle for too
        long, or its account disabled). An expired or idle row is deleted on the way."""
        if not token or len(token) > MAX_COOKIE_CHARS:
            return None
        key = _token_hash(token)
        now = self.ctx.clock.now()
        with self.ctx.session() as db:
            found = db.exec(select(WebSession, User).join(User, col(User.id) == WebSession.user_id)
                            .where(WebSession.id == key)).first()
            if found is None:
                return None
            row, user = found
            if row.expires_at <= now or row.last_seen_at + self.idle <= now \
                    or user.disabled_at is not None:
                db.delete(row)
                return None
            if now - row.last_seen_at >= self.touch_every:
                row.last_seen_at = now
                db.add(row)
            display = user.name
            if row.display_sealed is not None:
                try:
                    display = _display_cipher(token).decrypt(row.display_sealed).decode("utf-8")
                except InvalidToken:  # cannot happen for the token that sealed it
                    display = user.name
            assert user.id is not None
            return SignedIn(session_id=key, user_id=user.id, name=user.name, role=user.role,
                            display=display, method=row.method, csrf=csrf_for(token),
                            created_at=row.created_at, expires_at=row.expires_at)

    def end(self, token: str | None) -> bool:
        """Sign out: the row goes, in every process at once. True if there was one."""
        if not token:
            return False
        with self.ctx.session() as db:
            result = db.exec(delete(WebSession).where(col(WebSession.id) == _token_hash(token)))
            return bool(result.rowcount)

    def remaining(self, session: SignedIn) -> int:
        """Seconds until the absolute expiry (the cookie's Max-Age)."""
        return max(0, int((session.expires_at - self.ctx.clock.now()).total_seconds()))

    def _sweep(self, db: Any, now: datetime) -> None:
        """Forget sessions past their expiry or idle limit (run at each sign-in)."""
        db.exec(delete(WebSession).where(
            (col(WebSession.expires_at) <= now) | (col(WebSession.last_seen_at) <= now - self.idle)))


def csrf_for(token: str) -> str:
    """The CSRF token of a signed-in session: derived from its cookie token, so it exists
    nowhere else and a new sign-in gives a new one."""
    mac = hmac.new(token.encode("ascii", "replace"), b"meeting-governance csrf", hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


class PreSessionCodec:
    """The pre-sign-in cookie: Fernet (AES-CBC + HMAC) under a key from the session secret.

    Its lifetime counts from the `issued` time inside it, which re-encrypting keeps, so no
    sequence of requests keeps one alive past `max_age_s`.
    """

    def __init__(self, secret: bytes, *, max_age_s: int = PRE_MAX_AGE_S) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, "pre-session cookie")))
        self.max_age_s = max_age_s

    def new(self, now: datetime) -> dict[str, Any]:
        return {"csrf": secrets.token_urlsafe(32), "issued": int(now.timestamp())}

    def dumps(self, data: dict[str, Any], now: datetime) -> str:
        return self._fernet.encrypt_at_time(json.dumps(data).encode("utf-8"),
                                            int(now.timestamp())).decode("ascii")

    def loads(self, value: str | None, now: datetime) -> dict[str, Any] | None:
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            raw = self._fernet.decrypt_at_time(value.encode("ascii", "replace"),
                                               ttl=self.max_age_s, current_time=int(now.timestamp()))
            data = json.loads(raw)
        except (InvalidToken, ValueError):
            return None
        issued = data.get("issued") if isinstance(data, dict) else None
        if not isinstance(issued, int) or not isinstance(data.get("csrf"), str):
            return None
        if not issued <= now.timestamp() < issued + self.max_age_s:
            return None
        return data
