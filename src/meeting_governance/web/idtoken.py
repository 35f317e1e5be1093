"""Validation of the Entra ID id_token at sign-in: the app's own job since msal 1.38 stopped
validating id_tokens (msal only checks state, PKCE and the nonce).

Checked with PyJWT against the keys the authority publishes (`jwks_uri` of its OpenID
configuration, fetched through the same TLS-verified session as msal): the RS256 signature by
a published key, `iss` equal to the authority's issuer for our tenant, `aud` equal to our client
id, `tid` equal to our tenant, `exp`, `nbf` and `iat` with a small clock skew, and the nonce of
this browser's flow. A token from another tenant is signed by the very same Microsoft keys, so
the signature alone proves nothing: `iss` and `tid` must name our tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from meeting_governance.errors import GovernanceError, GraphError
from meeting_governance.graph.msal_http import MsalHttpClient

CLOCK_SKEW_S = 120  # the leeway Entra's own libraries allow
KEYS_REFRESH_MIN_S = 60.0  # an unknown key id refetches the keys at most this often
KEYS_MAX_AGE_S = 3600.0  # and they are refetched anyway when older than this
REQUIRED_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "sub", "tid", "oid")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class IdTokenError(GovernanceError):
    """The id_token is not one this application may accept; `reason` says which check failed
    (it is logged, never shown to the browser)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"id_token refused: {reason}")
        self.reason = reason


def nonce_claim(flow_nonce: str) -> str:
    """What the token's `nonce` must be: msal sends the SHA-256 (hex) of the flow's nonce."""
    return hashlib.sha256(flow_nonce.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Discovered:
    issuer: str
    jwks_uri: str


class IdTokenValidator:
    """Validates id_tokens for one client of one tenant; keys are cached and refetched when a
    token names a key id the cache does not have (keys roll over)."""

    def __init__(self, http: requests.Session | MsalHttpClient, *, authority: str, client_id: str,
                 tenant_id: str, refresh_min_s: float = KEYS_REFRESH_MIN_S) -> None:
        self.http = http
        # Tokens naming unknown key ids (forged ones included) cannot make us hammer the
        # authority: at most one refetch per `refresh_min_s`.
        self.refresh_min_s = refresh_min_s
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        self._discovered: _Discovered | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._keys_at = 0.0

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise GraphError(f"cannot read the sign-in authority's keys ({exc.__class__.__name__});"
                             " check graph.authority_host and graph.ca_bundle",
                             retryable=True) from None
        if not isinstance(data, dict):
            raise GraphError("the sign-in authority answered with something that is not JSON "
                             "object", retryable=True)
        return data

    def _discover(self) -> _Discovered:
        if self._discovered is None:
            config = self._get_json(f"{self.authority}/v2.0/.well-known/openid-configuration")
            issuer, jwks_uri = config.get("issuer"), config.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise GraphError("the sign-in authority's OpenID configuration names no issuer "
                                 "or jwks_uri", retryable=True)
            # A multi-tenant document has the template `{tenantid}`: pin it to our tenant.
            self._discovered = _Discovered(issuer.replace("{tenantid}", self.tenant_id), jwks_uri)
        return self._discovered

    def _key_set(self, *, refresh: bool) -> jwt.PyJWKSet:
        now = time.monotonic()
        age = now - self._keys_at
        if self._keys is None or age >= KEYS_MAX_AGE_S or (refresh and age >= self.refresh_min_s):
            data = self._get_json(self._discover().jwks_uri)
            try:
                self._keys = jwt.PyJWKSet.from_dict(data)
            except jwt.PyJWTError:
                raise GraphError("the sign-in authority published no usable keys",
                                 retryable=True) from None
            self._keys_at = now
        return self._keys

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            for refresh in (False, True):
                keys = self._key_set(refresh=refresh)
                for key in keys.keys:
                    if key.key_id == kid:
                        return key
        raise IdTokenError("signed by a key the authority does not publish")

    def expected_tenant(self) -> str:
        """`tid` must equal graph.tenant_id; when that is a domain name, the tenant id (GUID)
        in the authority's own issuer."""
        if _GUID.match(self.tenant_id) or "." not in self.tenant_id:
            return self.tenant_id
        path = urlsplit(self._discover().issuer).path.strip("/").split("/")
        return path[0] if path and path[0] else self.tenant_id

    def validate(self, id_token: str, *, flow_nonce: str) -> dict[str, Any]:
        """The token's claims if every check passes; `IdTokenError` naming the first that fails.
        `GraphError` when the authority's keys cannot be fetched."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise IdTokenError("not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise IdTokenError(f"algorithm {str(header.get('alg'))[:20]!r} is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise IdTokenError("no key id (kid) in the header")
        key = self._signing_key(kid)
        issuer = self._discover().issuer
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token, key=key, algorithms=["RS256"], audience=self.client_id, issuer=issuer,
                leeway=CLOCK_SKEW_S, options={"require": list(REQUIRED_CLAIMS)})
        except jwt.InvalidSignatureError:
            raise IdTokenError("the signature does not verify") from None
        except jwt.ExpiredSignatureError:
            raise IdTokenError("expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise IdTokenError("not valid yet (nbf)") from None
        except jwt.InvalidIssuedAtError:
            raise IdTokenError("issued in the future (iat)") from None
        except jwt.InvalidAudienceError:
            raise IdTokenError("issued for another application (aud)") from None
        except jwt.InvalidIssuerError:
            raise IdTokenError("issued by another authority or tenant (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise IdTokenError(f"the claim {exc.claim!r} is missing") from None
        except jwt.PyJWTError as exc:
            raise IdTokenError(f"not acceptable ({exc.__class__.__name__})") from None
        if not hmac.compare_digest(str(claims.get("tid", "")).lower(),
                                   self.expected_tenant().lower()):
            raise IdTokenError("issued for another tenant (tid)")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, nonce_claim(flow_nonce)):
            raise IdTokenError("the nonce is not this sign-in's")
        return claims
