"""The coordinator's pages: list and search, add (with a review step), detail and audit
trail, CSV import; revoking (with confirmation) is the DPO's. Routes are thin over
`meeting_governance.optouts`; what the review step checks lives in `review.py`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meeting_governance import optouts
from meeting_governance.errors import InputError
from meeting_governance.web import review, review_step
from meeting_governance.web.auth import Principal, allow, ctx_of
from meeting_governance.web.forms import OptOutForm, review_text, to_request
from meeting_governance.web.reviewed import REVIEW_MAX_AGE_S
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


@router.get("/")
def home(who: Principal = Depends(allow("optouts.read"))) -> Response:
    return RedirectResponse("/optouts", status_code=303)


SEARCH_LIMIT = 200  # exact matches of one person: a handful, never a page of thousands


@router.get("/optouts")
def list_page(request: Request, page: int = 1,
              who: Principal = Depends(allow("optouts.read"))) -> Response:
    """Every opt-out, newest first. Searching is a POST (`/optouts/search`): what is searched
    for is a name or an address, and it must not end up in URLs, browser history or proxy logs."""
    ctx = ctx_of(request)
    page = max(1, min(page, 10_000))
    with ctx.session() as db:
        rows = optouts.list_optouts(ctx, db, include_revoked=True, limit=PAGE_SIZE + 1,
                                    offset=(page - 1) * PAGE_SIZE)
    return render(request, "optouts_list.html", {
        "title": "Opt-outs", "rows": rows[:PAGE_SIZE], "q": "", "searched": False,
        "page": page, "has_next": len(rows) > PAGE_SIZE, "search_error": ""})


@router.post("/optouts/search")
def search_page(request: Request, q: str = Form(""),
                who: Principal = Depends(allow("optouts.read", csrf=True))) -> Response:
    """Exact search through the blind index; the page says what that can and cannot find."""
    ctx = ctx_of(request)
    q = q.strip()
    if not q or len(q) > 320:
        error = ("Enter a whole e-mail address, Entra object id, name or reference." if not q
                 else f"Too long: {len(q):,} characters, at most 320. Nothing was cut off.")
        return render(request, "optouts_list.html", {
            "title": "Opt-outs", "rows": [], "q": q, "searched": False, "page": 1,
            "has_next": False, "search_error": error}, status_code=422)
    with ctx.session() as db:
        rows = optouts.list_optouts(ctx, db, search=q, include_revoked=True,
                                    limit=SEARCH_LIMIT)
    return render(request, "optouts_list.html", {
        "title": "Search results", "rows": rows, "q": q, "searched": True, "page": 1,
        "has_next": False, "search_error": ""})


def _form_page(request: Request, form: OptOutForm, status: int = 200) -> Response:
    return render(request, "optout_new.html", {"title": "Add an opt-out", "form": form},
                  status_code=status)


@router.get("/optouts/new")
def new_page(request: Request, who: Principal = Depends(allow("optouts.write"))) -> Response:
    return _form_page(request, OptOutForm())


@router.post("/optouts")
def add(request: Request,
        who: Principal = Depends(allow("optouts.write", csrf=True)),
        step: str = Form("review"),
        name: str = Form(""), email: str = Form(""), object_id: str = Form(""),
        scope: str = Form("all"), meeting: str = Form(""),
        valid_from: str = Form(""), valid_until: str = Form(""),
        covers_recording: bool = Form(False), covers_transcription: bool = Form(False),
        note: str = Form(""), review_token: str = Form("")) -> Response:
    """Two steps without JavaScript: `review` shows what will be blocked and whom and which
    meeting it names, `confirm` saves exactly what was reviewed (the review's token says so;
    without a valid one the review is shown again); `edit` goes back with the values kept."""
    form = OptOutForm(name=name, email=email, object_id=object_id, scope=scope, meeting=meeting,
                      valid_from=valid_from, valid_until=valid_until,
                      covers_recording=covers_recording,
                      covers_transcription=covers_transcription, note=note)
    if step == "edit":
        return _form_page(request, form)
    req, errors = to_request(form)
    if req is None:
        return _form_page(request, form.with_errors(errors), status=422)
    if step != "confirm":
        return _review_page(request, form, req)
    checked = review_step.reviewed(request, req, review_token)
    if checked is None:  # expired, another session's, or the details changed: check again
        return _review_page(request, form, req, again=bool(review_token))
    ctx = ctx_of(request)
    try:
        with ctx.session() as db:
            view = optouts.add_optout(ctx, db, req, actor=who.actor,
                                      registration=checked.registration)
    except InputError as exc:
        return _form_page(request, form.with_errors({"email": str(exc)}), status=422)
    log.info("opt-out added from the web form",
             extra={"optout_id": view.id, "resolution": checked.registration.status
                    if checked.registration else "not_checked"})
    return RedirectResponse(f"/optouts/{view.id}?added=1", status_code=303)


def _review_page(request: Request, form: OptOutForm, req: optouts.OptOutRequest, *,
                 again: bool = False) -> Response:
    """What will happen, what will not, what is left to do; whom the identity reaches and the
    meeting, as far as they can be checked; opt-outs of the same person that already cover
    it; dates in the past. `again`: a save was refused because its review no longer held."""
    ctx = ctx_of(request)
    facts = review_step.gather(request, req)
    found = facts.person.registration
    reaches = found.who.identifiers if found and found.status != "not_found" else 0
    return render(request, "optout_review.html", {
        "title": "Check the opt-out", "form": form, "text": review_text(form, reaches),
        "facts": facts.meeting, "person": facts.person, "overlaps": list(facts.overlaps),
        "past_range": facts.past_range, "review_token": facts.token, "again": again,
        "max_age_minutes": REVIEW_MAX_AGE_S // 60,
        "our_tenant": ctx.settings.graph.tenant_id}, status_code=409 if again else 200)


@router.get("/optouts/import")
def import_page(request: Request, who: Principal = Depends(allow("optouts.write"))) -> Response:
    return render(request, "optout_import.html", {
        "title": "Import opt-outs", "error": "", "imported": None, "problems": [],
        "limit": ctx_of(request).settings.web.max_upload_bytes})


@router.post("/optouts/import")
async def import_submit(request: Request,
                        who: Principal = Depends(allow("optouts.write", csrf=True)),
                        file: UploadFile = File(...)) -> Response:
    ctx = ctx_of(request)
    limit = ctx.settings.web.max_upload_bytes
    data = await file.read(limit + 1)
    context: dict[str, Any] = {"title": "Import opt-outs", "error": "", "imported": None, "limit": limit,
               "problems": []}
    if len(data) > limit:
        return render(request, "optout_import.html", {
            **context, "error": f"The file is larger than {limit} bytes; split it."},
            status_code=413)
    try:
        imported = await run_in_threadpool(_import, request, data, who)
    except InputError as exc:
        problems = [str(p) for p in getattr(exc, "problems", [])][:20]
        return render(request, "optout_import.html", {
            **context, "error": f"Nothing was imported: {exc}", "problems": problems},
            status_code=422)
    return render(request, "optout_import.html", {**context, "imported": imported})


def _import(request: Request, data: bytes, who: Principal) -> list[optouts.OptOutView]:
    ctx = ctx_of(request)
    with ctx.session() as db:
        return optouts.import_csv(ctx, db, data, actor=who.actor)


@router.get("/optouts/{optout_id}")
def detail_page(request: Request, optout_id: str, added: int = 0, revoked: int = 0,
                who: Principal = Depends(allow("optouts.read"))) -> Response:
    ctx = ctx_of(request)
    with ctx.session() as db:
        view = optouts.get_optout(ctx, db, optout_id)
        trail = optouts.history(ctx, db, optout_id) if who.can("audit.read") else None
    entries = None if trail is None else [
        {"at": e.at, "actor": e.actor, "action": e.action, "details": _details(e.details)}
        for e in trail]
    return render(request, "optout_detail.html", {
        "title": "Opt-out", "o": view, "trail": entries, "added": bool(added),
        "revoked": bool(revoked), "link": review.short_link(view.meeting or ""),
        "can_revoke": who.can("optouts.revoke")})


def _details(encoded: str) -> str:
    """An audit entry's details for reading: empty values left out, keyed hashes shortened
    (they only show that two entries name the same person or meeting)."""
    shown = []
    for key, value in json.loads(encoded or "{}").items():
        if value is None or value == "":
            continue
        text = str(value)
        if key.endswith(("_blind", "_key")) and len(text) > 16:
            text = text[:12] + "…"
        shown.append(f"{key.replace('_', ' ')}: {text}")
    return "; ".join(shown)


@router.get("/optouts/{optout_id}/revoke")
def revoke_page(request: Request, optout_id: str,
                who: Principal = Depends(allow("optouts.revoke"))) -> Response:
    ctx = ctx_of(request)
    with ctx.session() as db:
        view = optouts.get_optout(ctx, db, optout_id)
    return render(request, "optout_revoke.html", {"title": "Revoke the opt-out", "o": view,
                                                  "error": "", "reason": ""})


@router.post("/optouts/{optout_id}/revoke")
def revoke_submit(request: Request, optout_id: str,
                  who: Principal = Depends(allow("optouts.revoke", csrf=True)),
                  reason: str = Form("")) -> Response:
    """DPO and admin only: the reason records the person's own confirmation (who asked, when,
    how), since revoking lets their meetings be fetched and transcribed again."""
    ctx = ctx_of(request)
    reason = reason.strip()
    if not reason or len(reason) > 2000:
        with ctx.session() as db:
            view = optouts.get_optout(ctx, db, optout_id)
        return render(request, "optout_revoke.html", {
            "title": "Revoke the opt-out", "o": view, "reason": reason,
            "error": ("Record the person's own confirmation: who asked, when and how."
                      if not reason else f"Too long: {len(reason):,} characters, at most "
                      "2,000. Nothing was cut off.")}, status_code=422)
    with ctx.session() as db:
        optouts.revoke_optout(ctx, db, optout_id, actor=who.actor, reason=reason)
    log.info("opt-out revoked from the web form", extra={"optout_id": optout_id})
    return RedirectResponse(f"/optouts/{optout_id}?revoked=1", status_code=303)
