"""The route table under attack: sign-in everywhere, role × route, CSRF, headers, body size."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from meeting_governance import optouts
from meeting_governance.web.app import PUBLIC_PATHS
from meeting_governance.web.security import SECURITY_HEADERS

from .conftest import JOIN_LINK, PASSWORD, ROLES, Web

_counter = itertools.count()
ALL = frozenset(ROLES)
DPO_UP = frozenset({"dpo", "admin"})
ADMIN = frozenset({"admin"})

# (method, path) → the roles that may use it. Written out by hand, not read from the code,
# so a change in the app's permission table shows up here as a failing pair.
ROLE_TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): ALL,
    ("GET", "/optouts"): ALL,
    ("POST", "/optouts"): ALL,
    ("POST", "/optouts/search"): ALL,
    ("GET", "/optouts/new"): ALL,
    ("GET", "/optouts/import"): ALL,
    ("POST", "/optouts/import"): ALL,
    ("GET", "/optouts/{optout_id}"): ALL,
    # Revoking lets a person be transcribed again: the DPO's decision (SECURITY.md).
    ("GET", "/optouts/{optout_id}/revoke"): DPO_UP,
    ("POST", "/optouts/{optout_id}/revoke"): DPO_UP,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{name}/disable"): ADMIN,
    ("POST", "/logout"): ALL,
    ("GET", "/api/session"): ALL,
    ("GET", "/api/openapi.json"): ALL,
    ("GET", "/api/optouts"): ALL,
    ("POST", "/api/optouts"): ALL,
    ("POST", "/api/optouts/review"): ALL,
    ("POST", "/api/optouts/search"): ALL,
    ("GET", "/api/optouts/{optout_id}"): ALL,
    ("POST", "/api/optouts/{optout_id}/revoke"): DPO_UP,
    ("GET", "/api/optouts/{optout_id}/history"): DPO_UP,
    ("GET", "/dpo"): DPO_UP,
    ("GET", "/dpo/person"): DPO_UP,
    ("POST", "/dpo/person"): DPO_UP,
    ("POST", "/dpo/person/export"): DPO_UP,
    ("POST", "/dpo/person/erase"): DPO_UP,
    ("POST", "/dpo/person/withdraw"): DPO_UP,
    ("POST", "/dpo/person/redact"): DPO_UP,
    # Naming a speaker and reading the labels decrypts a transcript: the DPO's.
    ("GET", "/dpo/transcripts/{transcript_id}/speakers"): DPO_UP,
    ("POST", "/dpo/transcripts/{transcript_id}/speakers"): DPO_UP,
    ("GET", "/dpo/requests"): DPO_UP,
    ("POST", "/dpo/requests"): DPO_UP,
    ("POST", "/dpo/requests/{reference}/close"): DPO_UP,
    ("GET", "/dpo/holds"): DPO_UP,
    ("POST", "/dpo/holds"): DPO_UP,
    ("POST", "/dpo/holds/{hold_id}/release"): DPO_UP,
    ("GET", "/dpo/stats"): DPO_UP,
}


def app_routes(web: Web) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, included routers flattened; static files aside."""
    try:  # FastAPI ≥ 0.130 keeps included routers as such in app.routes
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI lists the routes themselves
        routes: list[Any] = list(web.app.routes)
    else:
        routes = list(iter_route_contexts(web.app.routes))
    pairs: list[tuple[str, str]] = []
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            continue
        assert isinstance(original, APIRoute), f"unexpected route type {original!r}"
        pairs.extend((method, route.path) for method in sorted(route.methods or ()))
    assert len(pairs) > 20
    return pairs


def _new_optout(web: Web) -> str:
    with web.ctx.session() as db:
        view = optouts.add_optout(web.ctx, db, optouts.OptOutRequest(
            email=f"person{next(_counter)}@example.org"), actor="test")
    return view.id


def _new_user(web: Web) -> str:
    from meeting_governance import users

    name = f"user{next(_counter)}"
    with web.ctx.session() as db:
        users.add_user(web.ctx, db, name, "coordinator", PASSWORD)
    return name


def _new_request(web: Web) -> str:
    from meeting_governance import dsr

    with web.ctx.session() as db:
        return dsr.open_request(web.ctx, db, "access",
                                email=f"subject{next(_counter)}@example.org").reference


def _new_hold(web: Web) -> str:
    from meeting_governance import holds

    return holds.set_hold(web.ctx, reason="case", meeting_id=f"m-{next(_counter)}").id


def _new_transcript(web: Web) -> str:
    from ..dsr.helpers import labelled_transcript

    return labelled_transcript(web.ctx).id


def concrete_path(web: Web, path: str) -> str:
    """A route's path with fresh objects for its parameters."""
    for name, make in (("{optout_id}", _new_optout), ("{name}", _new_user),
                       ("{reference}", _new_request), ("{hold_id}", _new_hold),
                       ("{transcript_id}", _new_transcript)):
        if name in path:
            path = path.replace(name, make(web))
    return path


def call(web: Web, client: TestClient, method: str, path: str, *, csrf: bool = True) -> Any:
    """One well-formed request to a route, with fresh data where it consumes some."""
    token = web.token(client) if csrf and _signed_in(client) else "none"
    headers = {"X-CSRF-Token": token} if csrf else {}
    concrete = concrete_path(web, path)
    if method == "GET":
        return client.get(concrete)
    form: dict[str, str] = {}
    files = None
    json_body: dict[str, Any] | None = None
    if path == "/optouts":
        form = {"step": "confirm", "email": f"p{next(_counter)}@example.org", "scope": "all",
                "covers_recording": "true", "covers_transcription": "true"}
    elif path == "/optouts/search":
        form = {"q": f"p{next(_counter)}@example.org"}
    elif path == "/api/optouts/search":
        json_body = {"search": f"p{next(_counter)}@example.org"}
    elif path == "/optouts/import":
        files = {"file": ("o.csv", f"email,name\nq{next(_counter)}@example.org,Q\n", "text/csv")}
    elif path == "/optouts/{optout_id}/revoke":
        form = {"reason": "withdrawn"}
    elif path == "/admin/users":
        form = {"name": f"new{next(_counter)}", "role": "dpo", "password": PASSWORD,
                "password_again": PASSWORD}
    elif path in ("/api/optouts", "/api/optouts/review"):
        json_body = {"email": f"a{next(_counter)}@example.org", "meeting": JOIN_LINK}
    elif path == "/api/optouts/{optout_id}/revoke":
        json_body = {"reason": "withdrawn"}
    elif path.startswith("/dpo/person"):  # no directory here: the identity given only
        form = {"who": f"d{next(_counter)}@example.org", "only_given": "true"}
    elif path == "/dpo/requests":
        form = {"kind": "access", "who": f"r{next(_counter)}@example.org"}
    elif path == "/dpo/holds":
        form = {"kind": "meeting", "target": f"m-{next(_counter)}", "reason": "complaint"}
    elif path == "/dpo/holds/{hold_id}/release":
        form = {"reason": "case closed"}
    elif path == "/dpo/transcripts/{transcript_id}/speakers":
        from ..dsr.helpers import BOB

        form = {"label": "Speaker 2", "person": BOB}
    if json_body is not None:
        return client.post(concrete, json=json_body, headers=headers)
    return client.post(concrete, data=form, files=files, headers=headers)


def _signed_in(client: TestClient) -> bool:
    return client.get("/api/session").status_code == 200


def test_role_table_covers_every_route(web: Web) -> None:
    routes = {pair for pair in app_routes(web) if pair[1] not in PUBLIC_PATHS}
    assert routes == set(ROLE_TABLE)


def test_every_route_but_the_public_ones_needs_sign_in(web: Web) -> None:
    client = web.client()
    checked = 0
    for method, path in app_routes(web):
        response = call(web, client, method, path, csrf=False)
        if path in PUBLIC_PATHS:
            if method == "GET":  # POST /login needs its CSRF token, tested elsewhere
                assert response.status_code not in (401, 403), (method, path)
            continue
        checked += 1
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json() == {"detail": "sign in first"}
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next=")
    assert checked == len(ROLE_TABLE)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_role_by_route(web: Web, role: str) -> None:
    failures = []
    for (method, path), allowed in ROLE_TABLE.items():
        client = web.as_role(role)
        response = call(web, client, method, path)
        ok = response.status_code in (200, 201, 303)
        if role in allowed and not ok:
            failures.append((method, path, response.status_code, "should be allowed"))
        if role not in allowed and response.status_code != 403:
            failures.append((method, path, response.status_code, "should be 403"))
    assert failures == []


@pytest.mark.parametrize("role", ["coordinator", "admin"])
def test_every_post_without_csrf_token_is_refused(web: Web, role: str) -> None:
    for method, path in app_routes(web):
        if method != "POST" or path in PUBLIC_PATHS:
            continue
        if role not in ROLE_TABLE[(method, path)]:
            continue
        client = web.as_role(role)
        response = call(web, client, method, path, csrf=False)
        assert response.status_code == 403, (path, response.status_code)
        # A token from another session does not count either.
        other = web.as_role(role)
        stolen = web.token(other)
        response = client.post(concrete_path(web, path),
                               data={"csrf_token": stolen, "reason": "x"},
                               headers={"X-CSRF-Token": stolen})
        assert response.status_code == 403, (path, "foreign token")


def test_coordinator_does_not_see_the_audit_trail(web: Web) -> None:
    optout_id = _new_optout(web)
    assert "History" not in web.as_role("coordinator").get(f"/optouts/{optout_id}").text
    page = web.as_role("dpo").get(f"/optouts/{optout_id}").text
    assert "History" in page and "optout.add" in page


def test_security_headers_on_every_kind_of_response(web: Web) -> None:
    client = web.as_role("coordinator")
    responses = [client.get("/optouts"), client.get("/healthz"), client.get("/static/style.css"),
                 client.get("/no-such-page"), client.post("/optouts", data={}),
                 web.client().get("/login"), web.client().get("/api/optouts")]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp


def test_no_inline_script_or_style_in_pages(web: Web) -> None:
    client = web.as_role("admin")
    optout_id = _new_optout(web)
    for path in ["/optouts", "/optouts/new", "/optouts/import", f"/optouts/{optout_id}",
                 f"/optouts/{optout_id}/revoke", "/admin/users", "/login"]:
        html = client.get(path).text
        assert "<script" not in html and "style=" not in html and "<style" not in html, path
        assert re.search(r'<a class="skip-link" href="#main">', html), path


def test_oversized_body_is_refused(make_web: Callable[..., Web]) -> None:
    web = make_web(web={"max_upload_bytes": 4096})
    client = web.as_role("coordinator")
    token = web.token(client)
    big = "email\n" + "x@example.org\n" * 20_000
    response = client.post("/optouts/import", files={"file": ("big.csv", big, "text/csv")},
                           headers={"X-CSRF-Token": token})
    assert response.status_code == 413
    response = client.post("/api/optouts", content=b"{" + b" " * 200_000 + b"}",
                           headers={"X-CSRF-Token": token, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["X-Frame-Options"] == "DENY"
