"""Sign-in, sessions and their attacks: cookie flags, fixation, server-side sessions (expiry,
sign-out, disable, revoke), the database-backed sign-in limit, open redirects."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from meeting_governance import users
from meeting_governance.clock import FixedClock
from meeting_governance.models import AuditEntry, LoginAttempt, WebSession
from meeting_governance.web.sessions import COOKIE_NAME, PRE_COOKIE_NAME

from .conftest import ACCOUNTS, PASSWORD, Web, csrf_from


def _set_cookie(response: object, name: str = COOKIE_NAME) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    cookies = [h for h in headers if h.startswith(name + "=")]
    assert cookies, f"no {name} cookie was set"
    return cookies[-1]


def test_sign_in_and_out(web: Web) -> None:
    client = web.client()
    assert client.get("/optouts").status_code == 303
    response = web.login(client, "cora")
    assert response.status_code == 303 and response.headers["location"] == "/optouts"
    page = client.get("/optouts")
    assert page.status_code == 200 and "cora" in page.text
    out = client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login?signed_out=1"
    assert "You are signed out." in client.get(out.headers["location"]).text
    assert client.get("/optouts").status_code == 303
    with web.ctx.session() as db:
        actions = [e.action for e in db.exec(select(AuditEntry)).all()]
    assert actions[-2:] == ["web.login", "web.logout"]


def test_wrong_password_is_refused_without_saying_which_part(web: Web) -> None:
    client = web.client()
    wrong = web.login(client, "cora", "not-the-password-at-all")
    unknown = web.login(client, "nobody-here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text
    assert "Wrong user name or password." in unknown.text
    assert client.get("/optouts").status_code == 303


def test_login_form_needs_its_csrf_token(web: Web) -> None:
    client = web.client()
    client.get("/login")
    response = client.post("/login", data={"name": "cora", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/optouts").status_code == 303


@pytest.mark.parametrize(("base_url", "scheme", "secure"), [
    ("", "http", False), ("", "https", True), ("https://mg.example.org", "http", True)])
def test_session_cookie_flags(make_web: Callable[..., Web], base_url: str, scheme: str,
                              secure: bool) -> None:
    web = make_web(web={"base_url": base_url, "session_max_age_hours": 2})
    client = web.client(base_url=f"{scheme}://testserver")
    page = client.get("/login")
    pre = _set_cookie(page, PRE_COOKIE_NAME).split(";")[0]
    # Sent by hand: a client keeps a Secure cookie to itself over plain http, as it should.
    response = client.post("/login", headers={"cookie": pre},
                           data={"name": "cora", "password": PASSWORD,
                                 "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    for name in (COOKIE_NAME, PRE_COOKIE_NAME):
        attributes = [part.strip().lower() for part in _set_cookie(response, name).split(";")]
        assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
        assert ("secure" in attributes) is secure
    session_cookie = [p.strip().lower() for p in _set_cookie(response).split(";")]
    max_age = int(next(p for p in session_cookie if p.startswith("max-age="))[8:])
    assert 7190 <= max_age <= 7200
    # Signing in drops the pre-sign-in cookie.
    assert "max-age=0" in _set_cookie(response, PRE_COOKIE_NAME).lower()


def test_the_cookie_is_opaque_and_only_its_hash_is_stored(web: Web) -> None:
    client = web.as_role("coordinator")
    value = client.cookies[COOKIE_NAME]
    decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert len(decoded) == 32  # 32 random bytes, nothing else
    for text in (value, decoded.decode("latin-1")):
        assert "cora" not in text and "coordinator" not in text
    with web.ctx.session() as db:
        rows = db.exec(select(WebSession)).all()
    assert len(rows) == 1 and rows[0].id != value and value not in rows[0].id
    web.ctx.engine.dispose()
    for path in web.ctx.settings.home.glob("meeting-governance.db*"):
        assert value.encode() not in path.read_bytes(), path


def test_session_id_changes_at_sign_in_no_fixation(web: Web) -> None:
    attacker = web.client()
    attacker.get("/login")
    planted_pre = attacker.cookies[PRE_COOKIE_NAME]
    victim = web.client()
    victim.cookies.set(PRE_COOKIE_NAME, planted_pre)
    victim.cookies.set(COOKIE_NAME, "attacker-chosen-value")
    response = web.login(victim, "cora")
    assert response.status_code == 303
    assert _set_cookie(response).split(";")[0] != f"{COOKIE_NAME}=attacker-chosen-value"
    assert victim.get("/optouts").status_code == 200
    # What the attacker planted (and still holds) stays anonymous.
    attacker.cookies.set(COOKIE_NAME, "attacker-chosen-value")
    assert attacker.get("/optouts").status_code == 303


def test_a_second_sign_in_ends_the_first_session_of_that_browser(web: Web) -> None:
    client = web.as_role("coordinator")
    first = client.cookies[COOKIE_NAME]
    assert web.login(client, "dora").status_code == 303
    assert client.cookies[COOKIE_NAME] != first
    thief = web.client()
    thief.cookies.set(COOKIE_NAME, first)
    assert thief.get("/optouts").status_code == 303


def test_cookie_is_useless_after_sign_out(web: Web) -> None:
    client = web.as_role("coordinator")
    stolen = client.cookies[COOKIE_NAME]
    out = client.post("/logout", headers={"X-CSRF-Token": web.token(client)})
    assert "max-age=0" in _set_cookie(out).lower()
    thief = web.client()
    thief.cookies.set(COOKIE_NAME, stolen)
    assert thief.get("/optouts").status_code == 303
    assert thief.get("/api/session").status_code == 401


def test_forged_or_tampered_cookie_is_anonymous(web: Web) -> None:
    client = web.as_role("admin")
    value = client.cookies[COOKIE_NAME]
    other = web.client()
    other.cookies.set(COOKIE_NAME, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert other.get("/admin/users").status_code == 303
    other.cookies.set(COOKIE_NAME, "garbage")
    assert other.get("/optouts").status_code == 303
    other.cookies.set(COOKIE_NAME, "x" * 10_000)
    assert other.get("/optouts").status_code == 303


def test_disabled_account_loses_its_session(web: Web) -> None:
    client = web.as_role("coordinator")
    assert client.get("/optouts").status_code == 200
    with web.ctx.session() as db:
        users.disable_user(web.ctx, db, ACCOUNTS["coordinator"])
        assert db.exec(select(WebSession)).all() == []  # the rows went in the same transaction
    assert client.get("/optouts").status_code == 303
    assert web.login(web.client(), ACCOUNTS["coordinator"]).status_code == 401


def test_revoking_sessions_ends_them_all_but_keeps_the_account(web: Web) -> None:
    laptop, phone = web.as_role("dpo"), web.as_role("dpo")
    other = web.as_role("coordinator")
    with web.ctx.session() as db:
        assert len(users.list_sessions(db, "dora")) == 2
        assert users.revoke_sessions(web.ctx, db, "dora", actor="test") == 2
    assert laptop.get("/optouts").status_code == 303
    assert phone.get("/api/session").status_code == 401
    assert other.get("/optouts").status_code == 200
    assert web.login(web.client(), "dora").status_code == 303


def _clocked(make_web: Callable[..., Web], **web_settings: object) -> tuple[Web, FixedClock]:
    web = make_web(web=web_settings)
    clock = FixedClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    web.ctx.clock = clock
    return web, clock


def test_absolute_expiry_is_not_extended_by_use(make_web: Callable[..., Web]) -> None:
    web, clock = _clocked(make_web, session_max_age_hours=1, session_idle_minutes=30)
    client = web.as_role("coordinator")
    for _ in range(5):  # busy all the time: never idle
        clock.advance(timedelta(minutes=11))
        response = client.get("/optouts")
        assert response.status_code == 200
        assert not [h for h in response.headers.get_list("set-cookie")
                    if h.startswith(COOKIE_NAME)], "the session cookie was re-issued"
    clock.advance(timedelta(minutes=6))  # 61 minutes after sign-in
    assert client.get("/optouts").status_code == 303
    with web.ctx.session() as db:
        assert db.exec(select(WebSession)).all() == []  # the expired row was deleted


def test_idle_expiry(make_web: Callable[..., Web]) -> None:
    web, clock = _clocked(make_web, session_max_age_hours=8, session_idle_minutes=20)
    client = web.as_role("coordinator")
    clock.advance(timedelta(minutes=19))
    assert client.get("/optouts").status_code == 200  # used: the idle clock starts again
    clock.advance(timedelta(minutes=19))
    assert client.get("/optouts").status_code == 200
    clock.advance(timedelta(minutes=21))
    assert client.get("/optouts").status_code == 303


def test_login_rate_limit_per_user_name(make_web: Callable[..., Web]) -> None:
    web = make_web(web={"login_max_attempts": 3, "login_window_seconds": 600})
    for i in range(3):
        assert web.login(web.client(), "cora", f"wrong-password-{i}").status_code == 401
    blocked = web.login(web.client(), "cora", PASSWORD)
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    # Another account is blocked too: the same client address made the failures.
    assert web.login(web.client(), "dora").status_code == 429


def test_rate_limit_window_and_success_clear(make_web: Callable[..., Web]) -> None:
    web, clock = _clocked(make_web, login_max_attempts=2, login_window_seconds=60)
    throttle = web.app.state.throttle
    assert web.login(web.client(), "cora", "wrong-1").status_code == 401
    assert web.login(web.client(), " cora ", PASSWORD).status_code == 303  # clears the count
    # The address still holds the first failure: one more failure from it reaches its limit.
    assert web.login(web.client(), "cora", "wrong-2").status_code == 401
    assert web.login(web.client(), "ada", PASSWORD).status_code == 429
    wait = throttle.reserve("ada", "testclient")
    assert isinstance(wait, int) and 1 <= wait <= 60
    clock.advance(timedelta(seconds=61))
    assert web.login(web.client(), "ada", PASSWORD).status_code == 303


def test_the_limit_survives_a_restart_and_stores_no_name_or_address(
        make_web: Callable[..., Web]) -> None:
    from meeting_governance.web import create_app

    web = make_web(web={"login_max_attempts": 2, "login_window_seconds": 600})
    for i in range(2):
        web.login(web.client(), "someone@example.org", f"wrong-{i}")
    restarted = Web(web.ctx, create_app(web.ctx))
    assert restarted.login(restarted.client(), "someone@example.org", "x").status_code == 429
    with web.ctx.session() as db:
        keys = [row.key for row in db.exec(select(LoginAttempt)).all()]
    assert keys and all(len(k) == 64 and "@" not in k and "testclient" not in k for k in keys)
    web.ctx.engine.dispose()
    for path in web.ctx.settings.home.glob("meeting-governance.db*"):
        assert b"someone@example.org" not in path.read_bytes(), path


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
    "http:/evil.example", "javascript:alert(1)", "/\t/evil.example", "/\r\nLocation: //evil",
    "evil.example", " //evil.example", "///evil.example", "/" + "a" * 3000])
def test_open_redirect_after_sign_in_is_refused(web: Web, target: str) -> None:
    response = web.login(web.client(), "cora", next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/optouts"


def test_encoded_tricks_stay_on_this_site(web: Web) -> None:
    target = "/%0d%0aLocation:%20https://evil.example"
    response = web.login(web.client(), "cora", next_path=target)
    location = response.headers["location"]
    assert location == target and "\r" not in location and "\n" not in location


def test_local_next_is_kept(web: Web) -> None:
    client = web.client()
    first = client.get("/optouts/new?x=1")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Foptouts%2Fnew%3Fx%3D1"
    response = web.login(client, "cora", next_path="/optouts/new?x=1")
    assert response.headers["location"] == "/optouts/new?x=1"


def test_passwords_are_argon2id_hashes(web: Web) -> None:
    from meeting_governance.models import User

    with web.ctx.session() as db:
        stored = db.exec(select(User).where(User.name == "cora")).one().password_hash
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


def test_pre_session_cookie_is_encrypted_and_expires(make_web: Callable[..., Web]) -> None:
    web, clock = _clocked(make_web)
    client = web.client()
    page = client.get("/login")
    value = client.cookies[PRE_COOKIE_NAME]
    assert csrf_from(page.text) not in value  # encrypted, not merely signed
    clock.advance(timedelta(minutes=61))
    # An hour later the login form's token has expired: a fresh one is issued instead.
    assert web.login(client, "cora").status_code == 303
    stale = web.client()
    stale.cookies.set(PRE_COOKIE_NAME, value)
    response = stale.post("/login", data={"csrf_token": csrf_from(page.text), "name": "cora",
                                          "password": PASSWORD})
    assert response.status_code == 403
