"""`create_app(ctx)`: the coordinator opt-out form, the admin pages and the JSON API.

Server-rendered pages that work without JavaScript. Every route but `/healthz`, the sign-in
pages and `/static` needs a signed-in user; every POST needs the session's CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError, UsageError
from meeting_governance.web import admin, api, api_review, auth, dpo, dpo_person, dpo_speakers, entra, pages
from meeting_governance.web.lookups import GraphMeetingResolver, PageGraph
from meeting_governance.web.reviewed import ReviewSeal
from meeting_governance.web.security import (
    BodyLimitMiddleware,
    CsrfError,
    SecurityHeadersMiddleware,
    SessionMiddleware,
)
from meeting_governance.web.sessions import PreSessionCodec, SessionStore
from meeting_governance.web.templating import STATIC_DIR, make_templates, render
from meeting_governance.web.throttle import LoginThrottle

log = logging.getLogger(__name__)

# Paths a visitor may open without signing in (the route-table test checks the rest).
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/login/entra", entra.CALLBACK_PATH})
# Multipart framing around an uploaded CSV of `max_upload_bytes`.
_FORM_OVERHEAD = 64 * 1024
# How `serve` runs uvicorn (the test suite's servers use the same). No access log: request
# lines would be a log of who used the site when. No proxy headers: the app believes
# X-Forwarded-* only from `web.trusted_proxies` (uvicorn's own default trusts 127.0.0.1).
UVICORN_OPTIONS: dict[str, Any] = {"access_log": False, "proxy_headers": False,
                                   "server_header": False}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str, *, title: str = "") -> Response:
    """The API's `{"detail": text}` (422: a list of field problems, as the schema says), or
    the site's own error page."""
    if _wants_json(request):
        detail: Any = [{"field": "", "message": message}] if status == 422 else message
        return JSONResponse({"detail": detail}, status_code=status)
    return render(request, "error.html", {"title": title or message.split(".")[0].split(":")[0],
                                          "message": message, "status": status},
                  status_code=status)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(auth.NotSignedIn)
    async def not_signed_in(request: Request, exc: auth.NotSignedIn) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "sign in first"}, status_code=401,
                                headers={"WWW-Authenticate": "Cookie"})
        return auth.login_redirect(request)

    @app.exception_handler(auth.Forbidden)
    async def forbidden(request: Request, exc: auth.Forbidden) -> Response:
        return _error(request, 403, "Your role does not allow this page or action.")

    @app.exception_handler(CsrfError)
    async def csrf(request: Request, exc: CsrfError) -> Response:
        return _error(request, 403, "This form has expired or did not come from this site. "
                                    "Go back, reload the page and try again.")

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return _error(request, 404, "Not found. It may have been mistyped, or it was removed.")

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        return _error(request, 422, str(exc))

    # An id in the address that names no one record (blank, or a prefix of several: see
    # meeting_governance.ids) is the request's fault, not a server error. An unknown id is a
    # NotFoundError too, and stays 404 (the handler above comes first in its class order).
    @app.exception_handler(UsageError)
    async def bad_usage(request: Request, exc: UsageError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            fields = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]),
                       "message": str(e.get("msg", "invalid"))} for e in exc.errors()]
            return JSONResponse({"detail": fields}, status_code=422)
        return _error(request, 422, "The request was not understood. Go back and check the form.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Not found. The address may have been mistyped, or the page moved.",
                    405: "This method is not allowed here."}
        return _error(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))


def _error_page(templates: Any) -> Any:
    """The site's own error page for middleware that answers before any route (no session)."""
    def page(status: int, message: str) -> bytes:
        template = templates.env.get_template("error.html")
        html: str = template.render(principal=None, csrf_token="", page_errors=[],
                                    title=message.split(":")[0].split(".")[0], message=message,
                                    status=status)
        return html.encode("utf-8")
    return page


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown the pages' Graph client closes; look-ups still waiting are dropped."""
    yield
    app.state.graph.close()


def create_app(app_ctx: AppContext) -> FastAPI:
    """The web app over one AppContext (its database, keys and clock)."""
    from meeting_governance.users import dummy_hash

    dummy_hash()  # made now: the first sign-in with an unknown name takes as long as any
    settings = app_ctx.settings
    web = settings.web
    app = FastAPI(title="Meeting Governance", version="1", docs_url=None, redoc_url=None,
                  lifespan=_lifespan,
                  redirect_slashes=False,  # one URL per page: `/optouts/` is a 404, not a hop
                  openapi_url=None,  # served by api.py, behind sign-in
                  description=api.DESCRIPTION)
    app.state.ctx = app_ctx
    app.state.templates = make_templates()
    app.state.sessions = SessionStore(app_ctx, max_age=timedelta(hours=web.session_max_age_hours),
                                      idle=timedelta(minutes=web.session_idle_minutes))
    app.state.throttle = LoginThrottle(app_ctx, max_attempts=web.login_max_attempts,
                                       window_s=web.login_window_seconds)
    app.state.entra = entra.EntraSignIn(settings) if web.entra_enabled else None
    # One Graph client per process for the pages (whom an address reaches, which meeting a
    # link names, a data subject's identifiers), each answer within web.graph_timeout_s.
    app.state.graph = PageGraph(settings)
    app.state.meeting_resolver = GraphMeetingResolver(app.state.graph)
    app.state.review_seal = ReviewSeal(app_ctx.keys.session_secret())

    app.include_router(auth.router)
    app.include_router(entra.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(dpo.router)
    app.include_router(dpo_person.router)
    app.include_router(dpo_speakers.router)
    app.include_router(api.router)
    app.include_router(api_review.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        """For load balancers: ok when this server can serve — its database answers and its
        keyring opens — else 503 saying which (the daemon's `/healthz` is the one that says
        whether recordings are processed). Public: no host, path or error text in the body."""
        from meeting_governance.health import serving

        problems = serving(app_ctx)
        if problems:
            return JSONResponse({"status": "degraded", "reasons": problems}, status_code=503)
        return JSONResponse({"status": "ok"})

    _install_handlers(app)
    api.install_openapi(app)
    # Added innermost first: headers wrap everything, even a 413 from the body limit; the
    # proxy headers are applied before anything reads the client address or the scheme.
    app.add_middleware(SessionMiddleware, store=app.state.sessions,
                       pre=PreSessionCodec(app_ctx.keys.session_secret()),
                       force_secure=web.base_url.lower().startswith("https://"))
    app.add_middleware(BodyLimitMiddleware, limit=web.max_upload_bytes + _FORM_OVERHEAD,
                       shown_limit=web.max_upload_bytes, page=_error_page(app.state.templates))
    app.add_middleware(SecurityHeadersMiddleware)
    if web.trusted_proxies:
        # uvicorn's own implementation: X-Forwarded-For/-Proto only from these peers, and the
        # client is the right-most address that is not itself a trusted proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(web.trusted_proxies))
    return app
