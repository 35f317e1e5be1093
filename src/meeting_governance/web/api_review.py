"""`POST /api/optouts/review`: the API's review step, what the page shows before saving —
whom the identity reaches in the directory, which meeting a link names, opt-outs that already
cover it, and every warning — plus the `review_token` that saves exactly that
(`POST /api/optouts` with it). Nothing here is stored; display names and subjects are shown to
the caller only."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from meeting_governance import optouts
from meeting_governance.web.api import WRITE, FieldProblem, OptOutIn, ValidationProblem
from meeting_governance.web.auth import Principal, allow
from meeting_governance.web.review_step import ReviewFacts, gather
from meeting_governance.web.reviewed import REVIEW_MAX_AGE_S

router = APIRouter(prefix="/api", tags=["opt-outs"],
                   generate_unique_id_function=lambda route: route.name)


class PersonOut(BaseModel):
    """Whom the e-mail address or object id reaches in the directory (shown, never stored)."""

    checked: bool = Field(description="False when the directory could not be asked: the "
                          "opt-out then matches the identifier given until it answers.")
    kind: str | None = Field(description="member, guest, not_found or ambiguous (several "
                             "accounts share the address; the opt-out covers them all)")
    display_name: str | None
    description: str
    identifiers: int = Field(description="How many identifiers the opt-out will match.")
    problem: str | None = Field(description="Why the directory could not be asked.")


class MeetingOut(BaseModel):
    """The meeting a join link or meeting id names, as far as it could be checked."""

    link: str = Field(description="The link as people read it, without its query.")
    checked: bool
    subject: str | None
    start: datetime | None
    end: datetime | None
    organiser: str | None
    not_checked: str | None = Field(description="Why subject, times and organiser are missing.")
    tenant_id: str | None
    foreign_tenant: bool | None = Field(description="None: cannot tell from the link.")
    past: bool
    recordings_seen: int
    last_recording: datetime | None


class OverlapOut(BaseModel):
    """An active opt-out of the same person that already covers some of the new one."""

    optout_id: str
    scope: str
    valid_from: datetime | None
    valid_until: datetime | None
    covers_recording: bool
    covers_transcription: bool
    complete: bool = Field(description="It already blocks everything the new one would.")


class ReviewWarning(BaseModel):
    code: str = Field(description="duplicate, ambiguous_person, person_not_checked, "
                      "meeting_not_checked, foreign_tenant, past_meeting, recorded_before, "
                      "past_range")
    message: str


class ReviewOut(BaseModel):
    person: PersonOut
    meeting: MeetingOut | None
    overlaps: list[OverlapOut]
    warnings: list[ReviewWarning]
    review_token: str = Field(description=(
        "Send it as `review_token` with POST /api/optouts (same body, same session, within "
        f"{REVIEW_MAX_AGE_S // 60} minutes) to save exactly what was reviewed."))


def _person(facts: ReviewFacts, given: int) -> PersonOut:
    registration = facts.person.registration
    if registration is None:
        return PersonOut(checked=False, kind=None, display_name=None,
                         description="could not be checked — the opt-out matches the "
                         "identifier given until the directory answers", identifiers=given,
                         problem=facts.person.problem)
    who = registration.who
    return PersonOut(checked=True, kind=who.kind, display_name=who.display_name,
                     description=who.description, identifiers=who.identifiers, problem=None)


def _meeting(facts: ReviewFacts) -> MeetingOut | None:
    m = facts.meeting
    if m is None:
        return None
    r = m.resolved
    return MeetingOut(link=m.link, checked=r is not None, subject=r.subject if r else None,
                      start=r.start if r else None, end=r.end if r else None,
                      organiser=r.organiser if r else None, not_checked=m.not_checked or None,
                      tenant_id=m.tenant_id, foreign_tenant=m.foreign_tenant, past=m.past,
                      recordings_seen=m.recordings_seen, last_recording=m.last_recording)


def warnings(facts: ReviewFacts) -> list[ReviewWarning]:
    """The page's "Before you save" list, as codes and sentences."""
    found: list[ReviewWarning] = []
    registration, meeting = facts.person.registration, facts.meeting
    for overlap in facts.overlaps:
        if overlap.complete:
            found.append(ReviewWarning(code="duplicate", message=(
                f"opt-out {overlap.optout_id} of the same person already covers this")))
    if registration is not None and registration.who.kind == "ambiguous":
        found.append(ReviewWarning(code="ambiguous_person", message=(
            f"{registration.who.description}; for one person, give their object id")))
    if registration is None:
        found.append(ReviewWarning(code="person_not_checked", message=(
            f"{facts.person.problem}: whom this reaches could not be checked")))
    if meeting is not None:
        if meeting.not_checked:
            found.append(ReviewWarning(code="meeting_not_checked", message=meeting.not_checked))
        if meeting.foreign_tenant:
            found.append(ReviewWarning(code="foreign_tenant", message=(
                f"the link belongs to another organisation's tenant ({meeting.tenant_id}): "
                "this service never fetches its recordings")))
        if meeting.past:
            found.append(ReviewWarning(code="past_meeting", message=(
                "the meeting has already taken place (Microsoft Graph)")))
        if meeting.recordings_seen:
            found.append(ReviewWarning(code="recorded_before", message=(
                f"{meeting.recordings_seen} recording(s) of this meeting were already seen; "
                "transcripts already made stay")))
    if facts.past_range:
        found.append(ReviewWarning(code="past_range", message="the last day is in the past"))
    return found


@router.post("/optouts/review", response_model=ReviewOut, responses=WRITE)
def review_optout(request: Request, body: OptOutIn,
                  who: Principal = Depends(allow("optouts.write", csrf=True))
                  ) -> Response | ReviewOut:
    """Check a new opt-out without saving it: whom it reaches, which meeting, what already
    covers it. Graph is given `web.graph_timeout_s`; what it could not answer in time is
    reported as not checked. `review_token` then saves exactly this."""
    req = optouts.OptOutRequest(**body.model_dump(exclude={"review_token"}))
    problems = optouts.validate(req)
    if problems:
        return JSONResponse(ValidationProblem(detail=[
            FieldProblem(field=p.field, message=p.message) for p in problems]).model_dump(),
            status_code=422)
    facts = gather(request, req)
    given = sum(1 for value in optouts.cleaned_identity(req) if value)
    return ReviewOut(person=_person(facts, given), meeting=_meeting(facts),
                     overlaps=[OverlapOut(**{name: getattr(o, name)
                                             for name in OverlapOut.model_fields})
                               for o in facts.overlaps],
                     warnings=warnings(facts), review_token=facts.token)
