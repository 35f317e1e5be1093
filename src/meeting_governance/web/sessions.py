"""Signed cookie sessions and the login rate limiter.

The session lives in the cookie itself, signed with the keyring's session secret (itsdangerous):
nothing to store server-side, so several `serve` processes behind one proxy agree. Each
session has an id (`sid`) and a CSRF token; both are new at sign-in, so a cookie planted before
sign-in never becomes a signed-in one (no fixation). Logging out revokes the id in this process.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "mg_session"
MAX_TRACKED = 50_000  # rate-limiter keys kept before stale ones are swept


def new_session() -> dict[str, Any]:
    """An anonymous session: an id and a CSRF token (the login form needs one too)."""
    return {"sid": secrets.token_urlsafe(18), "csrf": secrets.token_urlsafe(32)}


@dataclass
class SessionCodec:
    """Turns a session dict into a cookie value and back, refusing forged or stale cookies."""

    secret: bytes
    max_age_s: int
    _revoked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._serializer = URLSafeTimedSerializer(self.secret, salt="meeting-governance.session")

    def dumps(self, data: dict[str, Any]) -> str:
        return self._serializer.dumps(data)

    def loads(self, value: str | None) -> dict[str, Any] | None:
        if not value or len(value) > 8192:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        with self._lock:
            if data["sid"] in self._revoked:
                return None
        return data

    def revoke(self, sid: str) -> None:
        """Refuse this session id from now on (until it would have expired anyway)."""
        now = time.monotonic()
        with self._lock:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
            self._revoked[sid] = now + self.max_age_s


class LoginRateLimiter:
    """At most `max_attempts` failed sign-ins per `window_s`, per user name and per client address.

    Counting both stops one address guessing many names and many addresses guessing one name.
    In memory: a restart forgets, which only helps an attacker who can restart the service.
    """

    def __init__(self, max_attempts: int, window_s: float,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.max_attempts = max_attempts
        self.window_s = window_s
        self._now = now
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _keys(self, name: str, client: str) -> tuple[str, str]:
        return f"user:{name.strip().casefold()}", f"addr:{client}"

    def _prune(self, stamps: deque[float], now: float) -> deque[float]:
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        return stamps

    def retry_after(self, name: str, client: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = self._now()
        wait = 0.0
        with self._lock:
            for key in self._keys(name, client):
                stamps = self._prune(self._failures.get(key, deque()), now)
                if len(stamps) >= self.max_attempts:
                    wait = max(wait, stamps[0] + self.window_s - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, name: str, client: str) -> None:
        now = self._now()
        with self._lock:
            if len(self._failures) > MAX_TRACKED:
                # Many invented names must not grow memory without bound: forget the stale.
                for key in [k for k, v in self._failures.items() if not self._prune(v, now)]:
                    del self._failures[key]
            for key in self._keys(name, client):
                self._prune(self._failures[key], now).append(now)

    def succeeded(self, name: str) -> None:
        """A good password clears that name's failures (not the address's)."""
        with self._lock:
            self._failures.pop(self._keys(name, "")[0], None)
