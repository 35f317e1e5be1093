"""Forged and foreign id_tokens: the emulator's authority issues each kind of bad token (as a
hostile or broken authority would) and the real msal flow carries it to the app's callback,
which must refuse every one of them and sign nobody in."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import select

from meeting_governance.models import AuditEntry, User
from meeting_governance.web.idtoken import IdTokenError, IdTokenValidator
from mg_emulator.server import EmulatorServer
from mg_emulator.token_faults import ID_TOKEN_FAULTS

from . import test_entra
from .conftest import Web
from .test_entra import DPO, callback, through_emulator

# The Entra sign-in fixtures of test_entra.py: the emulator, its "browser", the app.
emulator = test_entra.emulator
browser_like = test_entra.browser_like
entra_web = test_entra.entra_web

# Which check must catch each fault (msal itself already refuses a wrong or missing nonce).
EXPECTED_REASON = {
    "bad_signature": "signature does not verify", "unknown_key": "does not publish",
    "alg_none": "is not RS256", "hs256_public_key": "is not RS256",
    "foreign_issuer": "(iss)", "foreign_audience": "(aud)", "other_tenant": "(iss)",
    "expired": "expired (exp)", "not_yet_valid": "not valid yet (nbf)",
    "wrong_nonce": "", "no_nonce": "",
}


def test_every_fault_has_an_expected_reason() -> None:
    assert set(EXPECTED_REASON) == ID_TOKEN_FAULTS


@pytest.mark.parametrize("fault", sorted(ID_TOKEN_FAULTS))
def test_a_bad_id_token_signs_nobody_in(entra_web: Web, emulator: EmulatorServer,
                                        browser_like: requests.Session, fault: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="meeting_governance.web.entra")
    emulator.signin.id_token_fault = fault
    client = entra_web.client(base_url="https://testserver")
    response = callback(client, through_emulator(client, browser_like, *DPO))
    assert response.status_code == 401, (fault, response.text)  # type: ignore[attr-defined]
    assert "Entra ID sign-in did not succeed" in response.text  # type: ignore[attr-defined]
    assert client.get("/api/session").status_code == 401
    assert client.get("/dpo").status_code == 303
    with entra_web.ctx.session() as db:
        assert not db.exec(select(AuditEntry).where(AuditEntry.action == "web.login")).all()
        assert not db.exec(select(User).where(User.source == "entra")).all()
    reasons = [str(getattr(r, "reason", "")) + " " + str(getattr(r, "error", ""))
               for r in caplog.records]
    assert any(EXPECTED_REASON[fault] in text for text in reasons), (fault, reasons)


def test_the_same_flow_with_a_good_token_signs_in(entra_web: Web, emulator: EmulatorServer,
                                                  browser_like: requests.Session) -> None:
    emulator.signin.id_token_fault = None
    client = entra_web.client(base_url="https://testserver")
    assert callback(client, through_emulator(client, browser_like, *DPO)).status_code == 303  # type: ignore[attr-defined]
    assert client.get("/api/session").json()["role"] == "dpo"


def test_keys_that_roll_over_are_fetched_again(entra_web: Web, emulator: EmulatorServer,
                                               browser_like: requests.Session) -> None:
    def key_fetches() -> int:
        return sum(1 for r in emulator.requests.all() if r.path.endswith("/discovery/v2.0/keys"))

    client = entra_web.client(base_url="https://testserver")
    assert callback(client, through_emulator(client, browser_like, *DPO)).status_code == 303  # type: ignore[attr-defined]
    assert key_fetches() == 1
    # Forged tokens naming unknown key ids do not make the app hammer the authority: at most
    # one refetch a minute, and the keys were fetched just now, so both are refused from cache.
    emulator.signin.id_token_fault = "unknown_key"
    for _ in range(2):
        forged = entra_web.client(base_url="https://testserver")
        assert callback(forged, through_emulator(forged, browser_like, *DPO)).status_code == 401  # type: ignore[attr-defined]
    assert key_fetches() == 1
    emulator.signin.id_token_fault = None
    # The authority publishes a new key (and only that one): the next sign-in's token names a
    # key id the app has not seen; once the minute has passed it fetches the keys again.
    emulator.signin.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    entra_web.app.state.entra.validator.refresh_min_s = 0  # "a minute later"
    other = entra_web.client(base_url="https://testserver")
    assert callback(other, through_emulator(other, browser_like, *DPO)).status_code == 303  # type: ignore[attr-defined]
    assert key_fetches() == 2


def test_the_validator_on_its_own(emulator: EmulatorServer) -> None:
    """Directly, with tokens the emulator signs: the tenant may be configured by domain name,
    in which case `tid` must equal the tenant in the authority's own issuer."""
    http = requests.Session()
    http.trust_env = False
    http.verify = emulator.ca_bundle
    authority = f"{emulator.authority_host}/{emulator.tenant_id}"
    signin = emulator.signin
    user = emulator.scenario.users[0]
    issuer = f"{authority}/v2.0"

    def token(**changes: object) -> str:
        import time

        claims = signin.id_token_claims(user, issuer=issuer, tenant=emulator.tenant_id,
                                        client_id=emulator.client_id, nonce="n-hash",
                                        auth_time=int(time.time()), now=int(time.time()),
                                        lifetime_s=600)
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return signin._sign(claims)

    validator = IdTokenValidator(http, authority=authority, client_id=emulator.client_id,
                                 tenant_id=emulator.tenant_id)
    import hashlib

    flow_nonce = "the-flow-nonce"
    good = token(nonce=hashlib.sha256(flow_nonce.encode()).hexdigest())
    assert validator.validate(good, flow_nonce=flow_nonce)["oid"] == user.id
    with pytest.raises(IdTokenError, match="nonce"):
        validator.validate(good, flow_nonce="another")
    with pytest.raises(IdTokenError, match="'oid' is missing"):
        validator.validate(token(oid=None, nonce=hashlib.sha256(flow_nonce.encode()).hexdigest()),
                           flow_nonce=flow_nonce)
    with pytest.raises(IdTokenError, match="tid"):
        validator.validate(token(tid="another-tenant",
                                 nonce=hashlib.sha256(flow_nonce.encode()).hexdigest()),
                           flow_nonce=flow_nonce)
    with pytest.raises(IdTokenError, match="well-formed"):
        validator.validate("not.a.jwt", flow_nonce=flow_nonce)
    by_domain = IdTokenValidator(http, authority=authority, client_id=emulator.client_id,
                                 tenant_id="contoso.onmicrosoft.com")
    assert by_domain.expected_tenant() == emulator.tenant_id  # from the discovered issuer


def test_unreachable_keys_are_a_503_not_a_sign_in(make_web: Callable[..., Web],
                                                  emulator: EmulatorServer,
                                                  browser_like: requests.Session) -> None:
    """If the keys cannot be fetched, nobody is signed in on an unverified token."""
    web = make_web(
        graph={"cloud": "custom", "tenant_id": emulator.tenant_id,
               "authority_host": emulator.authority_host, "base_url": emulator.base_url,
               "ca_bundle": emulator.ca_bundle},
        web={"entra_enabled": True, "entra_client_id": emulator.client_id,
             "entra_client_secret": emulator.client_secret, "base_url": "https://mg.example.org"})
    entra = web.app.state.entra
    entra.validator._discovered = type(entra.validator._discover())(  # a wrong jwks_uri
        issuer=entra.validator._discover().issuer,
        jwks_uri=f"{emulator.authority_host}/{emulator.tenant_id}/no-such-keys")
    client = web.client(base_url="https://testserver")
    response = callback(client, through_emulator(client, browser_like, *DPO))
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert client.get("/api/session").status_code == 401
