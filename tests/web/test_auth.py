"""Sign-in, sessions and their attacks: cookie flags, fixation, brute force, open redirects."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meeting_governance import users
from meeting_governance.web.sessions import COOKIE_NAME, LoginRateLimiter

from .conftest import ACCOUNTS, PASSWORD, Web, csrf_from


def _set_cookie(response: object) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    cookies = [h for h in headers if h.startswith(COOKIE_NAME + "=")]
    assert cookies, "no session cookie was set"
    return cookies[-1]


def test_sign_in_and_out(web: Web) -> None:
    client = web.client()
    assert client.get("/optouts").status_code == 303
    response = web.login(client, "cora")
    assert response.status_code == 303 and response.headers["location"] == "/optouts"
    page = client.get("/optouts")
    assert page.status_code == 200 and "cora" in page.text
    out = client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/optouts").status_code == 303


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
    response = web.login(client, "cora")
    cookie = _set_cookie(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "max-age=7200" in attributes
    assert ("secure" in attributes) is secure


def test_session_id_changes_at_sign_in_no_fixation(web: Web) -> None:
    attacker = web.client()
    attacker.get("/login")
    planted = attacker.cookies[COOKIE_NAME]
    victim = web.client()
    victim.cookies.set(COOKIE_NAME, planted)
    response = web.login(victim, "cora")
    assert response.status_code == 303
    assert _set_cookie(response).split(";")[0] != f"{COOKIE_NAME}={planted}"
    assert victim.get("/optouts").status_code == 200
    # The cookie the attacker planted (and still holds) stays anonymous.
    assert attacker.get("/optouts").status_code == 303


def test_cookie_is_useless_after_sign_out(web: Web) -> None:
    client = web.as_role("coordinator")
    stolen = client.cookies[COOKIE_NAME]
    client.post("/logout", headers={"X-CSRF-Token": web.token(client)})
    thief = web.client()
    thief.cookies.set(COOKIE_NAME, stolen)
    assert thief.get("/optouts").status_code == 303


def test_forged_or_tampered_cookie_is_anonymous(web: Web) -> None:
    client = web.as_role("admin")
    value = client.cookies[COOKIE_NAME]
    other = web.client()
    other.cookies.set(COOKIE_NAME, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert other.get("/admin/users").status_code == 303
    other.cookies.set(COOKIE_NAME, "garbage")
    assert other.get("/optouts").status_code == 303


def test_disabled_account_loses_its_session(web: Web) -> None:
    client = web.as_role("coordinator")
    assert client.get("/optouts").status_code == 200
    with web.ctx.session() as db:
        users.disable_user(web.ctx, db, ACCOUNTS["coordinator"])
    assert client.get("/optouts").status_code == 303
    assert web.login(web.client(), ACCOUNTS["coordinator"]).status_code == 401


def test_login_rate_limit_per_user_name(make_web: Callable[..., Web]) -> None:
    web = make_web(web={"login_max_attempts": 3, "login_window_seconds": 600})
    for i in range(3):
        # Different addresses cannot be faked through TestClient, so vary the client only
        # by name in the next test; here one name, failures from one client.
        assert web.login(web.client(), "cora", f"wrong-password-{i}").status_code == 401
    blocked = web.login(web.client(), "cora", PASSWORD)
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    # Another account is blocked too: the same client address made the failures.
    assert web.login(web.client(), "dora").status_code == 429


def test_rate_limiter_counts_names_and_addresses_separately() -> None:
    now = [1000.0]
    limiter = LoginRateLimiter(2, 60, now=lambda: now[0])
    limiter.failed("cora", "10.0.0.1")
    limiter.failed("cora", "10.0.0.2")
    assert limiter.retry_after("CORA ", "10.0.0.3") > 0   # the name, from anywhere
    assert limiter.retry_after("dora", "10.0.0.1") == 0   # one failure from this address
    limiter.failed("eve", "10.0.0.1")
    assert limiter.retry_after("dora", "10.0.0.1") > 0    # the address, for any name
    now[0] += 61
    assert limiter.retry_after("cora", "10.0.0.1") == 0   # the window has passed


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
    from sqlmodel import select

    from meeting_governance.models import User

    with web.ctx.session() as db:
        stored = db.exec(select(User).where(User.name == "cora")).one().password_hash
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


def test_session_lifetime_counts_from_sign_in(web: Web) -> None:
    client = web.as_role("coordinator")
    for path in ("/optouts", "/optouts/new", "/api/session"):
        response = client.get(path)
        assert response.status_code == 200
        assert not [h for h in response.headers.get_list("set-cookie")
                    if h.startswith(COOKIE_NAME)], f"{path} re-issued the session cookie"


def test_expired_session_cookie_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as time_module

    from meeting_governance.web.sessions import SessionCodec, new_session

    codec = SessionCodec(b"k" * 32, max_age_s=3600)
    value = codec.dumps({**new_session(), "uid": 1})
    assert codec.loads(value) is not None
    real = time_module.time
    with monkeypatch.context() as patch:
        patch.setattr(time_module, "time", lambda: real() + 3602)
        assert codec.loads(value) is None
    other = SessionCodec(b"x" * 32, max_age_s=3600)
    assert other.loads(value) is None  # another installation's secret
