"""The DPO desk's speaker pages: a transcript's speaker labels with how each was named, a
DPO's naming of a label after listening (audited, as `transcript speakers --name`), and
per-person redaction (as `dsr erase --redact`), reviewed before it is done.

Routes are thin over `speakers` and `dsr.redaction`; every decryption happens (and is audited)
there. The transcript id travels in the URL (it names nobody); a person's address only in a
POST body.
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from meeting_governance import dsr, speakers
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.web.auth import Principal, ctx_of
from meeting_governance.web.dpo import _desk, _reference
from meeting_governance.web.dpo_person import (
    DirectoryUnreadable,
    Found,
    _blinds,
    _refused,
    find,
)
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def _speakers_page(request: Request, transcript_id: str, *, errors: dict[str, str] | None = None,
                   done: str | None = None, status: int = 200, form: dict[str, str] | None = None
                   ) -> Response:
    ctx = ctx_of(request)
    views = speakers.speakers(ctx, transcript_id, reason="DPO desk: speakers")
    return render(request, "dpo_speakers.html", {
        "title": "Speakers of a transcript", "transcript_id": transcript_id, "views": views,
        "errors": errors or {}, "done": done, "form": form or {}}, status_code=status)


@router.get("/dpo/transcripts/{transcript_id}/speakers")
def speakers_page(request: Request, transcript_id: str,
                  principal: Principal = _desk()) -> Response:
    """Every label with the name it carries and how it was named; unnamed stay "Speaker N"."""
    try:
        return _speakers_page(request, transcript_id)
    except (NotFoundError, InputError) as exc:
        return render(request, "dpo_speakers.html", {
            "title": "Speakers of a transcript", "transcript_id": transcript_id, "views": [],
            "errors": {"transcript": str(exc)}, "done": None, "form": {}}, status_code=404)


@router.post("/dpo/transcripts/{transcript_id}/speakers")
def speakers_assign(request: Request, transcript_id: str,
                    principal: Principal = _desk(csrf=True),
                    label: str = Form("", max_length=40),
                    person: str = Form("", max_length=4000),
                    note: str = Form("", max_length=400)) -> Response:
    """The DPO names a label as a participant of the meeting after listening (audited)."""
    ctx = ctx_of(request)
    form = {"label": label, "person": person, "note": note}
    try:
        if not person.strip():
            raise InputError("Enter the participant's e-mail address or Entra object id.")
        link = speakers.assign(ctx, transcript_id, label, person, actor=principal.actor,
                               note=note)
    except (NotFoundError, InputError) as exc:
        field = "label" if "speaker" in str(exc) or "label" in str(exc) else "person"
        return _speakers_page(request, transcript_id, errors={field: str(exc)}, status=422,
                              form=form)
    log.info("speaker named from the DPO desk",
             extra={"transcript": transcript_id, "label": link.label})
    return _speakers_page(request, transcript_id, done=link.label)


def redaction_digest(ctx: AppContext, found: Found) -> str:
    """What a redaction would change now (ids and versions, nothing opened): the confirmation
    carries it, so nothing stored or changed meanwhile is redacted without being shown."""
    with ctx.session() as session:
        rows = dsr._live_transcripts(session, _blinds(ctx, found))
        held = dsr._held_ids(session, [r.id for r in rows])
    seen = sorted(f"{r.id}:{r.version}" for r in rows if r.id not in held)
    return hashlib.sha256(",".join(seen).encode()).hexdigest()[:32]


@router.post("/dpo/person/redact")
def person_redact(request: Request, principal: Principal = _desk(csrf=True),
                  who: str = Form("", max_length=4000), reference: str = Form("", max_length=100),
                  step: str = Form("review"), expected: str = Form("", max_length=64),
                  only_given: bool = Form(False)) -> Response:
    """Two steps, as erasure: `review` is the dry run (per transcript: the person's segments and
    the uncertain ones, under `dsr.redact_uncertain`), `confirm` redacts what was reviewed."""
    ctx = ctx_of(request)
    changed = False
    try:
        found = find(request, who, only_given)
        confirm = step == "confirm"
        if confirm and expected != redaction_digest(ctx, found):
            confirm, changed = False, True
        report = dsr.redact_person(ctx, found.identity, email=found.ident.get("email"),
                                   object_id=found.ident.get("object_id"),
                                   reference=_reference(reference), actor=principal.actor,
                                   dry_run=not confirm)
    except (InputError, DirectoryUnreadable) as exc:
        return _refused(request, who, reference, only_given, exc, status=503)
    if confirm:
        log.info("DSR redaction from the DPO desk",
                 extra={"reference": report.reference, "redacted": len(report.redacted),
                        "held": len(report.held), "directory": found.identity.live})
    return render(request, "dpo_redact.html", {
        "title": "Redaction done" if confirm else "Remove this person's words from transcripts?",
        "who": who.strip(), "reference": reference.strip(), "report": report,
        "changed": changed, "only_given": only_given, "note": found.identity.note,
        "expected": "" if confirm else redaction_digest(ctx, found)},
        status_code=409 if changed else 200)
