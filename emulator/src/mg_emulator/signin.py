"""The interactive half of the emulator's authority: `/authorize`, its sign-in page, and the
authorisation-code and refresh-token grants behind the token endpoint.

It follows Entra ID's v2.0 endpoints closely enough that msal's auth-code flow runs unchanged:

- `GET /{tenant}/oauth2/v2.0/authorize` checks the client id and that `redirect_uri` is
  registered for it (`Scenario.redirect_uris`; loopback ports are ignored, as Entra does).
  Those two failures show an error page and never redirect. Every later problem goes back to
  the registered redirect URI as `?error=…&error_description=AADSTS…&state=…`.
- The sign-in page is a plain HTML form (no script) that POSTs to `/{tenant}/login`; a wrong
  password shows the page again, Cancel answers `error=access_denied`, success answers
  `302 redirect_uri?code=…&state=…`.
- Codes are single use and short-lived, bound to the client, the redirect URI and the PKCE
  challenge (S256 or plain). The id_token is RS256-signed with a key published at the
  discovery document's `jwks_uri`; the access token is opaque and not accepted by the
  emulated Graph (the app only calls Graph with application permissions).

There is no single sign-on session: every `/authorize` shows the form (`prompt=none` answers
`login_required`).

Test hook: set `SignIn.id_token_fault` to one of `ID_TOKEN_FAULTS` (`token_faults.py`) and
every id_token issued from then on is wrong in that one way (a forged signature, another
tenant, expired…), as a hostile or broken authority would send it; `None` issues good tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mg_emulator.auth import aad_error
from mg_emulator.scenario import Scenario, SignInUser
from mg_emulator.tls import new_signing_key
from mg_emulator.token_faults import spoiled_id_token

PENDING_LIFETIME_S = 600   # how long the sign-in page stays usable
CODE_LIFETIME_S = 300      # Entra's codes live "about 10 minutes"; shorter is allowed
REFRESH_LIFETIME_S = 86400
_KEEP_S = 3600             # how long spent or expired codes are remembered
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 section 4.1
_PROMPTS = frozenset({"", "login", "select_account", "consent", "create"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _description(aadsts: int, text: str) -> str:
    return f"AADSTS{aadsts}: {text}"


def redirect_uri_registered(uri: str, registered: tuple[str, ...]) -> bool:
    """Exact match, except that the port of an `http` loopback URI is ignored (Entra's rule)."""
    if not uri or "#" in uri:
        return False
    if uri in registered:
        return True
    try:
        given = urlsplit(uri)
        _ = given.port  # raises on a malformed port
    except ValueError:
        return False
    if (given.scheme != "http" or given.hostname not in _LOOPBACK
            or given.username is not None or given.password is not None):
        return False
    for candidate in registered:
        known = urlsplit(candidate)
        if (known.scheme == "http" and known.hostname == given.hostname
                and known.path == given.path and known.query == given.query):
            return True
    return False


def with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML answer (the sign-in form, or an error the browser must not be redirected for)."""

    status: int
    body: str


@dataclass(frozen=True, slots=True)
class Redirect:
    location: str


@dataclass(slots=True)
class _Pending:
    """An `/authorize` request waiting for the user to sign in on the page."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    expires_at: float
    failures: int = 0


@dataclass(frozen=True, slots=True)
class _Grant:
    """What an authorisation code or refresh token stands for."""

    user: SignInUser
    client_id: str
    scope: str
    redirect_uri: str = ""
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str = "S256"
    auth_time: int = 0
    expires_at: float = 0.0


@dataclass
class SignIn:
    """State of the interactive sign-in: pending page requests, codes, refresh tokens, the
    id_token signing key. Thread-safe; one per emulator. `code_lifetime_s` is a test knob."""

    scenario: Scenario
    code_lifetime_s: int = CODE_LIFETIME_S
    key: rsa.RSAPrivateKey = field(default_factory=new_signing_key)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _redeemed: dict[str, float] = field(default_factory=dict)  # code -> when to forget it
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    id_token_fault: str | None = None  # test hook: one of ID_TOKEN_FAULTS

    # -- keys ------------------------------------------------------------------------------
    @property
    def kid(self) -> str:
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        return _b64url(hashlib.sha256(der).digest())[:27]

    def jwks(self, issuer: str) -> dict[str, Any]:
        """What `/{tenant}/discovery/v2.0/keys` answers."""
        numbers = self.key.public_key().public_numbers()

        def uint(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": uint(numbers.n), "e": uint(numbers.e), "issuer": issuer}]}

    def _sign(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None,
              kid: str | None = None) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": kid or self.kid}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = (key or self.key).sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                           hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _id_token(self, claims: dict[str, Any]) -> str:
        """The id_token for these claims, spoiled as `id_token_fault` says."""
        if self.id_token_fault is None:
            return self._sign(claims)
        return spoiled_id_token(self, claims, self.id_token_fault)

    # -- /authorize ------------------------------------------------------------------------
    def authorize(self, params: dict[str, str], *, login_path: str) -> Page | Redirect:
        """Validate an authorisation request; show the sign-in page or send an error back."""
        client_id = params.get("client_id", "")
        if not client_id:
            return _error_page(400, _description(
                900144, "The request body must contain the following parameter: 'client_id'."))
        if client_id != self.scenario.client_id:
            return _error_page(400, _description(
                700016, f"Application with identifier '{client_id}' was not found in the "
                        "directory."))
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri_registered(redirect_uri, self.scenario.redirect_uris):
            return _error_page(400, _description(
                50011, f"The redirect URI '{redirect_uri}' specified in the request does not "
                       f"match the redirect URIs configured for the application "
                       f"'{client_id}'."))
        state = params.get("state")

        def fail(error: str, aadsts: int, text: str) -> Redirect:
            answer = {"error": error, "error_description": _description(aadsts, text)}
            if state is not None:
                answer["state"] = state
            return Redirect(with_query(redirect_uri, answer))

        if params.get("response_type") != "code":
            return fail("unsupported_response_type", 700054,
                        f"response_type '{params.get('response_type', '')}' is not enabled "
                        "for the application.")
        if params.get("response_mode", "query") != "query":
            return fail("invalid_request", 900144,
                        "The emulator answers with response_mode 'query' only.")
        scope = " ".join(params.get("scope", "").split())
        if not scope:
            return fail("invalid_request", 900144,
                        "The request body must contain the following parameter: 'scope'.")
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or ("plain" if challenge else "")
        if challenge is None and method:
            return fail("invalid_request", 501491,
                        "Invalid size of Code_Challenge parameter.")
        if method and method not in ("S256", "plain"):
            return fail("invalid_request", 501461,
                        f"The code_challenge_method '{method}' is not supported.")
        if challenge is not None and not _VERIFIER.match(challenge):
            return fail("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        prompt = params.get("prompt", "")
        if prompt == "none":
            return fail("login_required", 50058,
                        "A silent sign-in request was sent but no user is signed in.")
        if prompt not in _PROMPTS:
            return fail("invalid_request", 90023, f"The prompt value '{prompt}' is not valid.")
        ctx = secrets.token_urlsafe(24)
        now = time.time()
        with self._lock:
            self._prune(now)
            self._pending[ctx] = _Pending(
                client_id=client_id, redirect_uri=redirect_uri, scope=scope, state=state,
                nonce=params.get("nonce") or None, code_challenge=challenge,
                code_challenge_method=method or "S256", expires_at=now + PENDING_LIFETIME_S)
        return _login_page(login_path, ctx, params.get("login_hint", ""), client_id, error="")

    def login(self, form: dict[str, str], *, login_path: str) -> Page | Redirect:
        """The sign-in page's POST: a code for the redirect URI, the page again, or an error."""
        ctx = form.get("ctx", "")
        now = time.time()
        with self._lock:
            self._prune(now)
            pending = self._pending.get(ctx)
            if pending is None:
                return _error_page(400, _description(
                    50097, "This sign-in page has expired. Go back to the application and "
                           "sign in again."))
            if "cancel" in form:
                del self._pending[ctx]
                answer = {"error": "access_denied", "error_description": _description(
                    65004, "User declined to consent to access the app.")}
                if pending.state is not None:
                    answer["state"] = pending.state
                return Redirect(with_query(pending.redirect_uri, answer))
            user = self.scenario.user(form.get("login", ""))
            password = form.get("passwd", "")
            # Compare against something even for an unknown user, so timing tells nothing.
            expected = user.password if user is not None else secrets.token_hex(16)
            if user is None or not hmac.compare_digest(password.encode(), expected.encode()):
                pending.failures += 1
                if pending.failures >= 10:  # like Entra's smart lockout, per request
                    del self._pending[ctx]
                    answer = {"error": "access_denied", "error_description": _description(
                        50053, "The account is locked: too many sign-in attempts.")}
                    if pending.state is not None:
                        answer["state"] = pending.state
                    return Redirect(with_query(pending.redirect_uri, answer))
                return _login_page(login_path, ctx, form.get("login", ""), pending.client_id,
                                   error="Your account or password is incorrect.", status=200)
            del self._pending[ctx]
            code = secrets.token_urlsafe(48)
            self._codes[code] = _Grant(
                user=user, client_id=pending.client_id, scope=pending.scope,
                redirect_uri=pending.redirect_uri, nonce=pending.nonce,
                code_challenge=pending.code_challenge,
                code_challenge_method=pending.code_challenge_method, auth_time=int(now),
                expires_at=now + self.code_lifetime_s)
        answer = {"code": code}
        if pending.state is not None:
            answer["state"] = pending.state
        answer["session_state"] = secrets.token_hex(16)
        return Redirect(with_query(pending.redirect_uri, answer))

    def _prune(self, now: float) -> None:
        """Forget what has expired. Codes are kept a while longer, so that a late redemption
        is told "expired" (and a replay "already redeemed") rather than "not valid"."""
        for key in [k for k, v in self._pending.items() if v.expires_at <= now]:
            del self._pending[key]
        for key in [k for k, v in self._refresh.items() if v.expires_at <= now]:
            del self._refresh[key]
        for key in [k for k, v in self._codes.items() if v.expires_at + _KEEP_S <= now]:
            del self._codes[key]
        for key in [k for k, until in self._redeemed.items() if until <= now]:
            del self._redeemed[key]

    # -- token endpoint --------------------------------------------------------------------
    def redeem_code(self, form: dict[str, str], *, issuer: str, tenant: str,
                    lifetime_s: int) -> tuple[int, dict[str, Any]]:
        """`grant_type=authorization_code`, after the client authenticated."""
        code = form.get("code", "")
        if not code:
            return 400, _token_error("invalid_request", 900144, "The request body must "
                                     "contain the following parameter: 'code'.")
        now = time.time()
        with self._lock:
            self._prune(now)
            if code in self._redeemed:
                return 400, _token_error("invalid_grant", 54005, "OAuth2 Authorization code "
                                         "was already redeemed, please retry with a new valid "
                                         "code or use an existing refresh token.")
            grant = self._codes.pop(code, None)
            if grant is not None:
                self._redeemed[code] = grant.expires_at + _KEEP_S  # single use, whatever
                # the outcome below
        if grant is None:
            return 400, _token_error("invalid_grant", 9002313,
                                     "The provided authorization code is not valid.")
        if grant.expires_at <= now:
            return 400, _token_error("invalid_grant", 70008, "The provided authorization "
                                     "code or refresh token has expired due to inactivity.")
        if form.get("client_id") != grant.client_id:
            return 400, _token_error("invalid_grant", 70000,
                                     "The code was issued to another client.")
        if form.get("redirect_uri", "") != grant.redirect_uri:
            return 400, _token_error("invalid_grant", 500112, "The reply address does not "
                                     "match the reply address the code was issued for.")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier:
                return 400, _token_error("invalid_grant", 50148, "The code_verifier is "
                                         "required: the authorization request had a "
                                         "code_challenge.")
            if not _VERIFIER.match(verifier):
                return 400, _token_error("invalid_grant", 501481, "The Code_Verifier does not "
                                         "match the code_challenge supplied in the "
                                         "authorization request.")
            derived = (_b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                       if grant.code_challenge_method == "S256" else verifier)
            if not hmac.compare_digest(derived, grant.code_challenge):
                return 400, _token_error("invalid_grant", 501481, "The Code_Verifier does not "
                                         "match the code_challenge supplied in the "
                                         "authorization request.")
        return 200, self._tokens(grant, form, issuer=issuer, tenant=tenant,
                                 lifetime_s=lifetime_s, nonce=grant.nonce)

    def redeem_refresh_token(self, form: dict[str, str], *, issuer: str, tenant: str,
                             lifetime_s: int) -> tuple[int, dict[str, Any]]:
        """`grant_type=refresh_token`, after the client authenticated."""
        token = form.get("refresh_token", "")
        now = time.time()
        with self._lock:
            self._prune(now)
            grant = self._refresh.get(token)
        if grant is None or grant.client_id != form.get("client_id"):
            return 400, _token_error("invalid_grant", 9002313,
                                     "The provided refresh token is not valid.")
        return 200, self._tokens(grant, form, issuer=issuer, tenant=tenant,
                                 lifetime_s=lifetime_s, nonce=None)

    def _tokens(self, grant: _Grant, form: dict[str, str], *, issuer: str, tenant: str,
                lifetime_s: int, nonce: str | None) -> dict[str, Any]:
        user = grant.user
        now = int(time.time())
        scopes = grant.scope.split()
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": grant.scope,
            "expires_in": lifetime_s,
            "ext_expires_in": lifetime_s,
            # Opaque, and not one the emulated Graph accepts: delegated Graph is not emulated.
            "access_token": "emu-delegated." + secrets.token_urlsafe(32),
        }
        if "openid" in scopes:
            body["id_token"] = self._id_token(self.id_token_claims(
                user, issuer=issuer, tenant=tenant, client_id=grant.client_id, nonce=nonce,
                auth_time=grant.auth_time or now, now=now, lifetime_s=lifetime_s))
        if "offline_access" in scopes:
            refresh = secrets.token_urlsafe(48)
            with self._lock:
                self._refresh[refresh] = _Grant(user=user, client_id=grant.client_id,
                                                scope=grant.scope, auth_time=grant.auth_time,
                                                expires_at=now + REFRESH_LIFETIME_S)
            body["refresh_token"] = refresh
        if form.get("client_info") == "1":
            body["client_info"] = _b64url(json.dumps({"uid": user.id, "utid": tenant}).encode())
        return body

    @staticmethod
    def id_token_claims(user: SignInUser, *, issuer: str, tenant: str, client_id: str,
                        nonce: str | None, auth_time: int, now: int,
                        lifetime_s: int) -> dict[str, Any]:
        """A v2.0 id_token's claims, with `roles` (app roles) and `groups` when the user has any."""
        pairwise = hashlib.sha256(f"{user.id}|{client_id}".encode()).digest()
        claims: dict[str, Any] = {
            "ver": "2.0", "iss": issuer, "aud": client_id, "iat": now, "nbf": now,
            "exp": now + lifetime_s, "auth_time": auth_time, "sub": _b64url(pairwise),
            "oid": user.id, "tid": tenant, "name": user.display_name or user.upn,
            "preferred_username": user.upn, "uti": secrets.token_urlsafe(16),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if user.roles:
            claims["roles"] = list(user.roles)
        if user.groups:
            claims["groups"] = list(user.groups)
        return claims


def _token_error(code: str, aadsts: int, text: str) -> dict[str, Any]:
    return aad_error(code, aadsts, text)


_STYLE = ("body{font-family:sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}"
          "label,input,button{display:block;font-size:1rem;margin:.3rem 0}"
          "input{width:100%;padding:.4rem}.error{color:#a00}"
          ".row{display:flex;gap:.5rem;margin-top:1rem}")


def _document(title: str, body: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main>"
            "<p><small>Graph emulator: a test authority, not Microsoft.</small></p>"
            "</body></html>\n")


def _login_page(action: str, ctx: str, login: str, client_id: str, *, error: str,
                status: int = 200) -> Page:
    esc = html.escape
    described = ' aria-describedby="signin-error"' if error else ""
    problem = (f'<p class="error" id="signin-error" role="alert">{esc(error)}</p>'
               if error else "")
    body = (
        "<h1>Sign in</h1>"
        f"<p>to continue to <strong>{esc(client_id)}</strong></p>{problem}"
        f'<form method="post" action="{esc(action)}">'
        f'<input type="hidden" name="ctx" value="{esc(ctx)}">'
        '<label for="login">Email or user name</label>'
        f'<input id="login" name="login" type="email" autocomplete="username" '
        f'value="{esc(login)}" required{described}>'
        '<label for="passwd">Password</label>'
        f'<input id="passwd" name="passwd" type="password" autocomplete="current-password" '
        f"required{described}>"
        '<div class="row"><button type="submit" name="signin" value="1">Sign in</button>'
        '<button type="submit" name="cancel" value="1" formnovalidate>Cancel</button></div>'
        "</form>")
    return Page(status, _document("Sign in to your account", body))


def _error_page(status: int, description: str) -> Page:
    body = ("<h1>Sorry, but we're having trouble signing you in.</h1>"
            f'<p role="alert">{html.escape(description)}</p>')
    return Page(status, _document("Sign in error", body))
