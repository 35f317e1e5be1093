"""The data protection officer's pages: the desk, the request log, legal holds and the
anonymised statistics (a person — what is held, export, erasure, withdrawal — is
`dpo_person.py`). A person hold covers every identifier the directory knows for them.

Routes are thin over `dsr`, `holds`, `stats`, `audit` and `receipts`; every decryption happens
(and is audited, with the request reference) in those modules. A person's address or object id
only ever travels in a POST body: it never appears in a URL, a redirect or a log line.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from markupsafe import Markup
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from meeting_governance import audit, dsr, holds, receipts, stats
from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError, InputError
from meeting_governance.models import PurgeReceipt
from meeting_governance.people import AmbiguousIdentity, PersonIdentity
from meeting_governance.web import lookups
from meeting_governance.web.auth import Principal, allow, ctx_of
from meeting_governance.web.review import graph_trouble
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
PERMISSION = "dpo.desk"
RECEIPTS_SHOWN = 5
WHO_MAX = 320  # the longest e-mail address; an object id is shorter
HOLD_KINDS = {"transcript": "One transcript (its id)", "person": "A person (e-mail or object id)",
              "meeting": "A meeting (its meeting id)"}


def _desk(permission: str = PERMISSION, *, csrf: bool = False) -> Any:
    return Depends(allow(permission, csrf=csrf))


# -- identities ---------------------------------------------------------------------------------
def identity(text: str) -> dict[str, str]:
    """One field, e-mail or object id (an '@' decides), validated by the data layer's rules."""
    text = text.strip()
    if not text:
        raise InputError("Enter the person's e-mail address or Entra object id.")
    if len(text) > WHO_MAX:
        raise InputError(f"Too long: at most {WHO_MAX} characters.")
    given = {"email": text} if "@" in text else {"object_id": text}
    who = dsr.subject(**given)  # raises InputError with what is wrong
    return {"email": who.email} if who.email else {"object_id": who.object_id or ""}


def _reference(text: str) -> str | None:
    text = text.strip()
    return dsr.check_reference(text) if text else None


# -- the desk -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiptRow:
    id: str
    created_at: datetime
    purged: int
    verified: bool
    problem: str


def _receipt_rows(ctx: AppContext, session: Session) -> list[ReceiptRow]:
    """The last receipts, each checked now against this installation's signing key and the
    digest recorded when it was written."""
    rows = session.exec(select(PurgeReceipt).order_by(col(PurgeReceipt.created_at).desc())
                        .limit(RECEIPTS_SHOWN)).all()
    key = ctx.keys.signing_key().public_key()
    out = []
    for row in rows:
        try:
            data = Path(row.path).read_bytes()
        except OSError:
            out.append(ReceiptRow(row.id, row.created_at, row.purged_count, False,
                                  "the receipt file is missing or unreadable"))
            continue
        check = receipts.verify_receipt(Path(row.path), key)
        problem = check.problem
        if check.ok and hashlib.sha256(data).hexdigest() != row.sha256:
            problem = "the file differs from the one written at purge time"
        out.append(ReceiptRow(row.id, row.created_at, row.purged_count, not problem, problem))
    return out


@router.get("/dpo")
def desk(request: Request, who: Principal = _desk()) -> Response:
    ctx = ctx_of(request)
    chain = audit.verify(ctx.engine)  # recomputed on every visit: nothing is cached
    with ctx.session() as session:
        open_requests = dsr.list_requests(ctx, session, open_only=True)
        receipt_rows = _receipt_rows(ctx, session)
    return render(request, "dpo_desk.html", {
        "title": "DPO desk", "requests": open_requests,
        "overdue": sum(1 for r in open_requests if r.overdue), "chain": chain,
        "receipts": receipt_rows})


# -- the request log ------------------------------------------------------------------------------
def _requests_page(request: Request, *, done: str = "", errors: dict[str, str] | None = None,
                   form: dict[str, str] | None = None, status: int = 200) -> Response:
    ctx = ctx_of(request)
    with ctx.session() as session:
        rows = dsr.list_requests(ctx, session)
    return render(request, "dpo_requests.html", {
        "title": "Requests", "rows": rows, "done": done, "errors": errors or {},
        "form_errors": {k: v for k, v in (errors or {}).items() if k != "close"},
        "form": form or {"kind": "access", "who": "", "received": "", "reference": ""},
        "kinds": dsr.KINDS, "due_days": ctx.settings.dsr.due_days}, status_code=status)


@router.get("/dpo/requests")
def requests_page(request: Request, done: str = "", ref: str = "",
                  who: Principal = _desk()) -> Response:
    message = ""
    if done in ("opened", "closed") and ref:
        message = f"Request {dsr.check_reference(ref)} was {done}."
    return _requests_page(request, done=message)


@router.post("/dpo/requests")
def requests_open(request: Request, principal: Principal = _desk(csrf=True),
                  kind: str = Form(""), who: str = Form("", max_length=4000),
                  received: str = Form("", max_length=10),
                  reference: str = Form("", max_length=100)) -> Response:
    """Log a request as it arrived (by mail, by phone): due `dsr.due_days` after receipt."""
    ctx = ctx_of(request)
    form = {"kind": kind, "who": who, "received": received, "reference": reference}
    errors: dict[str, str] = {}
    ident: dict[str, str] = {}
    received_at: datetime | None = None
    if kind not in dsr.KINDS:
        errors["kind"] = "Choose the kind of request."
    try:
        ident = identity(who)
    except InputError as exc:
        errors["who"] = str(exc)
    if received.strip():
        try:
            day = date.fromisoformat(received.strip())
            received_at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        except ValueError:
            errors["received"] = "Enter the day as YYYY-MM-DD."
    if not errors:
        try:
            with ctx.session() as session:
                row = dsr.open_request(ctx, session, kind, **ident,
                                       reference=_reference(reference),
                                       received_at=received_at, actor=principal.actor)
                ref = row.reference
        except InputError as exc:
            field = "reference" if "reference" in str(exc) or "log" in str(exc) else "received"
            errors[field] = str(exc)
    if errors:
        return _requests_page(request, errors=errors, form=form, status=422)
    return RedirectResponse(f"/dpo/requests?done=opened&ref={ref}", status_code=303)


@router.post("/dpo/requests/{reference}/close")
def requests_close(request: Request, reference: str, principal: Principal = _desk(csrf=True),
                   status: str = Form("closed")) -> Response:
    ctx = ctx_of(request)
    ref = dsr.check_reference(reference)
    try:
        with ctx.session() as session:
            dsr.close_request(ctx, session, ref, actor=principal.actor, status=status)
    except InputError as exc:
        return _requests_page(request, errors={"close": str(exc)}, status=422)
    return RedirectResponse(f"/dpo/requests?done=closed&ref={ref}", status_code=303)


# -- legal holds ---------------------------------------------------------------------------------
def _holds_page(request: Request, *, done: str = "", errors: dict[str, str] | None = None,
                form: dict[str, str] | None = None, status: int = 200,
                offer_only_given: bool = False) -> Response:
    ctx = ctx_of(request)
    rows = holds.list_holds(ctx, include_released=True)  # reasons stay sealed on this page
    return render(request, "dpo_holds.html", {
        "title": "Legal holds", "rows": rows, "done": done, "errors": errors or {},
        "form_errors": {k: v for k, v in (errors or {}).items() if not k.startswith("release")},
        "form": form or {"kind": "transcript", "target": "", "reason": ""},
        "kinds": HOLD_KINDS, "offer_only_given": offer_only_given}, status_code=status)


@router.get("/dpo/holds")
def holds_page(request: Request, done: str = "", who: Principal = _desk()) -> Response:
    return _holds_page(request, done={"set": "The hold was set.",
                                      "released": "The hold was released."}.get(done, ""))


@router.post("/dpo/holds")
def holds_set(request: Request, principal: Principal = _desk(csrf=True),
              kind: str = Form(""), target: str = Form("", max_length=4000),
              reason: str = Form("", max_length=4000),
              only_given: bool = Form(False)) -> Response:
    """A person hold covers every identifier the directory knows for the person (as `hold set
    --email`); when the directory cannot be read, only if the DPO chooses the identity given."""
    ctx = ctx_of(request)
    form = {"kind": kind, "target": target, "reason": reason}
    errors: dict[str, str] = {}
    offer_only_given = False
    if kind not in HOLD_KINDS:
        errors["kind"] = "Choose what to hold."
    if not target.strip():
        errors["target"] = "Say which transcript, person or meeting."
    if not reason.strip() or len(reason) > 2000:
        errors["reason"] = "Give the reason (at most 2000 characters); it is kept sealed."
    if not errors:
        try:
            person: PersonIdentity | None = None
            if kind == "person":
                args = identity(target)
                person = lookups.person_lookup(ctx, request.app.state.graph,
                                               email=args.get("email"),
                                               object_id=args.get("object_id"),
                                               only_given=only_given)
            else:
                args = {"transcript_id" if kind == "transcript" else "meeting_id": target.strip()}
            holds.set_hold(ctx, person, reason=reason.strip(), actor=principal.actor, **args)
        except AmbiguousIdentity as exc:
            errors["target"] = (f"This address belongs to {exc.accounts} accounts in the "
                                "directory. Enter the person's Entra object id instead.")
        except InputError as exc:
            errors["target"] = str(exc)
        except GraphError as exc:
            offer_only_given = True
            errors["target"] = (f"{graph_trouble(exc)}, so the person's other addresses could "
                                "not be found. Try again later, or tick \"Hold by this identity "
                                "only\" (their other addresses are then not covered).")
    if errors:
        return _holds_page(request, errors=errors, form=form, status=422,
                           offer_only_given=offer_only_given)
    return RedirectResponse("/dpo/holds?done=set", status_code=303)


@router.post("/dpo/holds/{hold_id}/release")
def holds_release(request: Request, hold_id: str, principal: Principal = _desk(csrf=True),
                  reason: str = Form("", max_length=4000)) -> Response:
    ctx = ctx_of(request)
    if not reason.strip() or len(reason) > 2000:
        return _holds_page(request, errors={f"release-{hold_id}": "Say why the hold is released "
                                            "(at most 2000 characters)."}, status=422)
    try:
        holds.release_hold(ctx, hold_id, reason=reason.strip(), actor=principal.actor)
    except InputError as exc:
        return _holds_page(request, errors={"release": str(exc)}, status=422)
    return RedirectResponse("/dpo/holds?done=released", status_code=303)


# -- statistics -----------------------------------------------------------------------------------
@router.get("/dpo/stats")
def stats_page(request: Request, who: Principal = _desk()) -> Response:
    ctx = ctx_of(request)
    rows = stats.statistics(ctx)
    # svg_chart escapes every text it writes; the SVG is the server's own markup.
    chart = Markup(stats.svg_chart(rows, title="Meetings by month"))  # noqa: S704
    return render(request, "dpo_stats.html", {
        "title": "Statistics", "rows": rows, "chart": chart, "columns": stats.COUNTS,
        "labels": stats.LABELS, "min_cell": rows[0].min_cell if rows
        else ctx.settings.stats.min_cell})
