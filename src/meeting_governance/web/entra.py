"""Entra ID sign-in: OpenID Connect authorisation-code flow (with PKCE) through msal.

The flow's secrets (state, nonce, PKCE verifier) travel in the encrypted pre-sign-in cookie
between `/login/entra` and its callback, so any `serve` process can finish a flow another one
started. msal redeems the code and checks state, PKCE and nonce; the id_token itself is then
validated here (`idtoken.py`: signature, issuer, audience, tenant, lifetime, nonce). The role
comes from an app-role or group claim, mapped by `web.entra_role_map`; a user whose claims map
to no role is refused. Enabled only when `web.entra_enabled` is true.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import msal
import requests
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from meeting_governance import users
from meeting_governance.config import Settings
from meeting_governance.errors import ConfigError, GraphError
from meeting_governance.graph.client import is_microsoft_authority
from meeting_governance.graph.msal_http import msal_http_client
from meeting_governance.web.auth import ctx_of, login_page_response, sign_in
from meeting_governance.web.idtoken import IdTokenError, IdTokenValidator
from meeting_governance.web.security import pre_session, pre_session_changed, safe_next
from meeting_governance.web.templating import render

log = logging.getLogger(__name__)

CALLBACK_PATH = "/login/entra/callback"


def map_role(claims: Mapping[str, Any], claim_name: str, role_map: Mapping[str, str]) -> str | None:
    """The most privileged role the token's claim values map to, or None.

    A value maps through `role_map` (app-role value or group object id → role); an app role
    whose value is itself a role name (`coordinator`, `dpo`, `admin`) needs no entry.
    """
    raw = claims.get(claim_name)
    values: Iterable[Any] = [raw] if isinstance(raw, str) else (raw if isinstance(raw, list) else [])
    granted = set()
    for value in values:
        if not isinstance(value, str):
            continue
        role = role_map.get(value, value if value in users.ROLES else None)
        if role in users.ROLES:
            granted.add(role)
    ranked = [r for r in reversed(users.ROLES) if r in granted]
    return ranked[0] if ranked else None


class EntraSignIn:
    """One msal ConfidentialClientApplication per process (msal keeps its caches in it)."""

    def __init__(self, settings: Settings) -> None:
        web, graph = settings.web, settings.graph
        if not web.entra_client_id or not web.entra_client_secret:
            raise ConfigError("web.entra_enabled is true but web.entra_client_id or "
                              "web.entra_client_secret is empty")
        self.client_id = web.entra_client_id
        self.secret = web.entra_client_secret
        self.authority = f"{graph.authority_host.rstrip('/')}/{graph.tenant_id}"
        self.instance_discovery = is_microsoft_authority(graph.authority_host)
        session = requests.Session()
        if graph.ca_bundle:
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would otherwise override `verify`.
            session.trust_env = False
            session.verify = graph.ca_bundle
        self.http = msal_http_client(session, (graph.connect_timeout_s, graph.read_timeout_s))
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self.validator = IdTokenValidator(self.http, authority=self.authority,
                                          client_id=self.client_id, tenant_id=graph.tenant_id)

    def app(self) -> msal.ConfidentialClientApplication:
        """Built on first use: msal's constructor fetches the authority's OpenID configuration."""
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self.client_id, client_credential=self.secret, authority=self.authority,
                        http_client=self.http, instance_discovery=self.instance_discovery)
                except (requests.RequestException, ValueError) as exc:
                    raise GraphError(f"cannot reach or use the sign-in authority "
                                     f"({exc.__class__.__name__}); check graph.authority_host, "
                                     "graph.tenant_id and graph.ca_bundle", retryable=True) from None
            return self._app

    def start(self, redirect_uri: str) -> dict[str, Any]:
        """A new flow (state, nonce, PKCE). `response_mode=query`, not msal's suggested
        form_post: the callback must see the SameSite=Lax session cookie holding the flow, and
        browsers send it on a cross-site top-level GET but not on a cross-site POST."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="response_mode='form_post'")
            flow: dict[str, Any] = self.app().initiate_auth_code_flow(
                [], redirect_uri=redirect_uri, response_mode="query")
        return flow

    def finish(self, flow: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        """msal checks state, nonce and PKCE and redeems the code; then the id_token is
        validated. Returns msal's result with `id_token_claims` replaced by the validated
        claims, or a dict with `error` (and `reason` for a refused token)."""
        try:
            result: dict[str, Any] = self.app().acquire_token_by_auth_code_flow(flow, params)
        except ValueError:  # state mismatch and other tampering, per msal's docs
            return {"error": "invalid_flow"}
        except RuntimeError:  # msal 1.39 reports a nonce mismatch this way
            return {"error": "invalid_nonce"}
        except (requests.RequestException, GraphError):  # the authority cannot be reached
            return {"error": "authority_unavailable"}
        if "error" in result:
            return result
        token = result.get("id_token")
        if not isinstance(token, str):
            return {"error": "invalid_id_token", "reason": "the token endpoint sent no id_token"}
        try:
            claims = self.validator.validate(token, flow_nonce=str(flow.get("nonce", "")))
        except IdTokenError as exc:
            return {"error": "invalid_id_token", "reason": exc.reason}
        except GraphError:
            return {"error": "authority_unavailable"}
        return {**result, "id_token_claims": claims}


def _entra(request: Request) -> EntraSignIn | None:
    entra: EntraSignIn | None = request.app.state.entra
    return entra


def _redirect_uri(request: Request) -> str:
    base = ctx_of(request).settings.web.base_url.rstrip("/") or str(request.base_url).rstrip("/")
    return base + CALLBACK_PATH


router = APIRouter(include_in_schema=False)


def _refused(request: Request, message: str, status: int) -> Response:
    return login_page_response(request, next_path="/optouts", error=message, status_code=status)


@router.get("/login/entra")
async def entra_start(request: Request, next: str = "") -> Response:
    entra = _entra(request)
    if entra is None:
        return render(request, "error.html", {"title": "Not found",
                                              "message": "Entra ID sign-in is not enabled."},
                      status_code=404)
    try:
        flow = await run_in_threadpool(entra.start, _redirect_uri(request))
    except GraphError as exc:
        log.error("entra sign-in unavailable", extra={"error": exc.__class__.__name__})
        return _refused(request, "Entra ID sign-in is unavailable right now. Try again later.", 503)
    pre = pre_session(request)
    pre["entra_flow"] = {k: v for k, v in flow.items() if k != "auth_uri"}
    pre["entra_next"] = safe_next(next)
    pre_session_changed(request)
    return RedirectResponse(flow["auth_uri"], status_code=303)


def _finish(request: Request, entra: EntraSignIn, flow: dict[str, Any],
            params: dict[str, str], next_path: str) -> Response:
    result = entra.finish(flow, params)
    if result.get("error") == "authority_unavailable":
        log.error("entra sign-in unavailable at the callback")
        return _refused(request, "Entra ID sign-in is unavailable right now. Try again later.", 503)
    if "error" in result:
        log.warning("entra sign-in failed", extra={"error": str(result.get("error"))[:80],
                                                   "reason": str(result.get("reason", ""))[:120]})
        return _refused(request, "Entra ID sign-in did not succeed. Start again.", 401)
    claims: dict[str, Any] = result.get("id_token_claims") or {}
    object_id = str(claims.get("oid") or "")
    ctx = ctx_of(request)
    web = ctx.settings.web
    role = map_role(claims, web.entra_role_claim, web.entra_role_map)
    if not object_id or role is None:
        log.warning("entra sign-in refused: no role mapped")
        return _refused(request, "Your account has no role in this application. "
                                 "Ask an administrator for access.", 403)
    with ctx.session() as db:
        user = users.upsert_entra_user(ctx, db, object_id, role)
    if not user.active:
        return _refused(request, "Your account is disabled in this application.", 403)
    display = str(claims.get("name") or claims.get("preferred_username") or user.name)[:200]
    sign_in(request, user, method="entra", display=display)
    return RedirectResponse(next_path, status_code=303)


@router.get(CALLBACK_PATH)
async def entra_callback(request: Request) -> Response:
    """The authority sends the browser back here. The flow is taken out of the pre-sign-in
    cookie whatever happens next (one use). Nothing here touches a signed-in session: calling
    this URL cannot extend one."""
    entra = _entra(request)
    pre = pre_session(request)
    flow = pre.pop("entra_flow", None)
    next_path = safe_next(pre.pop("entra_next", None))
    if flow is not None:
        pre_session_changed(request)
    if entra is None or not isinstance(flow, dict):
        return _refused(request, "This sign-in has expired or was not started here. Start again.",
                        400)
    params = {k: v for k, v in request.query_params.items()}
    return await run_in_threadpool(_finish, request, entra, flow, params, next_path)
