"""Entra ID sign-in: role mapping, and the whole auth-code flow run through msal for real
against the Graph emulator's authority: `/login/entra` → the emulator's `/authorize` page
(driven here with requests; `test_entra_browser.py` drives it with Chromium) → the callback,
where msal redeems the code (PKCE, nonce) and the app maps the id_token's claims to a role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient
from sqlmodel import select

from meeting_governance import users
from meeting_governance.models import AuditEntry
from meeting_governance.web.entra import map_role
from meeting_governance.web.sessions import COOKIE_NAME, PRE_COOKIE_NAME
from mg_emulator import EmulatorKeys, EmulatorServer
from mg_emulator.scenario import (
    DEFAULT_REDIRECT_URIS,
    SignInUser,
    default_media_dir,
    default_scenario_path,
    load_scenario,
)

from .conftest import Web

ROLE_MAP = {"group-coordinators": "coordinator", "MG.Dpo": "dpo", "group-admins": "admin"}


@pytest.mark.parametrize(("claims", "role"), [
    ({"roles": ["MG.Dpo"]}, "dpo"),
    ({"roles": ["MG.Dpo", "group-admins"]}, "admin"),       # the most privileged wins
    ({"roles": "group-coordinators"}, "coordinator"),         # a single string
    ({"roles": ["coordinator"]}, "coordinator"),              # an app role named like a role
    ({"roles": ["Other.Role"]}, None),
    ({"roles": []}, None),
    ({}, None),
    ({"roles": [{"admin": True}, 7, None]}, None),
    ({"groups": ["group-admins"]}, None),                     # another claim is not read
])
def test_map_role(claims: dict[str, object], role: str | None) -> None:
    assert map_role(claims, "roles", ROLE_MAP) == role


def test_group_claim_mapping() -> None:
    assert map_role({"groups": ["a1b2", "group-admins"]}, "groups", ROLE_MAP) == "admin"


def test_entra_routes_absent_when_disabled(web: Web) -> None:
    client = web.client()
    assert client.get("/login/entra").status_code == 404
    assert "Entra" not in client.get("/login").text
    assert client.get("/login/entra/callback?code=x&state=y").status_code == 400


CALLBACK = "https://mg.example.org/login/entra/callback"
# The demo scenario's sign-in users (mg_emulator/scenarios/demo.toml), and one whose app role maps to
# no role of this application.
COORDINATOR = ("morgan.coordinator@contoso.example", "emulator-coordinator-password")
DPO = ("drew.dpo@contoso.example", "emulator-dpo-password")
DPO_GROUP = "7a1b2c3d-0021-4000-8000-000000000021"
OUTSIDER = SignInUser(id="e1f2a3b4-0099-4000-8000-000000000099", upn="sam.sales@contoso.example",
                      password="emulator-outsider-password", display_name="Sam Sales",
                      roles=("Sales.Reader",), groups=("group-sales",))
_CTX = re.compile(r'name="ctx" value="([^"]+)"')


@pytest.fixture
def emulator(emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    demo = load_scenario(default_scenario_path())
    scenario = replace(demo, users=(*demo.users, OUTSIDER),
                       redirect_uris=(*DEFAULT_REDIRECT_URIS, CALLBACK))
    server = EmulatorServer(scenario, media_dir=default_media_dir(), keys=emulator_keys)
    with server:
        yield server


@pytest.fixture
def browser_like(emulator: EmulatorServer) -> Iterator[requests.Session]:
    """The user's side of the emulator's sign-in page (cookies are not involved there)."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = emulator.ca_bundle
        yield session


def through_emulator(client: TestClient, http: requests.Session, login: str, password: str,
                     *, next_path: str = "", cancel: bool = False) -> str:
    """Start at `/login/entra`, sign in on the emulator's page; returns the callback URL the
    emulator redirects the browser to."""
    start = client.get("/login/entra", params={"next": next_path} if next_path else None)
    assert start.status_code == 303, start.text
    page = http.get(start.headers["location"], allow_redirects=False)
    assert page.status_code == 200, page.text
    ctx = _CTX.search(page.text)
    assert ctx, page.text
    form = {"ctx": ctx.group(1), "login": login, "passwd": password}
    if cancel:
        form["cancel"] = "1"
    answer = http.post(page.url.split("/oauth2/")[0] + "/login", data=form,
                       allow_redirects=False)
    assert answer.status_code == 302, answer.text
    location: str = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return location


def callback(client: TestClient, location: str) -> object:
    split = urlsplit(location)
    return client.get(f"{split.path}?{split.query}")


@pytest.fixture
def entra_web(make_web: Callable[..., Web], emulator: EmulatorServer) -> Web:
    return make_web(
        graph={"cloud": "custom", "tenant_id": emulator.tenant_id,
               "authority_host": emulator.authority_host, "base_url": emulator.base_url,
               "ca_bundle": emulator.ca_bundle},
        web={"entra_enabled": True, "entra_client_id": emulator.client_id,
             "entra_client_secret": emulator.client_secret, "base_url": "https://mg.example.org",
             "entra_role_map": ROLE_MAP})


def test_sign_in_starts_an_auth_code_flow_with_pkce(entra_web: Web,
                                                    emulator: EmulatorServer) -> None:
    client = entra_web.client(base_url="https://testserver")
    assert "Sign in with Microsoft Entra ID" in client.get("/login").text
    response = client.get("/login/entra", params={"next": "/optouts/new"})
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == emulator.authority_host
    assert target.path == f"/{emulator.tenant_id}/oauth2/v2.0/authorize"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == emulator.client_id
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == "https://mg.example.org/login/entra/callback"
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert "openid" in query["scope"].split() and query["state"] and query["nonce"]
    # A callback whose state was not issued to this session is refused by msal's check.
    forged = client.get("/login/entra/callback", params={"code": "x", "state": "forged"})
    assert forged.status_code == 401
    assert "did not succeed" in forged.text
    assert client.get("/optouts").status_code == 303
    assert client.cookies.get(PRE_COOKIE_NAME) and not client.cookies.get(COOKIE_NAME)


def test_callback_error_from_the_authority_is_refused(entra_web: Web) -> None:
    client = entra_web.client(base_url="https://testserver")
    start = client.get("/login/entra")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    response = client.get("/login/entra/callback",
                          params={"error": "access_denied", "state": state})
    assert response.status_code == 401
    assert client.get("/optouts").status_code == 303


def test_unreachable_authority_gives_a_clear_page(make_web: Callable[..., Web]) -> None:
    web = make_web(graph={"cloud": "custom", "authority_host": "https://127.0.0.1:9",
                   "base_url": "https://127.0.0.1:9/v1.0", "tenant_id": "t",
                          "connect_timeout_s": 1},
                   web={"entra_enabled": True, "entra_client_id": "c",
                        "entra_client_secret": "s"})
    response = web.client().get("/login/entra")
    assert response.status_code == 503
    assert "unavailable" in response.text


def test_round_trip_signs_a_coordinator_in(entra_web: Web, emulator: EmulatorServer,
                                           browser_like: requests.Session) -> None:
    client = entra_web.client(base_url="https://testserver")
    location = through_emulator(client, browser_like, *COORDINATOR, next_path="/optouts/new")
    response = callback(client, location)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    assert response.headers["location"] == "/optouts/new"  # type: ignore[attr-defined]
    me = client.get("/api/session").json()
    assert me["role"] == "coordinator" and me["display"] == "Morgan Coordinator"
    assert me["name"] == "entra:e1f2a3b4-0010-4000-8000-000000000010"
    assert client.get("/optouts/new").status_code == 200
    with entra_web.ctx.session() as db:
        logins = db.exec(select(AuditEntry).where(AuditEntry.action == "web.login")).all()
    assert [e.actor for e in logins][-1] == f"web:{me['name']}"
    assert '"entra"' in logins[-1].details
    # The code was spent at the callback: the same answer again is refused (flow is gone too).
    assert callback(client, location).status_code == 400  # type: ignore[attr-defined]
    token = client.get("/api/session").json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/optouts").status_code == 303
    assert client.get("/api/session").status_code == 401


def test_round_trip_signs_a_dpo_in(entra_web: Web, emulator: EmulatorServer,
                                   browser_like: requests.Session) -> None:
    client = entra_web.client(base_url="https://testserver")
    callback(client, through_emulator(client, browser_like, *DPO))
    assert client.get("/api/session").json()["role"] == "dpo"


def test_role_from_the_group_claim(make_web: Callable[..., Web], emulator: EmulatorServer,
                                   browser_like: requests.Session) -> None:
    web = make_web(
        graph={"cloud": "custom", "tenant_id": emulator.tenant_id,
               "authority_host": emulator.authority_host, "base_url": emulator.base_url,
               "ca_bundle": emulator.ca_bundle},
        web={"entra_enabled": True, "entra_client_id": emulator.client_id,
             "entra_client_secret": emulator.client_secret, "base_url": "https://mg.example.org",
             "entra_role_claim": "groups", "entra_role_map": {DPO_GROUP: "admin"}})
    client = web.client(base_url="https://testserver")
    assert callback(client, through_emulator(client, browser_like, *DPO)).status_code == 303  # type: ignore[attr-defined]
    assert client.get("/api/session").json()["role"] == "admin"


def test_a_user_whose_roles_map_to_nothing_is_refused(entra_web: Web, emulator: EmulatorServer,
                                                      browser_like: requests.Session) -> None:
    client = entra_web.client(base_url="https://testserver")
    response = callback(client, through_emulator(client, browser_like, OUTSIDER.upn,
                                                 OUTSIDER.password))
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "Your account has no role in this application." in response.text  # type: ignore[attr-defined]
    assert client.get("/optouts").status_code == 303
    with entra_web.ctx.session() as db:
        assert not any(u.name == f"entra:{OUTSIDER.id}" for u in users.list_users(db))


def test_a_disabled_entra_user_is_refused(entra_web: Web, emulator: EmulatorServer,
                                          browser_like: requests.Session) -> None:
    client = entra_web.client(base_url="https://testserver")
    callback(client, through_emulator(client, browser_like, *DPO))
    name = client.get("/api/session").json()["name"]
    with entra_web.ctx.session() as db:
        users.disable_user(entra_web.ctx, db, name, actor="test")
    assert client.get("/api/session").status_code == 401  # the session ends at once
    response = callback(client, through_emulator(client, browser_like, *DPO))
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "disabled" in response.text  # type: ignore[attr-defined]


def test_cancel_on_the_authority_page_is_refused(entra_web: Web, emulator: EmulatorServer,
                                                 browser_like: requests.Session) -> None:
    client = entra_web.client(base_url="https://testserver")
    location = through_emulator(client, browser_like, "", "", cancel=True)
    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]
    response = callback(client, location)
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "did not succeed" in response.text  # type: ignore[attr-defined]
    assert client.get("/api/session").status_code == 401


def test_a_code_from_another_browsers_flow_is_refused(entra_web: Web, emulator: EmulatorServer,
                                                      browser_like: requests.Session) -> None:
    """Login CSRF / code injection: a victim's browser handed an attacker's callback URL."""
    attacker = entra_web.client(base_url="https://testserver")
    victim = entra_web.client(base_url="https://testserver")
    victim.get("/login/entra")  # the victim has a flow of its own in progress
    location = through_emulator(attacker, browser_like, *COORDINATOR)
    response = callback(victim, location)
    assert response.status_code == 401  # type: ignore[attr-defined]  # msal: state mismatch
    assert victim.get("/api/session").status_code == 401


def test_unreachable_authority_at_the_callback(entra_web: Web, emulator: EmulatorServer,
                                               browser_like: requests.Session) -> None:
    """The authority goes away between the sign-in page and the callback (msal's code
    redemption cannot connect): the user should get the clear 503 page, not a crash."""
    client = TestClient(entra_web.app, base_url="https://testserver", follow_redirects=False,
                        raise_server_exceptions=False)
    location = through_emulator(client, browser_like, *COORDINATOR)
    emulator.stop()
    response = client.get(f"{urlsplit(location).path}?{urlsplit(location).query}")
    assert response.status_code == 503  # refused with the "unavailable" page, not a crash
    assert "unavailable right now" in response.text
    assert client.get("/api/session").status_code == 401


def test_an_entra_users_name_and_address_are_not_stored_in_clear(
        entra_web: Web, emulator: EmulatorServer, browser_like: requests.Session) -> None:
    """The display name travels with the session sealed under a key only the browser's cookie
    gives; the address (UPN) is not kept at all. Searched for in every database file."""
    client = entra_web.client(base_url="https://testserver")
    callback(client, through_emulator(client, browser_like, *COORDINATOR))
    assert client.get("/api/session").json()["display"] == "Morgan Coordinator"
    entra_web.ctx.engine.dispose()  # flush SQLite's WAL into view
    files = list(entra_web.ctx.settings.home.glob("meeting-governance.db*"))
    assert files
    for path in files:
        data = path.read_bytes().lower()
        for needle in (b"morgan coordinator", COORDINATOR[0].encode(), b"morgan.coordinator"):
            assert needle not in data, (path, needle)
