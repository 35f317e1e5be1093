"""The JSON API under `/api/`: the same operations as the pages, for scripts (the review step
before saving, `POST /api/optouts/review`, is `api_review.py`).

Authentication is the same session cookie as the pages (sign in at /login); every POST also
needs the `X-CSRF-Token` header (from `GET /api/session`), which a cross-site form cannot send.
Errors have two shapes only, both in the schema: `{"detail": "text"}` (401, 403, 404, 409, 413)
and `{"detail": [{"field", "message"}, ...]}` (422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_type_hints

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.responses import JSONResponse, Response

from meeting_governance import optouts
from meeting_governance.errors import InputError
from meeting_governance.optouts.views import COMPUTED, FIELDS, OptOutView
from meeting_governance.web import lookups, review_step
from meeting_governance.web.auth import Principal, allow, ctx_of
from meeting_governance.web.reviewed import MAX_TOKEN_CHARS, REVIEW_MAX_AGE_S
from meeting_governance.web.security import CSRF_HEADER, csrf_token
from meeting_governance.web.sessions import COOKIE_NAME

DESCRIPTION = ("Opt-out registry API. Sign in at /login (a browser session); send the session "
               f"cookie `{COOKIE_NAME}` with every request, and with every POST the header "
               f"`{CSRF_HEADER}` whose value GET /api/session returns.")


class OptOutIn(BaseModel):
    """A new opt-out: an e-mail and/or an Entra object id; a meeting, a date range, or neither
    (all meetings)."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, max_length=320)
    object_id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=200)
    meeting: str | None = Field(None, max_length=4000,
                                description="A meeting id or the meeting's Teams join link")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    covers_recording: bool = True
    covers_transcription: bool = True
    note: str | None = Field(None, max_length=2000)
    review_token: str | None = Field(None, max_length=MAX_TOKEN_CHARS, description=(
        "From POST /api/optouts/review with the same body: saves exactly what was reviewed "
        "(the directory's answer for the person included). Without it, the directory is "
        "asked now, as `optout add --yes` does."))


def _optout_out() -> type[BaseModel]:
    """The schema of `OptOutView.to_json()`, built from the dataclass: the API, `optout list
    --json` and the pages show one record, so a field added there appears here too."""
    hints = get_type_hints(OptOutView)
    columns: dict[str, Any] = {name: (hints[name], ...) for name in FIELDS}
    columns.update({name: (kind, ...) for name, kind in COMPUTED.items()})
    model: type[BaseModel] = create_model(
        "OptOutOut", __doc__="One opt-out, decrypted (`summary` says what it blocks).", **columns)
    return model


OptOutOut = _optout_out()
OptOutList: Any = list[OptOutOut]  # type: ignore[valid-type]  # built at run time
Out = dict[str, Any]  # what a handler returns: `OptOutView.to_json()`, checked against OptOutOut


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class FieldProblem(BaseModel):
    """One problem with one field of the request (`field` is empty for the request as a whole)."""

    field: str
    message: str


class Problem(BaseModel):
    """Every error but a validation error: what went wrong and what to do, in a sentence."""

    detail: str


class ValidationProblem(BaseModel):
    """422: the request was understood but some fields are not acceptable."""

    detail: list[FieldProblem]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route can give, with the shapes the handlers really return."""
    text = {401: "Not signed in, or the session ended (sign in at /login).",
            403: "Signed in, but the role does not allow this, or the CSRF header is missing "
                 "or wrong.",
            404: "No such opt-out.", 409: "The opt-out is already revoked.",
            413: "The request body is larger than the site accepts.",
            422: "Some fields are not acceptable; each problem names its field."}
    return {status: {"model": ValidationProblem if status == 422 else Problem,
                     "description": text[status]} for status in statuses}


# Each route declares exactly the errors it can give (the schema test provokes every one):
# every route needs a session (401); a POST needs the CSRF header (403), has a body that can be
# too large (413) or invalid (422).
WRITE = _errors(401, 403, 413, 422)

# Operation ids are the handlers' names: what a generated client's functions are called.
router = APIRouter(prefix="/api", tags=["opt-outs"],
                   generate_unique_id_function=lambda route: route.name)


class SessionOut(BaseModel):
    name: str
    display: str
    role: str
    csrf_token: str
    csrf_header: str = CSRF_HEADER


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    details: str


@router.get("/session", response_model=SessionOut, responses=_errors(401))
def session_info(request: Request, who: Principal = Depends(allow("signed_in"))) -> SessionOut:
    """Who is signed in, and the CSRF token to send as `X-CSRF-Token` with every POST."""
    return SessionOut(name=who.name, display=who.display, role=who.role,
                      csrf_token=csrf_token(request))


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Principal = Depends(allow("signed_in"))) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/optouts", response_model=OptOutList, responses=_errors(401, 422))
def list_optouts(request: Request, include_revoked: bool = True,
          limit: int = Query(200, ge=1, le=1000), offset: int = Query(0, ge=0, le=10_000_000),
          who: Principal = Depends(allow("optouts.read"))) -> list[Out]:
    """Every opt-out, newest first. To find a person's, POST /api/optouts/search (a name or
    an address never goes into a URL, where proxies and logs would keep it)."""
    ctx = ctx_of(request)
    with ctx.session() as db:
        rows = optouts.list_optouts(ctx, db, include_revoked=include_revoked, limit=limit,
                                    offset=offset)
    return [v.to_json() for v in rows]


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search: str = Field(min_length=1, max_length=320, description=(
        "Exact only: a whole e-mail address, Entra object id, name or opt-out id (case and "
        "spaces ignored). Part of a name or address, another spelling or another address of "
        "the same person finds nothing: the registry stores keyed hashes, not the values. "
        "An empty result does not mean the person has no opt-out."))
    include_revoked: bool = True


@router.post("/optouts/search", response_model=OptOutList, responses=WRITE)
def search_optouts(request: Request, body: SearchIn,
           who: Principal = Depends(allow("optouts.read", csrf=True))) -> list[Out]:
    """A person's opt-outs, by exact e-mail address, object id, name or opt-out id."""
    ctx = ctx_of(request)
    with ctx.session() as db:
        rows = optouts.list_optouts(ctx, db, search=body.search,
                                    include_revoked=body.include_revoked, limit=1000)
    return [v.to_json() for v in rows]


@router.post("/optouts", response_model=OptOutOut, status_code=201, responses=WRITE)
def add_optout(request: Request, body: OptOutIn,
        who: Principal = Depends(allow("optouts.write", csrf=True))) -> Response | Out:
    """Save an opt-out. It matches every identifier the directory knows for the person: the
    answer reviewed (`review_token`), else the directory's answer now (within
    `web.graph_timeout_s`; when it cannot be asked, the identifier given until it answers)."""
    req = optouts.OptOutRequest(**body.model_dump(exclude={"review_token"}))
    problems = optouts.validate(req)
    if problems:
        return _invalid([FieldProblem(field=p.field, message=p.message) for p in problems])
    ctx = ctx_of(request)
    if body.review_token:
        checked = review_step.reviewed(request, req, body.review_token)
        if checked is None:
            return _invalid([FieldProblem(field="review_token", message=(
                f"not a review of this opt-out in this session from the last "
                f"{REVIEW_MAX_AGE_S // 60} minutes; POST /api/optouts/review again"))])
        registration = checked.registration
    else:
        email, object_id = optouts.cleaned_identity(req)
        registration = lookups.person_check(lookups.start_person_check(
            ctx, request.app.state.graph, email=email, object_id=object_id)).registration
    with ctx.session() as db:
        view = optouts.add_optout(ctx, db, req, actor=who.actor, registration=registration)
    return view.to_json()


def _invalid(problems: list[FieldProblem]) -> Response:
    return JSONResponse(ValidationProblem(detail=problems).model_dump(), status_code=422)


@router.get("/optouts/{optout_id}", response_model=OptOutOut,
            responses=_errors(401, 404))
def get_optout(request: Request, optout_id: str,
        who: Principal = Depends(allow("optouts.read"))) -> Out:
    ctx = ctx_of(request)
    with ctx.session() as db:
        return optouts.get_optout(ctx, db, optout_id).to_json()


@router.post("/optouts/{optout_id}/revoke", response_model=OptOutOut,
             responses={**WRITE, **_errors(404, 409)})
def revoke_optout(request: Request, optout_id: str, body: RevokeIn,
           who: Principal = Depends(allow("optouts.revoke", csrf=True))) -> Response | Out:
    """DPO and admin only: revoking lets recording and transcription of the person start
    again. `reason` should record the person's own confirmation (who, when, how)."""
    ctx = ctx_of(request)
    try:
        with ctx.session() as db:
            view = optouts.revoke_optout(ctx, db, optout_id, actor=who.actor, reason=body.reason)
    except InputError as exc:  # already revoked
        return JSONResponse(Problem(detail=str(exc)).model_dump(), status_code=409)
    return view.to_json()


@router.get("/optouts/{optout_id}/history", response_model=list[AuditOut],
            responses=_errors(401, 403, 404))
def optout_history(request: Request, optout_id: str,
            who: Principal = Depends(allow("audit.read"))) -> list[AuditOut]:
    """The opt-out's audit trail (DPO and admin only)."""
    ctx = ctx_of(request)
    with ctx.session() as db:
        optouts.get_optout(ctx, db, optout_id)
        return [AuditOut(at=e.at, actor=e.actor, action=e.action, details=e.details)
                for e in optouts.history(ctx, db, optout_id)]


SECURITY_SCHEMES = {
    "session": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
                "description": "The session cookie set at sign-in (/login)."},
    "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER,
             "description": "The `csrf_token` of GET /api/session; every POST needs it."},
}


def install_openapi(app: Any) -> None:
    """The schema FastAPI builds, plus the two security schemes as they really work: every
    operation needs the cookie, and a POST the cookie *and* the header (one requirement)."""
    from fastapi.openapi.utils import get_openapi

    def openapi_schema() -> dict[str, Any]:
        if app.openapi_schema:
            return dict(app.openapi_schema)
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                operation["security"] = ([{"session": [], "csrf": []}] if method == "post"
                                         else [{"session": []}])
                # FastAPI adds its own 422 (a shape this app never returns) to every route
                # with parameters that did not declare one; such routes cannot give a 422.
                default = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(default):
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi_schema
