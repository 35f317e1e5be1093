"""The API as documented: every operation and every status its schema declares is provoked
against the live app (uvicorn on loopback, real HTTP through requests), and each response is
validated against the schema the app serves (openapi-core). Then a client is generated from
that schema (openapi-python-client, offline, in a temporary directory) and used against the
live app, validation errors included."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from meeting_governance import optouts

from .browser import serve
from .conftest import ACCOUNTS, JOIN_LINK, PASSWORD, Web, csrf_from


@pytest.fixture
def live(web: Web) -> Iterator[str]:
    with serve(web.app) as base:
        yield base


def _session(base: str, role: str | None) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    if role is not None:
        token = csrf_from(http.get(f"{base}/login").text)
        answer = http.post(f"{base}/login", allow_redirects=False,
                           data={"name": ACCOUNTS[role], "password": PASSWORD,
                                 "csrf_token": token})
        assert answer.status_code == 303
        http.headers["X-CSRF-Token"] = http.get(f"{base}/api/session").json()["csrf_token"]
    return http


def _new_optout(web: Web) -> str:
    with web.ctx.session() as db:
        return optouts.add_optout(web.ctx, db, optouts.OptOutRequest(
            email="schema.person@example.org", meeting=JOIN_LINK), actor="test").id


def _cases(web: Web, base: str) -> dict[tuple[str, str, str], Callable[[], requests.Response]]:
    """(method, path template, status) → a request that makes the live app answer so."""
    coordinator, dpo, anonymous = (_session(base, "coordinator"), _session(base, "dpo"),
                                   _session(base, None))
    no_csrf = _session(base, "dpo")
    del no_csrf.headers["X-CSRF-Token"]
    optout = _new_optout(web)
    revoked = _new_optout(web)
    dpo.post(f"{base}/api/optouts/{revoked}/revoke", json={"reason": "asked on 3 May"})
    huge = b'{"email": "' + b"a" * (web.ctx.settings.web.max_upload_bytes + 70_000) + b'"}'
    url = base + "/api"

    def too_large(path: str) -> Callable[[], requests.Response]:
        return lambda: dpo.post(url + path, data=huge,
                                headers={"Content-Type": "application/json"})

    return {
        ("get", "/api/session", "200"): lambda: coordinator.get(f"{url}/session"),
        ("get", "/api/session", "401"): lambda: anonymous.get(f"{url}/session"),
        ("get", "/api/optouts", "200"): lambda: coordinator.get(f"{url}/optouts"),
        ("get", "/api/optouts", "401"): lambda: anonymous.get(f"{url}/optouts"),
        ("get", "/api/optouts", "422"): lambda: coordinator.get(f"{url}/optouts",
                                                                params={"limit": 0}),
        ("post", "/api/optouts", "201"): lambda: coordinator.post(
            f"{url}/optouts", json={"email": "new.person@example.org", "name": "New"}),
        ("post", "/api/optouts", "401"): lambda: anonymous.post(
            f"{url}/optouts", json={"email": "a@example.org"}),
        ("post", "/api/optouts", "403"): lambda: no_csrf.post(
            f"{url}/optouts", json={"email": "a@example.org"}),
        ("post", "/api/optouts", "413"): too_large("/optouts"),
        ("post", "/api/optouts", "422"): lambda: coordinator.post(
            f"{url}/optouts", json={"object_id": "nope", "covers_recording": False,
                                    "covers_transcription": False}),
        ("post", "/api/optouts/review", "200"): lambda: coordinator.post(
            f"{url}/optouts/review", json={"email": "new.person@example.org",
                                           "meeting": JOIN_LINK}),
        ("post", "/api/optouts/review", "401"): lambda: anonymous.post(
            f"{url}/optouts/review", json={"email": "a@example.org"}),
        ("post", "/api/optouts/review", "403"): lambda: no_csrf.post(
            f"{url}/optouts/review", json={"email": "a@example.org"}),
        ("post", "/api/optouts/review", "413"): too_large("/optouts/review"),
        ("post", "/api/optouts/review", "422"): lambda: coordinator.post(
            f"{url}/optouts/review", json={"email": "not an address"}),
        ("post", "/api/optouts/search", "200"): lambda: coordinator.post(
            f"{url}/optouts/search", json={"search": "schema.person@example.org"}),
        ("post", "/api/optouts/search", "401"): lambda: anonymous.post(
            f"{url}/optouts/search", json={"search": "x"}),
        ("post", "/api/optouts/search", "403"): lambda: no_csrf.post(
            f"{url}/optouts/search", json={"search": "x"}),
        ("post", "/api/optouts/search", "413"): too_large("/optouts/search"),
        ("post", "/api/optouts/search", "422"): lambda: coordinator.post(
            f"{url}/optouts/search", json={"search": ""}),
        ("get", "/api/optouts/{optout_id}", "200"): lambda: coordinator.get(
            f"{url}/optouts/{optout}"),
        ("get", "/api/optouts/{optout_id}", "401"): lambda: anonymous.get(
            f"{url}/optouts/{optout}"),
        ("get", "/api/optouts/{optout_id}", "404"): lambda: coordinator.get(
            f"{url}/optouts/no-such-id"),
        ("post", "/api/optouts/{optout_id}/revoke", "200"): lambda: dpo.post(
            f"{url}/optouts/{optout}/revoke", json={"reason": "the person asked on 4 May"}),
        ("post", "/api/optouts/{optout_id}/revoke", "401"): lambda: anonymous.post(
            f"{url}/optouts/{optout}/revoke", json={"reason": "x"}),
        ("post", "/api/optouts/{optout_id}/revoke", "403"): lambda: coordinator.post(
            f"{url}/optouts/{optout}/revoke", json={"reason": "x"}),
        ("post", "/api/optouts/{optout_id}/revoke", "404"): lambda: dpo.post(
            f"{url}/optouts/no-such-id/revoke", json={"reason": "x"}),
        ("post", "/api/optouts/{optout_id}/revoke", "409"): lambda: dpo.post(
            f"{url}/optouts/{revoked}/revoke", json={"reason": "again"}),
        ("post", "/api/optouts/{optout_id}/revoke", "413"): too_large(f"/optouts/{optout}/revoke"),
        ("post", "/api/optouts/{optout_id}/revoke", "422"): lambda: dpo.post(
            f"{url}/optouts/{optout}/revoke", json={"reason": ""}),
        ("get", "/api/optouts/{optout_id}/history", "200"): lambda: dpo.get(
            f"{url}/optouts/{optout}/history"),
        ("get", "/api/optouts/{optout_id}/history", "401"): lambda: anonymous.get(
            f"{url}/optouts/{optout}/history"),
        ("get", "/api/optouts/{optout_id}/history", "403"): lambda: coordinator.get(
            f"{url}/optouts/{optout}/history"),
        ("get", "/api/optouts/{optout_id}/history", "404"): lambda: dpo.get(
            f"{url}/optouts/no-such-id/history"),
    }


def _schema(base: str) -> dict[str, Any]:
    schema: dict[str, Any] = _session(base, "coordinator").get(f"{base}/api/openapi.json").json()
    return schema


def test_every_declared_status_is_what_the_live_app_returns(web: Web, live: str) -> None:
    schema = _schema(live)
    spec = OpenAPI.from_dict(schema)  # the schema itself is valid OpenAPI (checked here)
    declared = {(method, path, status) for path, item in schema["paths"].items()
                for method, operation in item.items() for status in operation["responses"]}
    cases = _cases(web, live)
    assert declared == set(cases), ("declared but not provoked", declared - set(cases),
                                    "provoked but not declared", set(cases) - declared)
    for (method, path, status), send in sorted(cases.items()):
        response = send()
        assert str(response.status_code) == status, (method, path, status, response.text)
        # The response as it came over the wire, checked against the served schema: status,
        # content type, body shape (422s included: a list of {field, message}).
        spec.validate_response(RequestsOpenAPIRequest(response.request),
                               RequestsOpenAPIResponse(response))
        if status == "422":
            # The check has teeth: the shape a 422 used to have is refused by the schema.
            response._content = json.dumps({"detail": "text"}).encode()
            with pytest.raises(Exception, match=r"not of type .array."):
                spec.validate_response(RequestsOpenAPIRequest(response.request),
                                       RequestsOpenAPIResponse(response))


def test_security_schemes_say_how_to_authenticate(web: Web, live: str) -> None:
    schema = _schema(live)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["session"] == {"type": "apiKey", "in": "cookie", "name": "mg_session",
                                  "description": schemes["session"]["description"]}
    assert schemes["csrf"]["in"] == "header" and schemes["csrf"]["name"] == "X-CSRF-Token"
    for item in schema["paths"].values():
        for method, operation in item.items():
            expected = {"session", "csrf"} if method == "post" else {"session"}
            # One requirement object naming both: cookie AND header, not either.
            assert [set(r) for r in operation["security"]] == [expected]
    assert "HTTPValidationError" not in json.dumps(schema)  # FastAPI's shape is never sent


def test_a_generated_client_works_against_the_live_app(web: Web, live: str,
                                                       tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(_schema(live)))
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: nothing outside the venv
    result = subprocess.run(
        [str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path",
         str(spec), "--output-path", str(tmp_path / "mg_api_client"), "--meta", "none",
         "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module("mg_api_client")
        api = importlib.import_module("mg_api_client.api.opt_outs")
        models = importlib.import_module("mg_api_client.models")
        browser = _session(live, "coordinator")
        client = package.Client(base_url=live, cookies=dict(browser.cookies),
                                headers={"X-CSRF-Token": browser.headers["X-CSRF-Token"]})
        me = importlib.import_module("mg_api_client.api.opt_outs.session_info").sync(
            client=client)
        assert me.role == "coordinator"
        add = importlib.import_module("mg_api_client.api.opt_outs.add_optout")
        created = add.sync(client=client, body=models.OptOutIn(
            email="Generated.Client@Example.org", name="Generated"))
        assert isinstance(created, models.OptOutOut) and created.email == "generated.client@example.org"
        # The review step, then a save of exactly what was reviewed.
        checked = importlib.import_module("mg_api_client.api.opt_outs.review_optout").sync(
            client=client, body=models.OptOutIn(email="reviewed@example.org"))
        assert isinstance(checked, models.ReviewOut) and checked.person.checked is False
        assert [w.code for w in checked.warnings] == ["person_not_checked"]
        saved = add.sync(client=client, body=models.OptOutIn(
            email="reviewed@example.org", review_token=checked.review_token))
        assert isinstance(saved, models.OptOutOut) and saved.email == "reviewed@example.org"
        # A validation error is parsed into the declared shape (it used to crash the client).
        refused = add.sync_detailed(client=client, body=models.OptOutIn(
            object_id="not-a-guid", covers_recording=False, covers_transcription=False))
        assert refused.status_code == 422
        assert isinstance(refused.parsed, models.ValidationProblem)
        assert {p.field for p in refused.parsed.detail} >= {"object_id", "covers"}
        found = importlib.import_module("mg_api_client.api.opt_outs.search_optouts").sync(
            client=client, body=models.SearchIn(search="generated.client@example.org"))
        assert [o.id for o in found] == [created.id]
        anonymous = package.Client(base_url=live)
        denied = importlib.import_module("mg_api_client.api.opt_outs.list_optouts").sync_detailed(
            client=anonymous)
        assert denied.status_code == 401 and isinstance(denied.parsed, models.Problem)
        revoke = importlib.import_module("mg_api_client.api.opt_outs.revoke_optout")
        forbidden = revoke.sync_detailed(created.id, client=client,
                                         body=models.RevokeIn(reason="x"))
        assert forbidden.status_code == 403 and isinstance(forbidden.parsed, models.Problem)
        del api
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("mg_api_client")]:
            del sys.modules[name]
