"""Who a participant is, normalised the one way the registry, the gate and the blind index agree on.

Pure functions and small frozen records; no I/O. An identity that cannot be matched against the
opt-out registry (a guest without address, an anonymous visitor, a phone number, a meeting room)
is kept as what it is, and counts as *unknown* for the gate (fail closed).

Addresses typed by people are checked for what looks right on screen but never matches: an
invisible or control character, a bidi mark, a byte-order mark. They are refused with the
character and its position named; a trailing dot in the domain (`contoso.example.`, the DNS
root) is normalised away.
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
    ANONYMOUS = "anonymous"  # teamsvisitor:…, Azure Communication Services users: no identity
    PHONE = "phone"          # joined by phone (E.164 number): no identity the registry can match
    ROOM = "room"            # a Teams Room or other device: not a person, and the people in
    #                          the room are not listed (unknown, unless gate.allow_rooms)
    UNKNOWN = "unknown"      # anything else Graph hands back that we cannot classify


# Characters that render as nothing (or move text around) yet change the bytes: Unicode's
# default-ignorable code points outside the control and format categories, which are checked by
# category below (Cc, Cf: ZWSP, soft hyphen, LRM/RLM, bidi embeddings and isolates, BOM …).
_IGNORABLE_RANGES = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                     (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
                     (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp", "Zs"})


def _is_invisible(char: str) -> bool:
    code = ord(char)
    if char == " ":
        return False  # an ordinary space is visible enough; the address rules refuse it
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def describe_char(char: str) -> str:
    """`U+200B ZERO WIDTH SPACE`: how an error message names a character nobody can see."""
    name = unicodedata.name(char, "") or {"\t": "TAB", "\n": "LINE FEED",
                                          "\r": "CARRIAGE RETURN"}.get(char, "")
    return f"U+{ord(char):04X}{' ' + name if name else ''}"


def invisible_characters(value: str) -> list[tuple[int, str]]:
    """(1-based position, character) of every invisible, control or bidi character in `value`,
    ignoring ordinary whitespace at either end (which is trimmed anyway)."""
    lead = len(value) - len(value.lstrip(" \t\r\n"))
    core = value.strip(" \t\r\n")
    return [(lead + i + 1, c) for i, c in enumerate(core) if _is_invisible(c)]


def check_visible(value: str, *, what: str) -> None:
    """Refuse text that holds a character people cannot see: the message names the character and
    where it is, because on screen the value looks right and would never match."""
    found = invisible_characters(value)
    if found:
        position, char = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InputError(f"{what} contains {describe_char(char)} at position {position}{more}, "
                         "a character that does not show on screen; retype it by hand")


def normalise_email(value: str) -> str:
    """Case-fold and trim an e-mail address or UPN; NFKC so look-alike forms compare equal; a
    trailing dot after the domain (the DNS root, `contoso.example.`) is dropped."""
    text = unicodedata.normalize("NFKC", value).strip().strip("<>").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if text.endswith(".") and "@" in text and not text.endswith(".."):
        text = text[:-1]
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
    check_visible(value, what="the e-mail address")
    email = normalise_email(value)
    if len(email) > 254 or len(email.split("@", 1)[0]) > 64:
        raise InputError("not an e-mail address: at most 254 characters, 64 before the '@' "
                         f"(got {len(email)})")
    if not _EMAIL_RE.match(email):
        raise InputError(
            f"not an e-mail address: it needs one '@' and a domain (got {len(value)} characters)")
    return email


def validated_object_id(value: str) -> str:
    check_visible(value, what="the object id")
    oid = normalise_object_id(value)
    if not _GUID_RE.match(oid):
        raise InputError("not an Entra object id: expected a GUID like 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    return oid


@dataclass(frozen=True, slots=True)
class Participant:
    """One person (or line) in a meeting, as far as Graph could tell.

    `email` and `object_id` are normalised. `display_name` is for people reading a transcript;
    it is never used to match an opt-out. `resolved` is set once the directory has named every
    identifier of this person (`people.resolve_participants`): only then can the gate clear them.
    """

    kind: ParticipantKind
    object_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    role: str | None = None
    source: str = "attendance"  # organizer | attendee | attendance
    resolved: bool = False

    @property
    def identifiable(self) -> bool:
        """Can the registry clear or match this participant? Only by object id or address."""
        return self.kind in (ParticipantKind.USER, ParticipantKind.GUEST) and bool(
            self.object_id or self.email
        )

    @property
    def known(self) -> bool:
        """Identifiable *and* resolved through the directory: the only participants the gate
        may clear (an address nobody in the directory has could hide another alias)."""
        return self.identifiable and self.resolved

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


_EXT_MARK = "#ext#"


def external_address(upn: str | None) -> str | None:
    """A guest's own address behind their B2B UPN, or None when `upn` is not a guest UPN.

    Entra makes `lee@northwind.example` into `lee_northwind.example#EXT#@tenant.onmicrosoft.com`:
    the `@` becomes the last `_` (a domain name holds no `_`), `#EXT#@` and the tenant follow.
    """
    text = normalise_email(upn or "")
    cut = text.find(_EXT_MARK)
    if cut <= 0:
        return None
    local_and_domain = text[:cut]
    at = local_and_domain.rfind("_")
    if at <= 0 or at == len(local_and_domain) - 1:
        return None
    address = f"{local_and_domain[:at]}@{local_and_domain[at + 1:]}"
    return address if is_email(address) else None
