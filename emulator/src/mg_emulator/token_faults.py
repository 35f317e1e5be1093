"""Bad id_tokens on demand, for the relying party's tests: each fault spoils a good token in
exactly one way, as a hostile or broken authority would (see `SignIn.id_token_fault`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from mg_emulator.signin import SignIn

# Each kind of bad id_token a relying party must refuse (see `SignIn.id_token_fault`).
ID_TOKEN_FAULTS = frozenset({
    "bad_signature",     # signed by another key under the published key id
    "unknown_key",       # signed by a key the authority does not publish (another kid)
    "alg_none",          # unsigned (`alg: none`)
    "hs256_public_key",  # HMAC-signed with the public key as secret (algorithm confusion)
    "foreign_issuer",    # iss of another authority
    "foreign_audience",  # aud of another application
    "other_tenant",      # iss and tid of another tenant, validly signed (the keys are shared)
    "expired",           # exp an hour ago
    "not_yet_valid",     # nbf an hour from now
    "wrong_nonce",       # the nonce of another sign-in
    "no_nonce",          # no nonce at all
})
OTHER_TENANT = "0b5c7e2a-9f1d-4c3b-8a6e-d4f2c1b0a9e8"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def spoiled_id_token(signin: SignIn, claims: dict[str, Any], fault: str) -> str:
    """A token for `claims` with `fault` applied (ValueError for an unknown fault)."""
    if fault not in ID_TOKEN_FAULTS:
        raise ValueError(f"unknown id_token fault {fault!r}")
    now = int(time.time())
    tenant = str(claims.get("tid", ""))
    changed = dict(claims)
    if fault == "foreign_issuer":
        changed["iss"] = f"https://login.evil.example/{tenant}/v2.0"
    elif fault == "foreign_audience":
        changed["aud"] = "00000000-0000-4000-8000-0000000000aa"
    elif fault == "other_tenant":
        changed["tid"] = OTHER_TENANT
        changed["iss"] = str(claims["iss"]).replace(f"/{tenant}/", f"/{OTHER_TENANT}/")
    elif fault == "expired":
        changed.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    elif fault == "not_yet_valid":
        changed.update(iat=now, nbf=now + 3600, exp=now + 7200)
    elif fault == "wrong_nonce":
        changed["nonce"] = hashlib.sha256(b"another sign-in").hexdigest()
    elif fault == "no_nonce":
        changed.pop("nonce", None)
    if fault in ("bad_signature", "unknown_key"):
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = "not-" + signin.kid if fault == "unknown_key" else None
        return signin._sign(changed, key=stranger, kid=kid)
    if fault in ("alg_none", "hs256_public_key"):
        alg = "none" if fault == "alg_none" else "HS256"
        header = {"typ": "JWT", "alg": alg, "kid": signin.kid}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(changed, separators=(",", ":")).encode()))
        if fault == "alg_none":
            return signing_input + "."
        public_pem = signin.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(mac)}"
    return signin._sign(changed)
