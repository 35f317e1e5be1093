"""The emulator's interactive sign-in (`/authorize`, its page, the auth-code grant) over real
HTTPS: what a browser and msal see, checked at the HTTP level."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

from mg_emulator import EmulatorKeys, EmulatorServer, ScenarioError, SignInUser, scenario_from_dict
from mg_emulator.signin import redirect_uri_registered

from .emulator_scenario import TENANT, build_scenario

CALLBACK = "http://127.0.0.1:8123/login/entra/callback"
REGISTERED_HTTPS = "https://mg.example.org/login/entra/callback"
COORDINATOR = SignInUser(id="e1f2a3b4-0010-4000-8000-000000000010",
                         upn="morgan.coordinator@contoso.example", password="pw-coordinator",
                         display_name="Morgan <Coordinator>", roles=("coordinator",),
                         groups=("grp-coordinators",))
NOBODY = SignInUser(id="e1f2a3b4-0012-4000-8000-000000000012", upn="nobody@contoso.example",
                    password="pw-nobody")
_CTX = re.compile(r'name="ctx" value="([^"]+)"')


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory,
              emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    scenario = replace(build_scenario(), users=(COORDINATOR, NOBODY),
                       redirect_uris=("http://127.0.0.1/login/entra/callback", REGISTERED_HTTPS))
    media = tmp_path_factory.mktemp("signin-media")
    with EmulatorServer(scenario, media_dir=media, keys=emulator_keys) as emu:
        yield emu


@pytest.fixture
def http(authority: EmulatorServer) -> Iterator[requests.Session]:
    authority.signin.code_lifetime_s = 300
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        session.verify = authority.ca_bundle
        yield session


def _base(emu: EmulatorServer) -> str:
    return f"{emu.authority_host}/{emu.tenant_id}"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(http: requests.Session, emu: EmulatorServer, **overrides: str) -> requests.Response:
    params = {"client_id": emu.client_id, "response_type": "code", "redirect_uri": CALLBACK,
              "scope": "openid profile offline_access", "state": "st-1", "nonce": "n-1",
              "code_challenge": _pkce()[1], "code_challenge_method": "S256",
              "response_mode": "query", "prompt": "select_account"}
    params.update(overrides)
    params = {k: v for k, v in params.items() if v != "<omit>"}
    return http.get(f"{_base(emu)}/oauth2/v2.0/authorize", params=params, allow_redirects=False)


def _login(http: requests.Session, emu: EmulatorServer, page: requests.Response,
           login: str = COORDINATOR.upn, password: str = COORDINATOR.password,
           **extra: str) -> requests.Response:
    match = _CTX.search(page.text)
    assert match, page.text
    return http.post(f"{_base(emu)}/login", data={"ctx": match.group(1), "login": login,
                                                  "passwd": password, **extra},
                     allow_redirects=False)


def _query(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def _code(http: requests.Session, emu: EmulatorServer, challenge: str,
          user: SignInUser = COORDINATOR, nonce: str = "n-1") -> str:
    page = _authorize(http, emu, code_challenge=challenge, nonce=nonce)
    return _query(_login(http, emu, page, user.upn, user.password))["code"]


def _redeem(http: requests.Session, emu: EmulatorServer, code: str, verifier: str, /,
            **overrides: str) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "client_id": emu.client_id, "client_secret": emu.client_secret,
            "code_verifier": verifier, "scope": "openid profile offline_access",
            "client_info": "1"}
    form.update(overrides)
    form = {k: v for k, v in form.items() if v != "<omit>"}
    return http.post(f"{_base(emu)}/oauth2/v2.0/token", data=form)


def _verified_claims(http: requests.Session, emu: EmulatorServer, id_token: str) -> dict[str, Any]:
    config = http.get(f"{_base(emu)}/v2.0/.well-known/openid-configuration").json()
    jwks = http.get(config["jwks_uri"]).json()
    header = jwt.get_unverified_header(id_token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=emu.client_id,
        issuer=config["issuer"], options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]})
    return claims


# -- /authorize ------------------------------------------------------------------------------
def test_discovery_points_at_the_interactive_endpoints(authority: EmulatorServer,
                                                       http: requests.Session) -> None:
    config = http.get(f"{_base(authority)}/v2.0/.well-known/openid-configuration").json()
    assert config["authorization_endpoint"] == f"{_base(authority)}/oauth2/v2.0/authorize"
    keys = http.get(config["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]


def test_the_sign_in_page_is_a_plain_form(authority: EmulatorServer,
                                          http: requests.Session) -> None:
    page = _authorize(http, authority, login_hint='"><b>x')
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert f'action="/{authority.tenant_id}/login"' in page.text and 'method="post"' in page.text
    assert 'value="&quot;&gt;&lt;b&gt;x"' in page.text  # the login hint, escaped


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"client_id": "someone-else"}, "AADSTS700016"),
    ({"client_id": "<omit>"}, "AADSTS900144"),
    ({"redirect_uri": "https://evil.example/login/entra/callback"}, "AADSTS50011"),
    ({"redirect_uri": "<omit>"}, "AADSTS50011"),
    ({"redirect_uri": "http://127.0.0.1.evil.example/login/entra/callback"}, "AADSTS50011"),
    ({"redirect_uri": "http://127.0.0.1:8123/elsewhere"}, "AADSTS50011"),
    ({"redirect_uri": "https://127.0.0.1:8123/login/entra/callback"}, "AADSTS50011"),
    ({"redirect_uri": "http://user@127.0.0.1:8123/login/entra/callback"}, "AADSTS50011"),
    ({"redirect_uri": "https://mg.example.org:444/login/entra/callback"}, "AADSTS50011"),
    ({"redirect_uri": "https://mg.example.org/login/entra/callback?x=1"}, "AADSTS50011"),
    ({"redirect_uri": "https://MG.example.org/login/entra/callback#<i>"}, "AADSTS50011"),
])
def test_bad_client_or_redirect_uri_is_an_error_page_never_a_redirect(
        authority: EmulatorServer, http: requests.Session, overrides: dict[str, str],
        problem: str) -> None:
    response = _authorize(http, authority, **overrides)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert problem in response.text and "<i>" not in response.text
    assert 'name="ctx"' not in response.text


def test_registered_redirect_uris() -> None:
    registered = ("http://127.0.0.1/cb", "http://localhost/cb", REGISTERED_HTTPS)
    assert redirect_uri_registered("http://127.0.0.1:49152/cb", registered)  # loopback: any port
    assert redirect_uri_registered("http://LOCALHOST:8000/cb", registered)
    assert redirect_uri_registered(REGISTERED_HTTPS, registered)
    assert not redirect_uri_registered("http://[::1]:8000/cb", registered)  # not registered
    assert not redirect_uri_registered("http://127.0.0.1:x/cb", registered)
    assert not redirect_uri_registered("http://127.0.0.1:8000/cb/", registered)
    assert not redirect_uri_registered("", registered)


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"scope": ""}, "invalid_request"),
    ({"code_challenge_method": "S512"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"code_challenge": "<omit>"}, "invalid_request"),  # a method without a challenge
    ({"prompt": "none"}, "login_required"),
    ({"prompt": "sideways"}, "invalid_request"),
])
def test_other_problems_go_back_to_the_registered_redirect_uri(
        authority: EmulatorServer, http: requests.Session, overrides: dict[str, str],
        error: str) -> None:
    response = _authorize(http, authority, **overrides)
    answer = _query(response)
    assert response.headers["Location"].startswith(CALLBACK + "?")
    assert answer["error"] == error and answer["error_description"].startswith("AADSTS")
    assert answer["state"] == "st-1" and "code" not in answer


def test_wrong_password_shows_the_page_again_then_signs_in(authority: EmulatorServer,
                                                           http: requests.Session) -> None:
    page = _authorize(http, authority)
    again = _login(http, authority, page, password="wrong")
    assert again.status_code == 200 and "Location" not in again.headers
    assert "Your account or password is incorrect." in again.text
    assert 'role="alert"' in again.text and 'aria-describedby="signin-error"' in again.text
    unknown = _login(http, authority, again, login="nobody.at.all@contoso.example")
    assert "Your account or password is incorrect." in unknown.text  # same words: no probing
    answer = _query(_login(http, authority, unknown, login=COORDINATOR.upn.upper()))
    assert answer["state"] == "st-1" and len(answer["code"]) > 40
    # The page's context is spent: posting it again is an error page, not a second code.
    replay = _login(http, authority, unknown)
    assert replay.status_code == 400 and "AADSTS50097" in replay.text


def test_cancel_answers_access_denied(authority: EmulatorServer, http: requests.Session) -> None:
    page = _authorize(http, authority)
    answer = _query(_login(http, authority, page, login="", password="", cancel="1"))
    assert answer == {"error": "access_denied", "state": "st-1",
                      "error_description": answer["error_description"]}
    assert answer["error_description"].startswith("AADSTS65004")


def test_ten_wrong_passwords_end_the_request(authority: EmulatorServer,
                                             http: requests.Session) -> None:
    page = _authorize(http, authority)
    for _ in range(9):
        page = _login(http, authority, page, password="wrong")
        assert page.status_code == 200
    assert _query(_login(http, authority, page, password="wrong"))["error"] == "access_denied"


# -- the token endpoint ----------------------------------------------------------------------
def test_code_redeems_for_signed_tokens_with_the_users_claims(authority: EmulatorServer,
                                                              http: requests.Session) -> None:
    verifier, challenge = _pkce()
    code = _code(http, authority, challenge, nonce="nonce-hash-from-msal")
    response = _redeem(http, authority, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "openid profile offline_access"
    assert body["access_token"] and body["refresh_token"]
    claims = _verified_claims(http, authority, body["id_token"])
    assert claims["iss"] == f"{_base(authority)}/v2.0"
    assert claims["aud"] == authority.client_id
    assert claims["nonce"] == "nonce-hash-from-msal"
    assert claims["oid"] == COORDINATOR.id and claims["tid"] == TENANT
    assert claims["name"] == "Morgan <Coordinator>"
    assert claims["preferred_username"] == COORDINATOR.upn
    assert claims["roles"] == ["coordinator"] and claims["groups"] == ["grp-coordinators"]
    assert claims["exp"] - claims["iat"] == 3600 and claims["ver"] == "2.0"
    assert claims["sub"] and claims["sub"] != COORDINATOR.id  # pairwise, as Entra's
    client_info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert client_info == {"uid": COORDINATOR.id, "utid": TENANT}
    # A user with no roles or groups gets neither claim.
    verifier, challenge = _pkce()
    plain = _redeem(http, authority, _code(http, authority, challenge, NOBODY), verifier).json()
    plain_claims = _verified_claims(http, authority, plain["id_token"])
    assert "roles" not in plain_claims and "groups" not in plain_claims


def test_a_tampered_id_token_does_not_verify(authority: EmulatorServer,
                                             http: requests.Session) -> None:
    verifier, challenge = _pkce()
    token = _redeem(http, authority, _code(http, authority, challenge), verifier).json()["id_token"]
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        _verified_claims(http, authority, f"{head}.{forged}.{signature}")


def test_pkce_mismatch_is_refused_and_spends_the_code(authority: EmulatorServer,
                                                      http: requests.Session) -> None:
    verifier, challenge = _pkce()
    code = _code(http, authority, challenge)
    wrong = _redeem(http, authority, code, _pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant" and 501481 in wrong.json()["error_codes"]
    after = _redeem(http, authority, code, verifier)  # the right verifier comes too late
    assert after.status_code == 400 and 54005 in after.json()["error_codes"]


@pytest.mark.parametrize(("overrides", "status", "error"), [
    ({"code_verifier": "<omit>"}, 400, "invalid_grant"),
    ({"code_verifier": "not a verifier"}, 400, "invalid_grant"),
    ({"redirect_uri": "http://127.0.0.1:9999/login/entra/callback"}, 400, "invalid_grant"),
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_secret": "<omit>"}, 401, "invalid_client"),
    ({"client_id": "someone-else"}, 400, "unauthorized_client"),
    ({"code": "made-up"}, 400, "invalid_grant"),
    ({"code": ""}, 400, "invalid_request"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
])
def test_bad_redemptions_are_refused(authority: EmulatorServer, http: requests.Session,
                                     overrides: dict[str, str], status: int, error: str) -> None:
    verifier, challenge = _pkce()
    code = _code(http, authority, challenge)
    response = _redeem(http, authority, code, verifier, **overrides)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "id_token" not in response.json()


def test_a_code_is_single_use(authority: EmulatorServer, http: requests.Session) -> None:
    verifier, challenge = _pkce()
    code = _code(http, authority, challenge)
    assert _redeem(http, authority, code, verifier).status_code == 200
    again = _redeem(http, authority, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant" and 54005 in again.json()["error_codes"]


def test_a_code_expires(authority: EmulatorServer, http: requests.Session) -> None:
    authority.signin.code_lifetime_s = 0
    verifier, challenge = _pkce()
    response = _redeem(http, authority, _code(http, authority, challenge), verifier)
    assert response.status_code == 400 and 70008 in response.json()["error_codes"]


def test_refresh_token_and_delegated_access_token(authority: EmulatorServer,
                                                  http: requests.Session) -> None:
    verifier, challenge = _pkce()
    body = _redeem(http, authority, _code(http, authority, challenge), verifier).json()
    refreshed = http.post(f"{_base(authority)}/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": authority.client_id, "client_secret": authority.client_secret,
        "scope": "openid profile offline_access"})
    assert refreshed.status_code == 200, refreshed.text
    claims = _verified_claims(http, authority, refreshed.json()["id_token"])
    assert claims["oid"] == COORDINATOR.id and "nonce" not in claims
    bogus = http.post(f"{_base(authority)}/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "refresh_token": "nope",
        "client_id": authority.client_id, "client_secret": authority.client_secret})
    assert bogus.status_code == 400 and bogus.json()["error"] == "invalid_grant"
    # The user's access token is not an application token: the emulated Graph refuses it.
    graph = http.get(f"{authority.base_url}/users/x/onlineMeetings/y",
                     headers={"Authorization": f"Bearer {body['access_token']}"})
    assert graph.status_code == 401


def test_client_credentials_still_served(authority: EmulatorServer,
                                         http: requests.Session) -> None:
    response = http.post(f"{_base(authority)}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": authority.client_id,
        "client_secret": authority.client_secret,
        "scope": "https://graph.microsoft.com/.default"})
    assert response.status_code == 200 and "id_token" not in response.json()


# -- msal's own auth-code flow, unpatched ----------------------------------------------------
@pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")
def test_msal_auth_code_flow_round_trip(authority: EmulatorServer,
                                        http: requests.Session) -> None:
    app = msal.ConfidentialClientApplication(
        authority.client_id, client_credential=authority.client_secret,
        authority=_base(authority), http_client=http, instance_discovery=False)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK, response_mode="query")
    page = http.get(flow["auth_uri"], allow_redirects=False)
    params = _query(_login(http, authority, page))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "error" not in result, result
    claims = result["id_token_claims"]
    assert claims["oid"] == COORDINATOR.id and claims["roles"] == ["coordinator"]
    assert [a["username"] for a in app.get_accounts()] == [COORDINATOR.upn]
    # The same answer replayed: msal's state check passes, the spent code is refused.
    replay = app.acquire_token_by_auth_code_flow(flow, params)
    assert replay["error"] == "invalid_grant"


# -- the scenario ----------------------------------------------------------------------------
@pytest.mark.parametrize(("users", "problem"), [
    ([{"id": "u", "upn": "a@b.example"}], "password"),
    ([{"id": "u", "upn": "a@b.example", "password": ""}], "needs id, upn and password"),
    ([{"id": "u", "upn": "a@b.example", "password": "p", "roles": "coordinator"}],
     "list of strings"),
    ([{"id": "u", "upn": "a@b.example", "password": "p", "colour": "red"}], "unknown key"),
    ([{"id": "u", "upn": "A@b.example", "password": "p"},
      {"id": "v", "upn": "a@B.example", "password": "p"}], "listed twice"),
])
def test_bad_sign_in_users_name_the_problem(users: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem):
        scenario_from_dict({"users": users})


def test_redirect_uris_from_toml() -> None:
    scenario = scenario_from_dict({"redirect_uris": [REGISTERED_HTTPS]})
    assert scenario.redirect_uris == (REGISTERED_HTTPS,)
    with pytest.raises(ScenarioError, match="redirect_uris"):
        scenario_from_dict({"redirect_uris": ["javascript:alert(1)"]})
    assert COORDINATOR.password not in repr(COORDINATOR)
