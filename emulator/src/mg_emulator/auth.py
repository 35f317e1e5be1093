"""The sign-in half of the emulator: OpenID discovery, the token endpoint, bearer checks.

The token endpoint serves the client-credentials grant (the Graph client) and, through
`signin.SignIn`, the authorisation-code and refresh-token grants (the web form's Entra sign-in;
`/authorize` and its page live in `signin.py`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mg_emulator.scenario import Scenario

if TYPE_CHECKING:
    from mg_emulator.signin import SignIn

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def openid_configuration(authority_host: str, tenant: str) -> dict[str, Any]:
    """What msal reads from `/{tenant}/v2.0/.well-known/openid-configuration`."""
    base = f"{authority_host}/{tenant}"
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
    }


def aad_error(code: str, aadsts: int, description: str) -> dict[str, Any]:
    return {
        "error": code,
        "error_description": f"AADSTS{aadsts}: {description}",
        "error_codes": [aadsts],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": secrets.token_hex(16),
        "correlation_id": secrets.token_hex(16),
    }


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def verify_client_assertion(
    assertion: str, *, certificate: x509.Certificate, client_id: str, audience: str,
) -> str | None:
    """Check a private_key_jwt assertion; returns why it is refused, or None when it is good."""
    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64url_decode(head_b64))
        claims = json.loads(_b64url_decode(body_b64))
        signature = _b64url_decode(sig_b64)
    except (ValueError, binascii.Error):
        return "the client assertion is not a well-formed JWT"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "the client assertion is not a well-formed JWT"
    sha1 = _b64url(certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by spec
    sha256 = _b64url(certificate.fingerprint(hashes.SHA256()))
    # msal keeps base64 padding on thumbprints; the JWS spec drops it: accept both.
    given = {name: str(header[name]).rstrip("=") for name in ("x5t", "x5t#S256") if name in header}
    if given.get("x5t#S256", sha256) != sha256 or given.get("x5t", sha1) != sha1:
        return "the certificate thumbprint is not registered for this application"
    if "x5t" not in header and "x5t#S256" not in header:
        return "the client assertion names no certificate thumbprint (x5t)"
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "the registered certificate has no RSA key"
    signed = f"{head_b64}.{body_b64}".encode("ascii")
    alg = header.get("alg")
    try:
        if alg == "RS256":
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, signed, pss, hashes.SHA256())
        else:
            return f"the client assertion algorithm {alg!r} is not supported"
    except InvalidSignature:
        return "the client assertion signature does not verify"
    now = time.time()
    if claims.get("aud") != audience:
        return "the client assertion audience is not this token endpoint"
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return "the client assertion issuer/subject is not the client id"
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - 60:
        return "the client assertion has expired"
    if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 300:
        return "the client assertion is not valid yet"
    return None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    serial: int
    expires_at: float


class TokenStore:
    """Opaque access tokens the emulator issued; `revoke_all` makes every current one invalid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._serial = 0
        self._min_valid_serial = 0

    def issue(self, lifetime_s: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._serial += 1
            self._tokens[token] = IssuedToken(self._serial, time.time() + lifetime_s)
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            issued = self._tokens.get(token)
            return bool(issued and issued.serial > self._min_valid_serial
                        and issued.expires_at > time.time())

    def revoke_all(self) -> None:
        with self._lock:
            self._min_valid_serial = self._serial


def _client_refused(
    form: dict[str, str], *, scenario: Scenario, certificate: x509.Certificate, audience: str,
) -> tuple[int, dict[str, Any]] | None:
    """Check the client's credential (secret or certificate assertion); None when it is good."""
    if "client_assertion" in form:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return 400, aad_error("invalid_request", 900023, "Unsupported client assertion type.")
        problem = verify_client_assertion(form["client_assertion"], certificate=certificate,
                                          client_id=scenario.client_id, audience=audience)
        if problem:
            return 401, aad_error("invalid_client", 700027, problem)
    elif "client_secret" in form:
        if not hmac.compare_digest(form["client_secret"].encode(),
                                   scenario.client_secret.encode()):
            return 401, aad_error("invalid_client", 7000215, "Invalid client secret provided.")
    else:
        return 401, aad_error("invalid_client", 7000218,
                              "The request body must contain client_assertion or client_secret.")
    return None


USER_GRANTS = ("authorization_code", "refresh_token")


def token_response(
    form: dict[str, str], *, scenario: Scenario, certificate: x509.Certificate, audience: str,
    tokens: TokenStore, signin: SignIn | None = None, issuer: str = "", tenant: str = "",
) -> tuple[int, dict[str, Any]]:
    """The token endpoint: check the client, then issue a bearer token (client credentials)
    or redeem a code / refresh token (`signin`, when the emulator serves interactive sign-in)."""
    grant = form.get("grant_type")
    if grant != "client_credentials" and not (grant in USER_GRANTS and signin is not None):
        return 400, aad_error("unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type.")
    if form.get("client_id") != scenario.client_id:
        return 400, aad_error("unauthorized_client", 700016,
                              "Application was not found in the directory.")
    if grant == "client_credentials":
        scope = form.get("scope", "")
        if not any(s.endswith("/.default") for s in scope.split()):
            return 400, aad_error("invalid_scope", 1002012,
                                  "The provided value for scope is not valid; use '/.default'.")
    refused = _client_refused(form, scenario=scenario, certificate=certificate, audience=audience)
    if refused is not None:
        return refused
    lifetime = scenario.token_lifetime_s
    if signin is not None and grant == "authorization_code":
        return signin.redeem_code(form, issuer=issuer, tenant=tenant, lifetime_s=lifetime)
    if signin is not None and grant == "refresh_token":
        return signin.redeem_refresh_token(form, issuer=issuer, tenant=tenant,
                                           lifetime_s=lifetime)
    return 200, {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": tokens.issue(lifetime),
    }
