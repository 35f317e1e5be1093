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
    end_session,
    safe_next,
    signed_in,
    start_session,
)
from meeting_governance.web.sessions import SessionStore
from meeting_governance.web.templating import render
from meeting_governance.web.throttle import LoginThrottle

log = logging.getLogger(__name__)

ALL_ROLES = frozenset(users.ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "optouts.read": ALL_ROLES,                       # list, search, detail
    "optouts.write": ALL_ROLES,                      # add, import (can only block more)
    # Revoking lets recording and transcription of a person start again: not a coordinator's
    # call alone (SECURITY.md). The DPO records the person's confirmation as the reason.
    "optouts.revoke": frozenset({"dpo", "admin"}),
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


def _principal(request: Request) -> Principal | None:
    session = signed_in(request)
    if session is None:
        return None
    return Principal(user_id=session.user_id, name=session.name, display=session.display,
                     role=session.role)


def current_principal_cached(request: Request) -> Principal | None:
    """Who is signed in on this request (the middleware already read it; no database access)."""
    return _principal(request) if hasattr(request.state, "signed_in") else None


def allow(permission: str, *, csrf: bool = False) -> Any:
    """A dependency: the signed-in principal if its role has `permission`; checks the CSRF
    token too for state-changing routes (after sign-in, so anonymous callers learn nothing)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(request: Request) -> Principal:
        principal = _principal(request)
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
    """The peer's address; a proxy's X-Forwarded-For was already applied to it by uvicorn's
    ProxyHeadersMiddleware, and only when the peer is in `web.trusted_proxies`."""
    return request.client.host if request.client else "unknown"


def sign_in(request: Request, user: users.UserView, *, method: str,
            display: str | None = None) -> None:
    """A new server-side session (new token, new CSRF token) for this user, audited. The
    session this browser had before, if any, ends: a cookie planted earlier never becomes a
    signed-in one (no fixation)."""
    ctx = ctx_of(request)
    store: SessionStore = request.app.state.sessions
    if signed_in(request) is not None:
        end_session(request)
    token, session = store.create(user.id, method=method, display=display)
    with ctx.session() as db:
        ctx.audit(db, "web.login", target_type="user", target_id=str(user.id),
                  actor=f"web:{user.name}", method=method, session_ref=session.session_id[:12])
    start_session(request, token, session)


router = APIRouter(include_in_schema=False)


def login_page_response(request: Request, *, next_path: str, name: str = "", error: str = "",
                        notice: str = "", status_code: int = 200,
                        headers: dict[str, str] | None = None) -> Response:
    """The sign-in page (also for Entra ID's refusals): the cursor starts in the user-name
    field, or on the error when there is one."""
    settings = ctx_of(request).settings.web
    return render(request, "login.html", {"title": "Sign in", "next": next_path,
                                          "entra_enabled": settings.entra_enabled,
                                          "name": name, "error": error, "notice": notice},
                  status_code=status_code, headers=headers)



@router.get("/login")
def login_page(request: Request, next: str = "", signed_out: int = 0) -> Response:
    return login_page_response(request, next_path=safe_next(next),
                       notice="You are signed out." if signed_out else "")


def _login(request: Request, name: str, password: str, next_path: str) -> Response:
    throttle: LoginThrottle = request.app.state.throttle
    reservation = throttle.reserve(name, client_address(request))
    if isinstance(reservation, int):
        log.warning("sign-in refused: too many attempts", extra={"retry_after_s": reservation})
        minutes = max(1, round(reservation / 60))
        return login_page_response(request, next_path=next_path, name=name, status_code=429,
                           headers={"Retry-After": str(reservation)},
                           error=f"Too many failed sign-in attempts. Wait about {minutes} "
                                 "minute(s), then try again.")
    user = users.authenticate(ctx_of(request), name, password)
    if user is None:
        log.info("sign-in failed")
        return login_page_response(request, next_path=next_path, name=name, status_code=401,
                           error="Wrong user name or password.")
    throttle.succeeded(reservation)
    sign_in(request, user, method="local")
    return RedirectResponse(next_path, status_code=303)


@router.post("/login")
async def login_submit(request: Request, name: str = Form("", max_length=200),
                       password: str = Form("", max_length=1024), next: str = Form("")) -> Response:
    await check_csrf(request)
    return await run_in_threadpool(_login, request, name, password, safe_next(next))


@router.post("/logout")
def logout(request: Request, who: Principal = Depends(allow("signed_in", csrf=True))) -> Response:
    """Sign out: needs the CSRF token (else any site could sign a user out). The session row is
    deleted, so the cookie is refused by every `serve` process from now on, restarts included."""
    end_session(request)
    with ctx_of(request).session() as db:
        ctx_of(request).audit(db, "web.logout", target_type="user", target_id=str(who.user_id),
                              actor=who.actor)
    return RedirectResponse("/login?signed_out=1", status_code=303)
