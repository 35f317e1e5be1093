"""The JSON API under `/api/`: the same operations as the pages, for scripts.

Authentication is the same signed session cookie; every POST also needs the `X-CSRF-Token`
header (from `GET /api/session`), which a cross-site form cannot send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from meeting_governance import optouts
from meeting_governance.web.auth import Principal, allow, ctx_of
from meeting_governance.web.security import CSRF_HEADER, csrf_token

router = APIRouter(prefix="/api", tags=["opt-outs"])


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


class OptOutOut(BaseModel):
    id: str
    name: str | None
    email: str | None
    object_id: str | None
    scope: str
    meeting: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    covers_recording: bool
    covers_transcription: bool
    note: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    active: bool

    @staticmethod
    def of(view: optouts.OptOutView) -> OptOutOut:
        return OptOutOut(**{name: getattr(view, name) for name in OptOutOut.model_fields})


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class FieldProblem(BaseModel):
    field: str
    message: str


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


@router.get("/session", response_model=SessionOut)
def session_info(request: Request, who: Principal = Depends(allow("signed_in"))) -> SessionOut:
    """Who is signed in, and the CSRF token to send as `X-CSRF-Token` with every POST."""
    return SessionOut(name=who.name, display=who.display, role=who.role,
                      csrf_token=csrf_token(request))


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Principal = Depends(allow("signed_in"))) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/optouts", response_model=list[OptOutOut])
def list_(request: Request, search: str | None = Query(None, max_length=320),
          include_revoked: bool = True, limit: int = Query(200, ge=1, le=1000),
          offset: int = Query(0, ge=0, le=10_000_000),
          who: Principal = Depends(allow("optouts.read"))) -> list[OptOutOut]:
    ctx = ctx_of(request)
    with ctx.session() as db:
        rows = optouts.list_optouts(ctx, db, search=search or None, include_revoked=include_revoked,
                                    limit=limit, offset=offset)
    return [OptOutOut.of(v) for v in rows]


@router.post("/optouts", response_model=OptOutOut, status_code=201,
             responses={422: {"model": dict[str, list[FieldProblem]]}})
def add(request: Request, body: OptOutIn,
        who: Principal = Depends(allow("optouts.write", csrf=True))) -> Response | OptOutOut:
    req = optouts.OptOutRequest(**body.model_dump())
    problems = optouts.validate(req)
    if problems:
        return JSONResponse({"detail": [{"field": p.field, "message": p.message}
                                        for p in problems]}, status_code=422)
    ctx = ctx_of(request)
    with ctx.session() as db:
        view = optouts.add_optout(ctx, db, req, actor=who.actor)
    return OptOutOut.of(view)


@router.get("/optouts/{optout_id}", response_model=OptOutOut,
            responses={404: {"model": dict[str, str]}})
def get(request: Request, optout_id: str,
        who: Principal = Depends(allow("optouts.read"))) -> OptOutOut:
    ctx = ctx_of(request)
    with ctx.session() as db:
        return OptOutOut.of(optouts.get_optout(ctx, db, optout_id))


@router.post("/optouts/{optout_id}/revoke", response_model=OptOutOut,
             responses={404: {"model": dict[str, str]}})
def revoke(request: Request, optout_id: str, body: RevokeIn,
           who: Principal = Depends(allow("optouts.write", csrf=True))) -> OptOutOut:
    ctx = ctx_of(request)
    with ctx.session() as db:
        view = optouts.revoke_optout(ctx, db, optout_id, actor=who.actor, reason=body.reason)
    return OptOutOut.of(view)


@router.get("/optouts/{optout_id}/history", response_model=list[AuditOut],
            responses={404: {"model": dict[str, str]}})
def history(request: Request, optout_id: str,
            who: Principal = Depends(allow("audit.read"))) -> list[AuditOut]:
    """The opt-out's audit trail (DPO and admin only)."""
    ctx = ctx_of(request)
    with ctx.session() as db:
        optouts.get_optout(ctx, db, optout_id)
        return [AuditOut(at=e.at, actor=e.actor, action=e.action, details=e.details)
                for e in optouts.history(ctx, db, optout_id)]
