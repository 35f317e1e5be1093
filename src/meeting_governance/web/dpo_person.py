"""The DPO desk's person page: what is held about a person, export, erasure and withdrawal of
consent — under every identifier the directory knows for them, as `dsr export|erase|withdraw`.

The person is resolved through the directory on every request (`people.person_identity`, within
`web.graph_timeout_s`). An address several accounts share is refused: the object id names one
person. When the directory cannot be read nothing is done until the DPO chooses to search by
the identity given only (the command line's `--offline`), which every result then says, and
which every action of that page keeps (`only_given`). Routes are thin over `dsr`; every
decryption happens (and is audited) there. A person's address or object id only ever travels
in a POST body: never in a URL, a redirect or a log line; the display name is shown, not kept.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from sqlmodel import col, select
from starlette.responses import Response

from meeting_governance import dsr, holds
from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError, InputError
from meeting_governance.models import Hold
from meeting_governance.people import AmbiguousIdentity, PersonIdentity, Registration
from meeting_governance.web import lookups
from meeting_governance.web.auth import Principal, ctx_of
from meeting_governance.web.dpo import _desk, _reference, identity
from meeting_governance.web.review import graph_trouble
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


# -- who the person is ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """A data subject as the desk acts on them: the identity typed (validated) and every
    identifier it stands for (`identity.note` says how they were found)."""

    ident: dict[str, str]
    identity: PersonIdentity


class DirectoryUnreadable(Exception):
    """The directory could not be read; `problem` says why, in words for the page."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def ambiguous_message(exc: AmbiguousIdentity) -> str:
    return (f"This address belongs to {exc.accounts} accounts in the directory. Enter the "
            "person's Entra object id instead, so that nobody else's data is included.")


def find(request: Request, who_text: str, only_given: bool) -> Found:
    """InputError for a bad or shared identity; DirectoryUnreadable when the directory cannot
    be read (and the DPO has not chosen to search by the identity given only)."""
    ident = identity(who_text)
    ctx = ctx_of(request)
    try:
        person = lookups.person_lookup(ctx, request.app.state.graph, only_given=only_given,
                                       email=ident.get("email"),
                                       object_id=ident.get("object_id"))
    except AmbiguousIdentity as exc:
        raise InputError(ambiguous_message(exc)) from None
    except GraphError as exc:
        raise DirectoryUnreadable(graph_trouble(exc)) from None
    return Found(ident, person)


def registration_of(found: Found) -> Registration | None:
    """The directory's answer as an opt-out records it (withdrawal of consent)."""
    person = found.identity
    if not person.live:
        return None
    return Registration("not_found" if person.who.kind == "not_found" else "found",
                        frozenset(person.blinds), person.who)


# -- what is held -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingRow:
    transcript_id: str
    meeting_id: str
    meeting_start: datetime | None
    duration_s: float
    retention_policy: str
    retain_until: datetime | None
    held: bool


@dataclass(frozen=True)
class OptOutRow:
    """An opt-out's metadata (its sealed name and address are not opened here)."""

    id: str
    scope: str
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class PersonView:
    """What is held about a person, from metadata only: nothing is decrypted for this page."""

    summary: dsr.PersonSummary
    meetings: tuple[MeetingRow, ...]
    untranscribed: tuple[dict[str, Any], ...]
    optouts: tuple[OptOutRow, ...]
    covering_holds: tuple[holds.HoldInfo, ...]
    note: str  # how the person's identifiers were found


def _blinds(ctx: AppContext, found: Found) -> list[str]:
    return sorted({dsr.subject_blind(ctx, dsr.subject(**found.ident)), *found.identity.blinds})


def person_view(ctx: AppContext, found: Found) -> PersonView:
    summary = dsr.find_person(ctx, found.identity, **found.ident)
    blinds = _blinds(ctx, found)
    # dsr's own finders, so the rows below are exactly those that export and erasure act on.
    with ctx.session() as session:
        rows = dsr._live_transcripts(session, blinds)
        ids = {r.id for r in rows}
        held = dsr._held_ids(session, sorted(ids))
        covering = []
        for hold in session.exec(select(Hold).where(col(Hold.released_at).is_(None))
                                 .order_by(col(Hold.set_at))).all():
            covered = set(holds.covered_by(session, hold))
            if hold.person_blind in blinds or covered & ids:
                covering.append(holds._info(hold, len(covered & ids)))
        return PersonView(
            summary=summary,
            meetings=tuple(MeetingRow(r.id, r.meeting_id, r.meeting_start, r.duration_s,
                                      r.retention_policy, r.retain_until, r.id in held)
                           for r in rows),
            untranscribed=tuple(dsr._recordings_without_transcript(session, blinds)),
            optouts=tuple(OptOutRow(o.id, o.scope, o.valid_from, o.valid_until, o.created_at,
                                    o.revoked_at) for o in dsr._optouts_of(session, blinds)),
            covering_holds=tuple(covering), note=found.identity.note)


def _page(request: Request, who_text: str, *, found: Found | None = None,
          errors: dict[str, str] | None = None, reference: str = "",
          withdrawn: dsr.WithdrawalReport | None = None, directory: str = "",
          only_given: bool = False, status: int = 200) -> Response:
    """The search form; what is held about the person when `found`; or, when the directory
    could not be read (`directory` says why), the choice to search by the identity given."""
    view = person_view(ctx_of(request), found) if found else None
    return render(request, "dpo_person.html", {
        "title": "Find a person", "who": who_text.strip(), "view": view,
        "errors": errors or {}, "reference": reference.strip(), "withdrawn": withdrawn,
        "directory": directory, "only_given": only_given,
        "idword": "address" if "@" in who_text else "object id"}, status_code=status)


def _refused(request: Request, who_text: str, reference: str, only_given: bool,
             exc: Exception, *, status: int) -> Response:
    """The person page again, for an action that was not done: a bad or shared identity, an
    unreadable directory, or a reference logged for another person or kind."""
    if isinstance(exc, DirectoryUnreadable):
        return _page(request, who_text, directory=exc.problem, reference=reference,
                     status=status)
    try:
        found = find(request, who_text, only_given)
    except InputError as bad:
        return _page(request, who_text, errors={"who": str(bad)}, status=422)
    except DirectoryUnreadable as unread:
        return _page(request, who_text, directory=unread.problem, status=status)
    key = "full_reason" if "--full-transcript" in str(exc) or "--reason" in str(exc) \
        else "reference"
    return _page(request, who_text, found=found, errors={key: str(exc)},
                 reference=reference, only_given=only_given, status=422)


# -- routes ---------------------------------------------------------------------------------------
@router.get("/dpo/person")
def person_form(request: Request, who: Principal = _desk()) -> Response:
    return _page(request, "")


@router.post("/dpo/person")
def person_find(request: Request, principal: Principal = _desk(csrf=True),
                who: str = Form("", max_length=4000), only_given: bool = Form(False)) -> Response:
    """A POST, not a GET with a query: the address stays out of URLs, history and logs."""
    try:
        found = find(request, who, only_given)
    except InputError as exc:
        return _page(request, who, errors={"who": str(exc)}, status=422)
    except DirectoryUnreadable as exc:
        return _page(request, who, directory=exc.problem)
    return _page(request, who, found=found, only_given=only_given)


@router.post("/dpo/person/export")
def person_export(request: Request, principal: Principal = _desk(csrf=True),
                  who: str = Form("", max_length=4000),
                  reference: str = Form("", max_length=100),
                  only_given: bool = Form(False),
                  full_transcript: bool = Form(False),
                  full_reason: str = Form("", max_length=4000)) -> Response:
    """The access bundle as a download. It is built in a private temporary directory and read
    back into memory, so the decrypted zip does not outlive the request on disk. By default
    each transcript holds the person's own turns only; `full_transcript` with a reason gives
    the whole text and records the choice with the request."""
    ctx = ctx_of(request)
    try:
        found = find(request, who, only_given)
        with tempfile.TemporaryDirectory(prefix=".dsr-export-", dir=ctx.settings.home) as tmp:
            report = dsr.export_person(ctx, found.identity, email=found.ident.get("email"),
                                       object_id=found.ident.get("object_id"),
                                       out=Path(tmp) / "bundle.zip",
                                       reference=_reference(reference), actor=principal.actor,
                                       full_transcript=full_transcript,
                                       reason=full_reason or None)
            data = report.path.read_bytes()
    except (InputError, DirectoryUnreadable) as exc:
        return _refused(request, who, reference, only_given, exc, status=503)
    log.info("DSR export downloaded from the DPO desk",
             extra={"reference": report.reference, "transcripts": len(report.transcript_ids),
                    "bytes": report.size, "directory": found.identity.live})
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{report.reference}.zip"',
        "X-DSR-Reference": report.reference})


def erasure_digest(ctx: AppContext, found: Found) -> str:
    """A short fingerprint of what an erasure would destroy now (ids only, nothing opened):
    the confirmation carries it, so a transcript stored or held meanwhile — or one the person's
    identifiers reach now but did not then — is not erased without being shown first."""
    with ctx.session() as session:
        rows = dsr._live_transcripts(session, _blinds(ctx, found))
        held = dsr._held_ids(session, [r.id for r in rows])
    doomed = sorted(r.id for r in rows if r.id not in held)
    return hashlib.sha256(",".join(doomed).encode()).hexdigest()[:32]


@router.post("/dpo/person/erase")
def person_erase(request: Request, principal: Principal = _desk(csrf=True),
                 who: str = Form("", max_length=4000), reference: str = Form("", max_length=100),
                 step: str = Form("review"), expected: str = Form("", max_length=64),
                 only_given: bool = Form(False)) -> Response:
    """Two steps: `review` is the data layer's dry run (the count that will go, and the held
    transcripts with their hold reasons); `confirm` erases exactly what was reviewed, or shows
    the review again if that changed in between."""
    ctx = ctx_of(request)
    changed = False
    try:
        found = find(request, who, only_given)
        confirm = step == "confirm"
        if confirm and expected != erasure_digest(ctx, found):
            confirm, changed = False, True
        report = dsr.erase_person(ctx, found.identity, **found.ident,
                                  reference=_reference(reference), actor=principal.actor,
                                  dry_run=not confirm)
    except (InputError, DirectoryUnreadable) as exc:
        return _refused(request, who, reference, only_given, exc, status=503)
    if confirm:
        log.info("DSR erasure from the DPO desk",
                 extra={"reference": report.reference, "erased": len(report.erased),
                        "held": len(report.held), "directory": found.identity.live})
    return render(request, "dpo_erase.html", {
        "title": "Erasure done" if confirm else "Erase everything held about this person?",
        "who": who.strip(), "reference": reference.strip(), "report": report,
        "changed": changed, "only_given": only_given, "note": found.identity.note,
        "expected": "" if confirm else erasure_digest(ctx, found)},
        status_code=409 if changed else 200)


@router.post("/dpo/person/withdraw")
def person_withdraw(request: Request, principal: Principal = _desk(csrf=True),
                    who: str = Form("", max_length=4000),
                    reference: str = Form("", max_length=100),
                    only_given: bool = Form(False)) -> Response:
    """Withdrawal of consent: an opt-out from every meeting, recording and transcription,
    matching every identifier the directory knows for the person."""
    ctx = ctx_of(request)
    try:
        found = find(request, who, only_given)
        report = dsr.withdraw_consent(ctx, registration_of(found), **found.ident,
                                      reference=_reference(reference), actor=principal.actor)
    except (InputError, DirectoryUnreadable) as exc:
        return _refused(request, who, reference, only_given, exc, status=503)
    log.info("consent withdrawn from the DPO desk",
             extra={"reference": report.reference, "optout_id": report.optout_id,
                    "directory": found.identity.live})
    return _page(request, who, found=found, withdrawn=report, only_given=only_given)


__all__ = ["Found", "PersonView", "erasure_digest", "find", "person_view", "router"]
