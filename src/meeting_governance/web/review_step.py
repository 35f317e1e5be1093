"""The review step, shared by the page (`POST /optouts`, step `review`) and the API
(`POST /api/optouts/review`): every check made at once — whom the identity reaches in the
directory, which meeting a link names, opt-outs that already cover it — within one Graph
deadline, and the sealed token that carries what was reviewed to the save."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from meeting_governance import optouts
from meeting_governance.web import lookups, review
from meeting_governance.web.auth import ctx_of
from meeting_governance.web.reviewed import Reviewed, ReviewSeal
from meeting_governance.web.security import csrf_token


@dataclass(frozen=True, slots=True)
class ReviewFacts:
    """Everything the review shows (nothing of it stored), and the token to save it with."""

    person: lookups.PersonCheck
    meeting: review.MeetingFacts | None
    overlaps: tuple[review.Overlap, ...]
    past_range: bool
    token: str


def gather(request: Request, req: optouts.OptOutRequest) -> ReviewFacts:
    """Run the checks for a valid request. The directory look-up starts first and runs while
    the meeting is looked up, so the page waits for Graph at most about one deadline."""
    ctx = ctx_of(request)
    state = request.app.state
    email, object_id = optouts.cleaned_identity(req)
    pending = lookups.start_person_check(ctx, state.graph, email=email, object_id=object_id)
    facts = (review.check_meeting(ctx, req.meeting, resolver=state.meeting_resolver)
             if req.meeting else None)
    person = lookups.person_check(pending)
    registration = person.registration
    found = review.overlaps(ctx, req, identifiers=registration.blinds if registration else (),
                            keys=facts.keys if facts else ())
    seal: ReviewSeal = state.review_seal
    token = seal.seal(req, session_csrf=csrf_token(request), registration=registration,
                      now=ctx.clock.now())
    return ReviewFacts(person=person, meeting=facts, overlaps=tuple(found),
                       past_range=bool(req.valid_until and req.valid_until < ctx.clock.now()),
                       token=token)


def reviewed(request: Request, req: optouts.OptOutRequest, token: str | None) -> Reviewed | None:
    """What the token says was reviewed for exactly this request in this session, or None."""
    seal: ReviewSeal = request.app.state.review_seal
    return seal.open(token, req, session_csrf=csrf_token(request),
                     now=ctx_of(request).clock.now())


__all__ = ["ReviewFacts", "gather", "reviewed"]
