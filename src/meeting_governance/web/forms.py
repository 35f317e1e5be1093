"""The add-opt-out form: raw fields in, an `OptOutRequest` and per-field errors out, and the
plain-language summary shown before it is saved: what the service will do, what it cannot do,
and what the coordinator must still do themselves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from meeting_governance import optouts
from meeting_governance.identity import normalise_email, normalise_object_id

SCOPES = ("all", "meeting", "range")
FIELD_LIMITS = {"name": 200, "email": 320, "object_id": 64, "meeting": 4000, "note": 2000,
                "valid_from": 40, "valid_until": 40, "scope": 10}
# What to check when a field is too long (the pages have no maxlength: a browser would cut a
# pasted value silently, so the whole value comes here and is reported).
_TOO_LONG_HINT = {"meeting": "Paste only the join link, nothing around it.",
                  "email": "Enter one address only.", "object_id": "Enter one object id only."}
# Year-month-day as the hint shows it, with '-', '/' or '.' and one- or two-digit month and day.
_DAY = re.compile(r"^\s*(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*$")


@dataclass(frozen=True)
class OptOutForm:
    """What the form posted, as strings and booleans (re-rendered as typed on an error)."""

    name: str = ""
    email: str = ""
    object_id: str = ""
    scope: str = "all"
    meeting: str = ""
    valid_from: str = ""
    valid_until: str = ""
    covers_recording: bool = True
    covers_transcription: bool = True
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def with_errors(self, errors: dict[str, str]) -> OptOutForm:
        return replace(self, errors=errors)


def parse_day(text: str) -> date | None:
    """A day written as the form's hint shows it (2026-05-14; also 2026-5-14, 2026/05/14 or
    2026.05.14). Day-first or month-first forms are refused: 05/04/2026 is two different days
    in two countries."""
    match = _DAY.match(text)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def to_request(form: OptOutForm) -> tuple[optouts.OptOutRequest | None, dict[str, str]]:
    """Check what only the form knows (scope choice, date syntax, lengths), then ask the
    registry's `validate`; returns the request, or None and the errors by field name."""
    errors: dict[str, str] = {}
    for name, limit in FIELD_LIMITS.items():
        length = len(str(getattr(form, name)))
        if length > limit:
            errors[name] = (f"Too long: {length:,} characters, at most {limit:,}. Nothing was "
                            f"cut off. {_TOO_LONG_HINT.get(name, '')}").strip()
    if form.scope not in SCOPES:
        errors["scope"] = "Choose all meetings, one meeting or a date range."
    meeting: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    if form.scope == "meeting":
        meeting = form.meeting.strip()
        if not meeting:
            errors["meeting"] = "Paste the meeting's Teams join link or its meeting id."
    elif form.scope == "range":
        first, last = parse_day(form.valid_from), parse_day(form.valid_until)
        if first is None and "valid_from" not in errors:
            errors["valid_from"] = ("Enter the first day as year-month-day, for example "
                                    "2026-05-14.")
        if last is None and "valid_until" not in errors:
            errors["valid_until"] = ("Enter the last day as year-month-day, for example "
                                     "2026-05-31.")
        if first and last:
            if last < first:
                errors["valid_until"] = "The last day must not be before the first day."
            valid_from = optouts.parse_when(first.isoformat(), field="valid_from")
            # The last day counts in full, as on the command line.
            valid_until = optouts.parse_when(last.isoformat(), field="valid_until", end=True)
    request = optouts.OptOutRequest(
        email=form.email.strip() or None, object_id=form.object_id.strip() or None,
        name=form.name.strip() or None, meeting=meeting or None, valid_from=valid_from,
        valid_until=valid_until, covers_recording=form.covers_recording,
        covers_transcription=form.covers_transcription, note=form.note.strip() or None)
    # The registry's own rules too, even when the form found something: every problem is
    # reported at once, not one per attempt.
    for problem in optouts.validate(request):
        errors.setdefault(_form_field(problem.field), problem.message)
    if errors:
        return None, {name: errors[name] for name in sorted(errors, key=_position)}
    return request, {}


# The order of the fields on the page, so the error summary reads top to bottom.
_FIELD_ORDER = ["name", "email", "object_id", "scope", "meeting", "valid_from", "valid_until",
                "covers_recording", "covers_transcription", "note"]


def _position(name: str) -> int:
    return _FIELD_ORDER.index(name) if name in _FIELD_ORDER else len(_FIELD_ORDER)


def _form_field(name: str) -> str:
    """The registry's field names are the form's, except `covers` (two checkboxes: the error
    sits at the first)."""
    return {"covers": "covers_recording"}.get(name, name)


@dataclass(frozen=True)
class ReviewText:
    """The review page's plain-language sections."""

    does: list[str]        # what saving it makes the service do
    cannot: list[str]      # what the service cannot do about it
    you_must: list[str]    # what the coordinator still has to do


def review_text(form: OptOutForm, reaches: int = 0) -> ReviewText:
    """Sentences a coordinator can check before saving: who, which meetings, what the service
    does (it refuses to fetch and transcribe recordings), what it cannot do (stop Teams from
    recording), and what is left to the coordinator. `reaches`: how many identifiers the
    directory found for the person (0: it was not asked, or knows nobody)."""
    who = form.name.strip() or "this person"
    ids = [f"e-mail address {normalise_email(form.email)}" if form.email.strip() else "",
           f"Entra object id {normalise_object_id(form.object_id)}" if form.object_id.strip()
           else ""]
    wish = " or ".join(w for w, on in (("recorded", form.covers_recording),
                                       ("transcribed", form.covers_transcription)) if on)
    if form.scope == "meeting":
        where = "the one meeting of the link below (every occurrence, if it is a series)"
    elif form.scope == "range":
        first, last = parse_day(form.valid_from), parse_day(form.valid_until)
        where = (f"every meeting from {first.isoformat() if first else form.valid_from} to "
                 f"{last.isoformat() if last else form.valid_until} (both days included)")
    else:
        where = "every meeting, until a data protection officer revokes the opt-out"
    known = " and by ".join(i for i in ids if i)
    if reaches > len([i for i in ids if i]):
        known += f" — and by every other identifier the directory knows ({reaches} in all)"
    does = [f"Records that {who} does not want to be {wish or 'recorded'} "
            f"(recognised by {known}, never by name).",
            f"Meeting Governance will refuse to download and to transcribe the Teams recording "
            f"of {where} whenever this person is among the participants.",
            "It applies from the moment you save it, also to recordings that are waiting to "
            "be processed."]
    cannot = ["It cannot stop Teams from recording: anyone allowed to record in the meeting "
              "can still start a recording, and Microsoft keeps it under your organisation's "
              "Teams settings.",
              "It cannot stop Teams' own live transcription or captions, and it does not "
              "delete recordings or transcripts that already exist."]
    you_must = ["Tell the meeting's organiser, before the meeting, that this person does not "
                "want to be recorded or transcribed.",
                "If the person must not be recorded at all, the organiser turns recording and "
                "transcription off in the meeting's options in Teams (or asks them not to join "
                "while it runs).",
                "If the person wants existing recordings or transcripts removed, pass that on "
                "to your data protection officer."]
    return ReviewText(does=does, cannot=cannot, you_must=you_must)
