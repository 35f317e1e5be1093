"""What a coordinator reviewed travels to the save, sealed, so the opt-out saved is the one
they checked: the directory's answer for the person (every identifier, as blind values) is
saved as it was shown — not asked again, and never taken from the browser unchecked.

The review page (and `POST /api/optouts/review`) hands out a token: Fernet (encrypted and
authenticated) under a key derived from the session secret, holding a digest of the request
reviewed, a digest of the session's CSRF token, and the directory's answer as status and blind
values — never a name or an address. Saving needs a token that opens, is younger than
`REVIEW_MAX_AGE_S`, was made for this session and for exactly this request; otherwise the
review is shown again, freshly checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken

from meeting_governance import optouts
from meeting_governance.canonical import canonical
from meeting_governance.people import Registration, WhoIs
from meeting_governance.web.sessions import derive_key

REVIEW_MAX_AGE_S = 30 * 60  # a review older than this is made again before saving
MAX_TOKEN_CHARS = 262_144  # about 3,000 identifiers (aliases, other mails) for one person
_STATUSES = frozenset({"found", "not_found", "ambiguous"})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_digest(req: optouts.OptOutRequest) -> str:
    """Every field of a (valid) request, identity normalised: what was reviewed."""
    email, object_id = optouts.cleaned_identity(req)
    fields = [email, object_id, req.name, req.meeting,
              req.valid_from.isoformat() if req.valid_from else None,
              req.valid_until.isoformat() if req.valid_until else None,
              req.covers_recording, req.covers_transcription, req.note]
    return _digest(canonical(fields))


@dataclass(frozen=True, slots=True)
class Reviewed:
    """What a valid token says: the directory's answer (None: it could not be asked then, and
    the opt-out matches the identifier given until the daemon resolves it)."""

    registration: Registration | None


class ReviewSeal:
    """Seals and opens review tokens (one per app, keyed from the session secret)."""

    def __init__(self, secret: bytes, *, max_age_s: int = REVIEW_MAX_AGE_S) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, "opt-out review")))
        self.max_age_s = max_age_s

    def seal(self, req: optouts.OptOutRequest, *, session_csrf: str,
             registration: Registration | None, now: datetime) -> str:
        answer = None if registration is None else {
            "status": registration.status, "kind": registration.who.kind,
            "blinds": sorted(registration.blinds)}
        payload = {"request": request_digest(req), "session": _digest(session_csrf),
                   "answer": answer}
        return self._fernet.encrypt_at_time(json.dumps(payload).encode("utf-8"),
                                            int(now.timestamp())).decode("ascii")

    def open(self, token: str | None, req: optouts.OptOutRequest, *, session_csrf: str,
             now: datetime) -> Reviewed | None:
        """The review a token records, or None: no token, a forged or expired one, one made
        for another session or for other details."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            raw = self._fernet.decrypt_at_time(token.encode("ascii", "replace"),
                                               ttl=self.max_age_s,
                                               current_time=int(now.timestamp()))
            payload = json.loads(raw)
        except (InvalidToken, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("session") != _digest(session_csrf) \
                or payload.get("request") != request_digest(req):
            return None
        answer = payload.get("answer")
        if answer is None:
            return Reviewed(None)
        if not isinstance(answer, dict) or answer.get("status") not in _STATUSES:
            return None
        blinds = answer.get("blinds")
        if not isinstance(blinds, list) or not all(isinstance(b, str) for b in blinds):
            return None
        who = WhoIs(str(answer.get("kind") or ""), None, "", len(blinds))
        return Reviewed(Registration(str(answer["status"]), frozenset(blinds), who))


__all__ = ["MAX_TOKEN_CHARS", "REVIEW_MAX_AGE_S", "ReviewSeal", "Reviewed", "request_digest"]
