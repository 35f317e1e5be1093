"""Opt-out requests as typed (form, CSV row, CLI) and their validation, field by field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from meeting_governance.errors import InputError
from meeting_governance.identity import validated_email, validated_object_id
from meeting_governance.meetingref import normalise_meeting_ref
from meeting_governance.vault import Vault

PURPOSES: tuple[str, ...] = ("recording", "transcription")
COVERS = {"recording": (True, False), "transcription": (False, True), "both": (True, True)}

MAX_NAME = 200
MAX_NOTE = 2000
MAX_REASON = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- requests and validation -------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class OptOutRequest:
    """What a coordinator asks for, as typed (the form, a CSV row or the CLI)."""

    email: str | None = None
    object_id: str | None = None
    name: str | None = None
    meeting: str | None = None  # a Graph meeting id or a Teams join link
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    covers_recording: bool = True
    covers_transcription: bool = True
    note: str | None = None


@dataclass(frozen=True)
class FieldError:
    """One problem tied to one form field (the web form shows it next to that field)."""

    field: str  # email | object_id | name | meeting | valid_from | valid_until | covers | note
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Clean:
    """A request that passed every check, normalised: what is sealed and stored."""

    email: str | None
    object_id: str | None
    name: str | None
    meeting: str | None
    meeting_key: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    note: str | None

    @property
    def scope(self) -> str:
        if self.meeting_key:
            return "meeting"
        return "range" if (self.valid_from or self.valid_until) else "all"


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def aware_utc(value: datetime | None) -> datetime | None:
    """Naive times are read as UTC (what `parse_when` does for the CLI and CSV)."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


# Cells starting with these are formulas to Excel and LibreOffice (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "@", "\t", "\r")


def clean_request(req: OptOutRequest) -> tuple[Clean | None, list[FieldError]]:
    """The normalised request, or every problem with it (each tied to its field)."""
    errors: list[FieldError] = []
    email = object_id = meeting_key = None
    if _blank(req.email) and _blank(req.object_id):
        errors.append(FieldError("email", "give an e-mail address or an Entra object id (or both)"))
    if not _blank(req.email):
        try:
            email = validated_email(req.email or "")
        except InputError as exc:
            errors.append(FieldError("email", str(exc)))
    if not _blank(req.object_id):
        try:
            object_id = validated_object_id(req.object_id or "")
        except InputError as exc:
            errors.append(FieldError("object_id", str(exc)))
    name = " ".join((req.name or "").split()) or None
    if name and len(name) > MAX_NAME:
        errors.append(FieldError("name", f"too long ({len(name)} characters; at most {MAX_NAME})"))
    elif name and _CONTROL.search(name):
        errors.append(FieldError("name", "contains control characters"))
    elif name and name[0] in _FORMULA_START:
        errors.append(FieldError("name", f"must not start with {name[0]!r} (a spreadsheet would "
                                         "run it as a formula)"))
    meeting = (req.meeting or "").strip() or None
    if meeting:
        try:
            meeting_key = normalise_meeting_ref(meeting)
        except InputError as exc:
            errors.append(FieldError("meeting", str(exc).removeprefix("meeting: ")))
    valid_from, valid_until = aware_utc(req.valid_from), aware_utc(req.valid_until)
    if meeting and (valid_from or valid_until):
        errors.append(FieldError("meeting", "choose one meeting or a date range, not both"))
    if valid_from and valid_until and valid_from > valid_until:
        errors.append(FieldError("valid_until", "the end of the range is before its start"))
    if not (req.covers_recording or req.covers_transcription):
        errors.append(FieldError("covers", "cover recording, transcription or both"))
    note = (req.note or "").strip() or None
    if note and len(note) > MAX_NOTE:
        errors.append(FieldError("note", f"too long ({len(note)} characters; at most {MAX_NOTE})"))
    elif note and note[0] in _FORMULA_START:
        errors.append(FieldError("note", f"must not start with {note[0]!r} (a spreadsheet would "
                                         "run it as a formula)"))
    if errors:
        return None, errors
    return Clean(email, object_id, name, meeting, meeting_key, valid_from, valid_until, note), []


def cleaned_identity(req: OptOutRequest) -> tuple[str | None, str | None]:
    """The normalised (email, object id) of a request that `check` accepted."""
    clean, errors = clean_request(req)
    if clean is None:
        raise InputError("; ".join(str(e) for e in errors))
    return clean.email, clean.object_id


def validate(req: OptOutRequest) -> list[FieldError]:
    """Every problem of a request, each tied to its field; empty when it can be added."""
    return clean_request(req)[1]


def check(req: OptOutRequest) -> None:
    """Raise one `InputError` naming every bad field ("email: …; meeting: …")."""
    errors = validate(req)
    if errors:
        raise InputError("; ".join(str(e) for e in errors))


def parse_when(text: str, *, field: str, end: bool = False) -> datetime:
    """A date or an ISO 8601 time from the CLI, a CSV cell or a form; no zone means UTC.

    A bare date as the end of a range means the whole of that day (`--until 2026-03-31`
    includes meetings on the 31st).
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1, microseconds=-1) if end else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{field}: not a date (expected YYYY-MM-DD or an ISO 8601 time, "
                         f"got {value[:40]!r})") from None
    return aware_utc(parsed) or parsed


# -- names -------------------------------------------------------------------------------
def normalise_name(name: str) -> str:
    """Case-folded, NFKC, whitespace collapsed: "  Ada  LOVELACE" and "ada lovelace" agree."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def blind_name(vault: Vault, name: str) -> str:
    """For search only: the registry never matches a participant by name."""
    return vault.blind("name", normalise_name(name))
