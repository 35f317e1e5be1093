"""What every response and every request goes through: headers, body limit, session cookies,
CSRF check, and the one place that decides where a sign-in may send the browser next.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from math import ceil
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meeting_governance.web.sessions import (
    COOKIE_NAME,
    PRE_COOKIE_NAME,
    PreSessionCodec,
    SessionStore,
    SignedIn,
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                                "base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_AFTER_LOGIN = "/optouts"


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token."""


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in; anything that could leave the site becomes the list.

    Refuses scheme-relative (`//evil`), backslash (`/\\evil`, which browsers read as `//`),
    absolute URLs and control characters.
    """
    if not target or len(target) > 2000 or not target.startswith("/"):
        return DEFAULT_AFTER_LOGIN
    if target.startswith(("//", "/\\")) or any(ord(c) < 0x21 or c == "\\" for c in target):
        return DEFAULT_AFTER_LOGIN
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_AFTER_LOGIN
    return target


def signed_in(request: Request) -> SignedIn | None:
    """This request's signed-in session (loaded by the middleware), or None."""
    session: SignedIn | None = request.state.signed_in
    return session


def pre_session(request: Request) -> dict[str, Any]:
    """The pre-sign-in cookie's contents (login CSRF token, an Entra ID flow in progress)."""
    pre: dict[str, Any] = request.state.pre
    return pre


def pre_session_changed(request: Request) -> None:
    """Send the pre-sign-in cookie again with this response (its contents changed)."""
    request.state.pre_dirty = True


def csrf_token(request: Request) -> str:
    """The token a form must send back: the signed-in session's, else the pre-session's (a
    brand-new pre-session is sent as a cookie with this response)."""
    session = signed_in(request)
    if session is not None:
        return session.csrf
    if request.state.pre_new:
        request.state.pre_dirty = True
    return str(pre_session(request)["csrf"])


def start_session(request: Request, token: str, session: SignedIn) -> None:
    """Sign-in happened: this response sets the new session cookie and drops the pre-session."""
    request.state.signed_in = session
    request.state.new_session_token = token


def end_session(request: Request) -> None:
    """Sign out: the row is deleted (every process refuses the cookie from now on) and the
    browser is told to forget the cookie."""
    store: SessionStore = request.app.state.sessions
    store.end(request.state.session_token)
    request.state.signed_in = None
    request.state.session_token = None
    request.state.end_session_cookie = True


async def check_csrf(request: Request) -> None:
    """The token from the header (API) or the form field must equal the session's."""
    expected = csrf_token(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfError()


def _cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    return (f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
            + ("; Secure" if secure else ""))


class SessionMiddleware:
    """Loads the signed-in session (database) and the pre-sign-in cookie into `request.state`,
    and writes cookies back only when something changed: the session cookie at sign-in (its
    Max-Age is the absolute lifetime left) and never again, so no request can extend it.

    Cookies are HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS or the
    configured base URL is https.
    """

    def __init__(self, app: ASGIApp, *, store: SessionStore, pre: PreSessionCodec,
                 force_secure: bool) -> None:
        self.app = app
        self.store = store
        self.pre = pre
        self.force_secure = force_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = str(scope.get("path", ""))
        token = request.cookies.get(COOKIE_NAME)
        loaded = None
        checked = bool(token) and not path.startswith("/static/") and path != "/healthz"
        if checked:
            loaded = await run_in_threadpool(self.store.load, token)
        now = self.store.ctx.clock.now()
        pre = self.pre.loads(request.cookies.get(PRE_COOKIE_NAME), now)
        state = scope.setdefault("state", {})
        state.update(signed_in=loaded, session_token=token if loaded else None,
                     pre=pre if pre is not None else self.pre.new(now), pre_new=pre is None,
                     pre_dirty=False, new_session_token=None,
                     end_session_cookie=checked and loaded is None)
        secure = self.force_secure or scope.get("scheme") == "https"

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                new_token = state.get("new_session_token")
                if new_token:
                    session = state["signed_in"]
                    headers.append("Set-Cookie", _cookie(COOKIE_NAME, new_token,
                                                         self.store.remaining(session), secure))
                    headers.append("Set-Cookie", _cookie(PRE_COOKIE_NAME, "", 0, secure))
                else:
                    if state.get("end_session_cookie"):
                        headers.append("Set-Cookie", _cookie(COOKIE_NAME, "", 0, secure))
                    if state.get("pre_dirty"):
                        value = self.pre.dumps(state["pre"], self.store.ctx.clock.now())
                        headers.append("Set-Cookie", _cookie(PRE_COOKIE_NAME, value,
                                                             self.pre.max_age_s, secure))
            await send(message)

        await self.app(scope, receive, send_with_cookies)


class SecurityHeadersMiddleware:
    """The same headers on every response, errors and static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(HTTPException):
    """An HTTPException, so a handler reading the body turns it into the 413 and not a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class BodyLimitMiddleware:
    """Refuses request bodies over `limit` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, *, limit: int, shown_limit: int | None = None,
                 page: Callable[[int, str], bytes] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.shown_limit = shown_limit or limit  # what people are told (without form framing)
        self.page = page  # renders the site's own error page (status, message) for browsers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.shown_limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = too_large_message(self.shown_limit)
        if self.page is not None and not str(scope.get("path", "")).startswith("/api/"):
            body, kind = self.page(413, message), b"text/html; charset=utf-8"
        else:
            body, kind = json.dumps({"detail": message}).encode(), b"application/json"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", kind),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def too_large_message(limit: int) -> str:
    """What a refused upload is told: the limit in units people read, and what to do."""
    size = f"{limit / 1024 / 1024:.1f} MB" if limit >= 1024 * 1024 else f"{ceil(limit / 1024)} KB"
    return (f"Too large: this site accepts at most {size} in one request. "
            "Split a CSV file into smaller files and import them one after the other.")
