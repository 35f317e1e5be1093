"""The JSON API: same operations, same rules (sign-in, roles, X-CSRF-Token), an OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from meeting_governance import optouts
from meeting_governance.cli import app as cli_app

from .conftest import JOIN_LINK, Web


def test_api_round_trip(web_any: Web) -> None:
    web = web_any
    client = web.as_role("coordinator")
    token = web.token(client)
    created = client.post("/api/optouts", headers={"X-CSRF-Token": token},
                          json={"email": "Ada@Example.org", "name": "Ada", "meeting": JOIN_LINK,
                                "covers_recording": False})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "ada@example.org" and body["scope"] == "meeting"
    assert body["active"] and not body["covers_recording"] and body["covers_transcription"]
    assert body["created_by"] == "web:cora"
    listed = client.post("/api/optouts/search", headers={"X-CSRF-Token": token},
                         json={"search": "ADA@example.org"}).json()
    assert [o["id"] for o in listed] == [body["id"]]
    assert client.post("/api/optouts/search", headers={"X-CSRF-Token": token},
                       json={"search": "ada@"}).json() == []  # exact only
    assert client.get("/api/optouts", params={"search": "ada@example.org"}).status_code == 200
    assert [o["id"] for o in client.get("/api/optouts").json()] == [body["id"]]
    assert client.get(f"/api/optouts/{body['id']}").json()["name"] == "Ada"
    # A coordinator cannot revoke (it would let Ada be transcribed again); a DPO can.
    refused = client.post(f"/api/optouts/{body['id']}/revoke", headers={"X-CSRF-Token": token},
                          json={"reason": "withdrawn"})
    assert refused.status_code == 403 and refused.json() == {
        "detail": "Your role does not allow this page or action."}
    dpo = web.as_role("dpo")
    dpo_token = web.token(dpo)
    revoked = dpo.post(f"/api/optouts/{body['id']}/revoke", headers={"X-CSRF-Token": dpo_token},
                       json={"reason": "Ada asked by e-mail on 3 May"})
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "web:dora"
    again = dpo.post(f"/api/optouts/{body['id']}/revoke", headers={"X-CSRF-Token": dpo_token},
                     json={"reason": "twice"})
    assert again.status_code == 409 and "already revoked" in again.json()["detail"]
    assert client.get("/api/optouts", params={"include_revoked": False}).json() == []
    assert client.get(f"/api/optouts/{body['id']}/history").status_code == 403
    trail = dpo.get(f"/api/optouts/{body['id']}/history").json()
    assert [e["action"] for e in trail] == ["optout.add", "optout.revoke"]


def test_api_validation_names_the_fields(web: Web) -> None:
    client = web.as_role("coordinator")
    headers = {"X-CSRF-Token": web.token(client)}
    response = client.post("/api/optouts", headers=headers,
                           json={"object_id": "nope", "covers_recording": False,
                                 "covers_transcription": False})
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["detail"]}
    assert {"object_id", "covers"} <= fields
    unknown = client.post("/api/optouts", headers=headers, json={"email": "a@b.org", "admin": 1})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["field"] == "admin"


def test_api_post_needs_the_csrf_header(web: Web) -> None:
    client = web.as_role("coordinator")
    response = client.post("/api/optouts", json={"email": "a@b.org"})
    assert response.status_code == 403
    response = client.post("/api/optouts", json={"email": "a@b.org"},
                           headers={"X-CSRF-Token": "guessed"})
    assert response.status_code == 403
    # A cross-site form post (form-encoded, token-less) is refused the same way.
    response = client.post("/api/optouts", data={"email": "a@b.org"})
    assert response.status_code == 403


def test_openapi_schema_behind_sign_in(web: Web) -> None:
    assert web.client().get("/api/openapi.json").status_code == 401
    schema = web.as_role("coordinator").get("/api/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {"/api/optouts", "/api/optouts/search", "/api/optouts/{optout_id}",
            "/api/optouts/{optout_id}/revoke", "/api/session"} <= paths
    assert "search" not in {p["name"] for p in schema["paths"]["/api/optouts"]["get"]
                            .get("parameters", [])}  # no address in a URL
    assert all(p.startswith("/api/") for p in paths)  # pages stay out of the schema
    assert web.client().get("/docs").status_code in (303, 404)


def test_one_optout_record_for_the_cli_the_api_and_the_schema(
        web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    """`optout list --json`, the API and its schema show the same record (`OptOutView.to_json`)."""
    client = web.as_role("coordinator")
    created = client.post("/api/optouts", headers={"X-CSRF-Token": web.token(client)},
                          json={"email": "Ada@Example.org", "name": "Ada Lovelace",
                                "valid_from": "2026-03-01T00:00:00Z", "note": "asked in person",
                                "covers_recording": False})
    assert created.status_code == 201, created.text
    body = created.json()
    schema = web.app.openapi()["components"]["schemas"]["OptOutOut"]
    assert set(schema["properties"]) == set(body) == set(schema["required"])
    assert schema["properties"]["created_at"]["format"] == "date-time"
    assert body["covers"] == "transcription" and body["valid_from"] == "2026-03-01T00:00:00Z"
    assert body["summary"] == ("Meetings from 2026-03-01 onwards will not be transcribed while "
                               "Ada Lovelace (ada@example.org) attends.")
    monkeypatch.setenv("MG_HOME", str(web.ctx.settings.home))
    monkeypatch.delenv("MG_CONFIG", raising=False)
    result = CliRunner().invoke(cli_app, ["optout", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [body]
    with web.ctx.session() as db:
        assert [v.to_json() for v in optouts.list_optouts(web.ctx, db)] == [body]


def test_an_id_that_names_no_one_opt_out_is_a_clear_client_error(web: Web) -> None:
    """Found by the fuzz test: a blank id (`resolve_id`'s UsageError) was a 500."""
    client = web.as_role("dpo")
    for path in ("/api/optouts/%20", "/api/optouts/%20/history"):
        blank = client.get(path)
        assert blank.status_code == 422, path
        assert "no opt-out id given" in blank.json()["detail"][0]["message"]
    assert client.get("/api/optouts/abc").status_code == 404  # unknown stays "not found"
    assert client.get("/api/optouts/0123456789abcdef0123456789abcdef").status_code == 404
