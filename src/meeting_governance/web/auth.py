"""Who is signed in, what each role may do, and the local-account sign-in pages.

Permissions are data (`PERMISSIONS`): every route names the one permission it needs through
`allow(...)`, and the role × route tests read the same table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meeting_governance import users
from meeting_governance.context import AppContext
from meeting_governance.web.security import (
    check_csrf,
    replace_session,
    safe_next,
    session_of,
)
from meeting_governance.web.sessions import LoginRateLimiter
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)

ALL_ROLES = frozenset(users.ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "optouts.read": ALL_ROLES,                       # list, search, detail
    "optouts.write": ALL_ROLES,                      # add, revoke, import
    "audit.read": frozenset({"dpo", "admin"}),       # an opt-out's audit trail
    "users.manage": frozenset({"admin"}),            # local accounts
    "dpo.desk": frozenset({"dpo", "admin"}),         # DPO pages: requests, export, erasure, holds, stats
    "signed_in": ALL_ROLES,                          # sign out, who am I
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of this request (the role is re-read from the database every time)."""

    user_id: int
    name: str
    display: str
    role: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    @property
    def actor(self) -> str:
        """How the audit log names this user."""
        return f"web:{self.name}"


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in page, the API answers 401."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this."""


def ctx_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _lookup(request: Request) -> Principal | None:
    session = session_of(request)
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    ctx = ctx_of(request)
    with ctx.session() as db:
        user = users.get_user(db, uid)
    # A disabled account, or a row that was replaced under the same id, ends the session.
    if user is None or not user.active or user.name != session.get("name"):
        return None
    return Principal(user_id=user.id, name=user.name, display=str(session.get("display") or user.name),
                     role=user.role)


def current_principal_cached(request: Request) -> Principal | None:
    """The principal a dependency already resolved for this request (no database access)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def allow(permission: str, *, csrf: bool = False) -> Any:
    """A dependency: the signed-in principal if its role has `permission`; checks the CSRF
    token too for state-changing routes (after sign-in, so anonymous callers learn nothing)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(request: Request) -> Principal:
        principal = await run_in_threadpool(_lookup, request)
        if principal is None:
            raise NotSignedIn()
        request.state.principal = principal
        if not principal.can(permission):
            raise Forbidden()
        if csrf:
            await check_csrf(request)
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route-table test
    return dependency


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(target), safe='')}", status_code=303)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def sign_in(request: Request, user: users.UserView, *, display: str | None = None) -> None:
    """A new session (new id, new CSRF token) for this user; the anonymous one is revoked."""
    replace_session(request, {"uid": user.id, "name": user.name, "display": display or user.name})


router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    settings = ctx_of(request).settings.web
    return render(request, "login.html", {"title": "Sign in", "next": safe_next(next),
                                          "entra_enabled": settings.entra_enabled,
                                          "name": "", "error": ""})


def _login(request: Request, name: str, password: str, next_path: str) -> Response:
    ctx = ctx_of(request)
    limiter: LoginRateLimiter = request.app.state.limiter
    client = client_address(request)
    context = {"title": "Sign in", "next": next_path, "name": name,
               "entra_enabled": ctx.settings.web.entra_enabled}
    wait = limiter.retry_after(name, client)
    if wait:
        log.warning("sign-in refused: too many attempts", extra={"retry_after_s": wait})
        minutes = max(1, round(wait / 60))
        return render(request, "login.html", {
            **context, "error": f"Too many failed sign-in attempts. Wait about {minutes} "
                                "minute(s), then try again."},
            status_code=429, headers={"Retry-After": str(wait)})
    with ctx.session() as db:
        user = users.authenticate(ctx, db, name, password)
        if user is not None:
            ctx.audit(db, "web.login", target_type="user", target_id=str(user.id),
                      actor=f"web:{user.name}", method="local")
    if user is None:
        limiter.failed(name, client)
        log.info("sign-in failed")
        return render(request, "login.html", {**context, "error": "Wrong user name or password."},
                      status_code=401)
    limiter.succeeded(name)
    sign_in(request, user)
    return RedirectResponse(next_path, status_code=303)


@router.post("/login")
async def login_submit(request: Request, name: str = Form("", max_length=200),
                       password: str = Form("", max_length=1024), next: str = Form("")) -> Response:
    await check_csrf(request)
    return await run_in_threadpool(_login, request, name, password, safe_next(next))


@router.post("/logout")
def logout(request: Request, who: Principal = Depends(allow("signed_in", csrf=True))) -> Response:
    """Sign out: needs the CSRF token (else any site could sign a user out)."""
    replace_session(request, {})
    return RedirectResponse("/login", status_code=303)
