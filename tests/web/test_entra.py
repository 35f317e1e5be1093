"""Entra ID sign-in: role mapping, and the start of the auth-code flow run through msal for
real against the Graph emulator's authority (its `/authorize` page is not built yet, so the
round trip through a browser is not tested here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from meeting_governance.graph.emulator.scenario import (
    default_media_dir,
    default_scenario_path,
    load_scenario,
)
from meeting_governance.graph.emulator.server import EmulatorServer
from meeting_governance.web.entra import map_role
from meeting_governance.web.sessions import COOKIE_NAME

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


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    server = EmulatorServer(load_scenario(default_scenario_path()), media_dir=default_media_dir(),
                            state_dir=tmp_path / "emulator")
    with server:
        yield server


@pytest.fixture
def entra_web(make_web: Callable[..., Web], emulator: EmulatorServer) -> Web:
    return make_web(
        graph={"tenant_id": emulator.tenant_id, "authority_host": emulator.authority_host,
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
    assert client.cookies.get(COOKIE_NAME)


def test_callback_error_from_the_authority_is_refused(entra_web: Web) -> None:
    client = entra_web.client(base_url="https://testserver")
    start = client.get("/login/entra")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    response = client.get("/login/entra/callback",
                          params={"error": "access_denied", "state": state})
    assert response.status_code == 401
    assert client.get("/optouts").status_code == 303


def test_unreachable_authority_gives_a_clear_page(make_web: Callable[..., Web]) -> None:
    web = make_web(graph={"authority_host": "https://127.0.0.1:9", "tenant_id": "t",
                          "connect_timeout_s": 1},
                   web={"entra_enabled": True, "entra_client_id": "c",
                        "entra_client_secret": "s"})
    response = web.client().get("/login/entra")
    assert response.status_code == 503
    assert "unavailable" in response.text
