"""The add-opt-out form: raw fields in, an `OptOutRequest` and per-field errors out, and the
plain-language summary of what an opt-out will block (shown before it is saved)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from meeting_governance import optouts
from meeting_governance.identity import normalise_email, normalise_object_id

SCOPES = ("all", "meeting", "range")
FIELD_LIMITS = {"name": 200, "email": 320, "object_id": 64, "meeting": 4000, "note": 2000,
                "valid_from": 10, "valid_until": 10, "scope": 10}


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


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def to_request(form: OptOutForm) -> tuple[optouts.OptOutRequest | None, dict[str, str]]:
    """Check what only the form knows (scope choice, date syntax, lengths), then ask the
    registry's `validate`; returns the request, or None and the errors by field name."""
    errors: dict[str, str] = {}
    for name, limit in FIELD_LIMITS.items():
        if len(str(getattr(form, name))) > limit:
            errors[name] = f"Too long: at most {limit} characters."
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
        first, last = _parse_day(form.valid_from), _parse_day(form.valid_until)
        if first is None:
            errors["valid_from"] = "Enter the first day as YYYY-MM-DD."
        if last is None:
            errors["valid_until"] = "Enter the last day as YYYY-MM-DD."
        if first and last:
            if last < first:
                errors["valid_until"] = "The last day must not be before the first day."
            valid_from = optouts.parse_when(first.isoformat(), field="valid_from")
            # The last day counts in full, as on the command line.
            valid_until = optouts.parse_when(last.isoformat(), field="valid_until", end=True)
    if errors:
        return None, errors
    request = optouts.OptOutRequest(
        email=form.email.strip() or None, object_id=form.object_id.strip() or None,
        name=form.name.strip() or None, meeting=meeting, valid_from=valid_from,
        valid_until=valid_until, covers_recording=form.covers_recording,
        covers_transcription=form.covers_transcription, note=form.note.strip() or None)
    for problem in optouts.validate(request):
        errors.setdefault(_form_field(problem.field), problem.message)
    return (None, errors) if errors else (request, {})


def _form_field(name: str) -> str:
    """The registry's field names are the form's, except `covers` (two checkboxes: the error
    sits at the first)."""
    return {"covers": "covers_recording"}.get(name, name)


def blocked_summary(form: OptOutForm) -> list[str]:
    """Sentences an operator can check before saving: who, what and which meetings."""
    who = form.name.strip() or "This person"
    ids = [f"e-mail {normalise_email(form.email)}" if form.email.strip() else "",
           f"Entra object id {normalise_object_id(form.object_id)}" if form.object_id.strip()
           else ""]
    what = " and ".join(w for w, on in (("recording", form.covers_recording),
                                         ("transcription", form.covers_transcription)) if on)
    verb = {(True, True): "recorded or transcribed", (True, False): "recorded",
            (False, True): "transcribed"}.get((form.covers_recording, form.covers_transcription),
                                              "blocked")
    if form.scope == "meeting":
        where = "the one meeting given by the link or id below"
    elif form.scope == "range":
        where = f"every meeting from {form.valid_from} to {form.valid_until} (both days included)"
    else:
        where = "every meeting, until the opt-out is revoked"
    lines = [f"{who}, matched by {' and by '.join(i for i in ids if i)} (never by name).",
             f"Blocks {what or 'nothing'} of {where}.",
             f"While this person attends, such a meeting will not be {verb}."]
    if form.scope == "meeting":
        lines.append(f"Meeting: {form.meeting.strip()}")
    return lines
