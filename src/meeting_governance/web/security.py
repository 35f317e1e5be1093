"""What every response and every request goes through: headers, body limit, session cookie,
CSRF check, and the one place that decides where a sign-in may send the browser next.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meeting_governance.web.sessions import COOKIE_NAME, SessionCodec, new_session

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


def session_of(request: Request) -> dict[str, Any]:
    session: dict[str, Any] = request.state.session
    return session


def csrf_token(request: Request) -> str:
    """The session's token for a form. A brand-new session is sent as a cookie with this
    response; an existing one is not re-signed, so its lifetime counts from sign-in (absolute,
    not extended by activity)."""
    if request.state.session_new:
        request.state.session_dirty = True
    return str(session_of(request)["csrf"])


def replace_session(request: Request, data: dict[str, Any]) -> None:
    """Swap the whole session (sign-in, sign-out): the old id is revoked, a new one issued."""
    codec: SessionCodec = request.app.state.codec
    codec.revoke(str(session_of(request)["sid"]))
    fresh = new_session()
    fresh.update(data)
    request.state.session = fresh
    request.state.session_dirty = True


async def check_csrf(request: Request) -> None:
    """The token from the header (API) or the form field must equal the session's."""
    expected = str(session_of(request)["csrf"])
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfError()


class SessionMiddleware:
    """Loads the signed session cookie into `request.state.session`; writes it back when changed.

    The cookie is HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS or the
    configured base URL is https.
    """

    def __init__(self, app: ASGIApp, *, codec: SessionCodec, force_secure: bool) -> None:
        self.app = app
        self.codec = codec
        self.force_secure = force_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        loaded = self.codec.loads(request.cookies.get(COOKIE_NAME))
        state = scope.setdefault("state", {})
        state["session"] = loaded if loaded is not None else new_session()
        state["session_new"] = loaded is None
        state["session_dirty"] = False
        secure = self.force_secure or scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("session_dirty"):
                headers = MutableHeaders(scope=message)
                value = self.codec.dumps(state["session"])
                cookie = (f"{COOKIE_NAME}={value}; Path=/; Max-Age={self.codec.max_age_s}; "
                          "HttpOnly; SameSite=Lax")
                headers.append("Set-Cookie", cookie + ("; Secure" if secure else ""))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


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
        super().__init__(413, f"the request is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuses request bodies over `limit` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"the request is larger than {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
