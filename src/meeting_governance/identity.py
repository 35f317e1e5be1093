"""Who a participant is, normalised the one way the registry, the gate and the blind index agree on.

Pure functions and small frozen records; no I/O. An identity that cannot be matched against the
opt-out registry (a guest without address, an anonymous visitor, a phone number) is kept as what
it is, and counts as *unknown* for the gate (fail closed).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from meeting_governance.errors import InputError

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ParticipantKind(StrEnum):
    USER = "user"            # a member of the tenant, with object id and/or UPN
    GUEST = "guest"          # an external user; matchable only when an address is known
    ANONYMOUS = "anonymous"  # teamsvisitor:… and the like: no identity at all
    PHONE = "phone"          # joined by phone (E.164 number): no identity the registry can match
    UNKNOWN = "unknown"      # anything else Graph hands back that we cannot classify


def normalise_email(value: str) -> str:
    """Case-fold and trim an e-mail address or UPN; NFKC so look-alike forms compare equal."""
    text = unicodedata.normalize("NFKC", value).strip().strip("<>").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.casefold()


def is_email(value: str) -> bool:
    return bool(_EMAIL_RE.match(normalise_email(value)))


def normalise_object_id(value: str) -> str:
    """Entra object ids are GUIDs; compare them lower-cased, without braces or spaces."""
    return value.strip().strip("{}").strip().lower()


def is_object_id(value: str) -> bool:
    return bool(_GUID_RE.match(normalise_object_id(value)))


def validated_email(value: str) -> str:
    """Normalise and validate, with a message that says what is wrong (for forms and CSV)."""
    email = normalise_email(value)
    if len(email) > 254 or len(email.split("@", 1)[0]) > 64:
        raise InputError("not an e-mail address: at most 254 characters, 64 before the '@' "
                         f"(got {len(email)})")
    if not _EMAIL_RE.match(email):
        raise InputError(
            f"not an e-mail address: it needs one '@' and a domain (got {len(value)} characters)")
    return email


def validated_object_id(value: str) -> str:
    oid = normalise_object_id(value)
    if not _GUID_RE.match(oid):
        raise InputError("not an Entra object id: expected a GUID like 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    return oid


@dataclass(frozen=True, slots=True)
class Participant:
    """One person (or line) in a meeting, as far as Graph could tell.

    `email` and `object_id` are normalised. `display_name` is for people reading a transcript;
    it is never used to match an opt-out.
    """

    kind: ParticipantKind
    object_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    role: str | None = None
    source: str = "attendance"  # organizer | attendee | attendance

    @property
    def identifiable(self) -> bool:
        """Can the registry clear or match this participant? Only by object id or address."""
        return self.kind in (ParticipantKind.USER, ParticipantKind.GUEST) and bool(
            self.object_id or self.email
        )

    @staticmethod
    def make(
        *,
        kind: ParticipantKind | str,
        object_id: str | None = None,
        email: str | None = None,
        display_name: str | None = None,
        role: str | None = None,
        source: str = "attendance",
    ) -> Participant:
        """Build a participant with its identities normalised (empty strings become None)."""
        oid = normalise_object_id(object_id) if object_id and object_id.strip() else None
        mail = normalise_email(email) if email and email.strip() else None
        return Participant(
            kind=ParticipantKind(kind), object_id=oid, email=mail,
            display_name=(display_name or None), role=role, source=source,
        )
