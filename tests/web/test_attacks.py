"""The attacker suite for sessions and sign-in, against the real app on real databases:

- a cookie captured before sign-out, replayed after a restart and against a second `serve`
  process (both real processes on one database, SQLite and PostgreSQL);
- the keep-alive trick: calling `/login/entra/callback` every few seconds to stretch a session
  past its maximum age (Entra sign-in disabled and enabled);
- a concurrent brute force: 30 wrong passwords at once at a limit of 5, over real HTTP;
- spoofed `X-Forwarded-For` headers from loopback.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from argon2 import PasswordHasher

from meeting_governance import users
from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext
from meeting_governance.web import create_app
from meeting_governance.web.sessions import COOKIE_NAME

from .browser import free_port, serve
from .conftest import ACCOUNTS, PASSWORD, Web, add_accounts, csrf_from


def _sign_in(base: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"name": name, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 303, response.text
    return client


def _replay(base: str, cookie: str) -> int:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as thief:
        return thief.get("/api/session", headers={"cookie": f"{COOKIE_NAME}={cookie}"}).status_code


# -- restarts ---------------------------------------------------------------------------------
def test_sign_out_is_remembered_across_a_restart(web: Web) -> None:
    before = web.as_role("coordinator")
    kept = web.as_role("dpo")
    stolen = before.cookies[COOKIE_NAME]
    kept_cookie = kept.cookies[COOKIE_NAME]
    before.post("/logout", headers={"X-CSRF-Token": web.token(before)})
    # "Restart": a new process would open the database afresh and build a new app.
    settings = web.ctx.settings
    web.ctx.close()
    ctx = AppContext.open(settings)
    try:
        restarted = Web(ctx, create_app(ctx))
        thief = restarted.client()
        thief.cookies.set(COOKIE_NAME, stolen)
        assert thief.get("/api/session").status_code == 401
        survivor = restarted.client()
        survivor.cookies.set(COOKIE_NAME, kept_cookie)
        assert survivor.get("/api/session").json()["name"] == ACCOUNTS["dpo"]  # not signed out
    finally:
        ctx.close()


# -- two real `serve` processes -------------------------------------------------------------
@contextmanager
def _serve_process(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "meeting_governance", "serve", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_sign_out_in_one_process_ends_the_session_in_another(app: AppContext) -> None:
    add_accounts(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(app.settings.home)
    env["MG_DATABASE__URL"] = app.settings.database_url
    with _serve_process(env) as first, _serve_process(env) as second:
        client = _sign_in(first, ACCOUNTS["coordinator"])
        cookie = client.cookies[COOKIE_NAME]
        assert _replay(second, cookie) == 200  # one session, valid in both processes
        # Sign out through the second process (its own CSRF token for the same session).
        token = httpx.get(f"{second}/api/session", headers={"cookie": f"{COOKIE_NAME}={cookie}"},
                          timeout=30).json()["csrf_token"]
        out = httpx.post(f"{second}/logout", headers={"cookie": f"{COOKIE_NAME}={cookie}",
                                                      "X-CSRF-Token": token}, timeout=30)
        assert out.status_code == 303
        assert _replay(first, cookie) == 401
        assert _replay(second, cookie) == 401
        # `users sessions revoke` from the command line ends a session both processes serve.
        dpo = _sign_in(second, ACCOUNTS["dpo"])
        assert _replay(first, dpo.cookies[COOKIE_NAME]) == 200
        revoke = subprocess.run([sys.executable, "-m", "meeting_governance", "users", "sessions",
                                 "revoke", ACCOUNTS["dpo"]], env=env, capture_output=True,
                                text=True, timeout=120)
        assert revoke.returncode == 0, revoke.stderr
        assert _replay(first, dpo.cookies[COOKIE_NAME]) == 401
        assert _replay(second, dpo.cookies[COOKIE_NAME]) == 401
        # So does `users disable`.
        admin = _sign_in(first, ACCOUNTS["admin"])
        disable = subprocess.run([sys.executable, "-m", "meeting_governance", "users", "disable",
                                  ACCOUNTS["admin"]], env=env, capture_output=True, text=True,
                                 timeout=120)
        assert disable.returncode == 0, disable.stderr
        assert _replay(second, admin.cookies[COOKIE_NAME]) == 401
        for c in (client, dpo, admin):
            c.close()


# -- the keep-alive trick ---------------------------------------------------------------------
@pytest.mark.parametrize("entra_enabled", [False, True])
def test_the_callback_cannot_keep_a_session_alive(make_web: Callable[..., Web],
                                                  entra_enabled: bool) -> None:
    entra = ({"entra_enabled": True, "entra_client_id": "c", "entra_client_secret": "s"}
             if entra_enabled else {})
    web = make_web(graph={"cloud": "custom", "authority_host": "https://127.0.0.1:9",
                   "base_url": "https://127.0.0.1:9/v1.0", "tenant_id": "t"},
                   web={"session_max_age_hours": 1, "session_idle_minutes": 30, **entra})
    clock = FixedClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    web.ctx.clock = clock
    client = web.as_role("coordinator")
    for _ in range(int(3600 / 5)):  # every five seconds for the session's whole lifetime
        clock.advance(timedelta(seconds=5))
        response = client.get("/login/entra/callback?code=x&state=y")
        assert response.status_code == 400
        assert not [h for h in response.headers.get_list("set-cookie")
                    if h.startswith(COOKIE_NAME + "=") and "Max-Age=0" not in h]
    clock.advance(timedelta(seconds=5))
    assert client.get("/api/session").status_code == 401
    assert client.get("/optouts").status_code == 303


# -- a concurrent brute force -----------------------------------------------------------------
class CountingHasher(PasswordHasher):
    """argon2id at its real cost, counting how many passwords it checked."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


def _attempt(base: str, name: str, password: str, headers: dict[str, str],
             start: threading.Barrier, results: list[int]) -> None:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=120) as client:
        token = csrf_from(client.get("/login").text)
        start.wait()
        response = client.post("/login", data={"name": name, "password": password,
                                               "csrf_token": token}, headers=headers)
        results.append(response.status_code)


def _storm(base: str, count: int, *, name: Callable[[int], str] = lambda i: "cora",
           headers: Callable[[int], dict[str, str]] = lambda i: {}) -> list[int]:
    results: list[int] = []
    start = threading.Barrier(count)
    threads = [threading.Thread(target=_attempt, args=(base, name(i), f"wrong-guess-{i}",
                                                        headers(i), start, results))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == count
    return results


@pytest.mark.slow
def test_concurrent_brute_force_gets_exactly_the_limit(app: AppContext,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    add_accounts(app)
    hasher = CountingHasher()
    monkeypatch.setattr(users, "_hasher", hasher)
    app.settings.web.login_max_attempts = 5
    app.settings.web.login_window_seconds = 600
    caplog.set_level(logging.WARNING)
    web = Web(app, create_app(app))
    with serve(web.app) as base:
        results = _storm(base, 30)
        assert sorted(results) == [401] * 5 + [429] * 25, results
        assert hasher.checked == 5
        # The right password is refused too while the name is at its limit...
        with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as client:
            token = csrf_from(client.get("/login").text)
            blocked = client.post("/login", data={"name": "cora", "password": PASSWORD,
                                                  "csrf_token": token})
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        # ...and a command-line write never waited on a password check.
        with app.session() as db:
            users.add_user(app, db, "during-storm", "coordinator", PASSWORD)
    assert hasher.checked == 5
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "database is locked" not in text and "Traceback" not in text


def test_spoofed_forwarded_for_from_loopback_is_ignored(web: Web) -> None:
    """No trusted proxy configured: X-Forwarded-For cannot give each guess a new address."""
    web.ctx.settings.web.login_max_attempts = 3
    with serve(create_app(web.ctx)) as base:
        results = _storm(base, 8, name=lambda i: f"name{i}",
                         headers=lambda i: {"X-Forwarded-For": f"198.51.100.{i + 1}"})
    assert sorted(results) == [401] * 3 + [429] * 5


def test_a_trusted_proxy_gives_each_client_its_own_count(make_web: Callable[..., Web]) -> None:
    web = make_web(web={"login_max_attempts": 2, "trusted_proxies": ["127.0.0.1"]})
    with serve(web.app) as base:
        for client_ip in ("203.0.113.7", "203.0.113.8"):
            results = _storm(base, 3, name=lambda i, ip=client_ip: f"{ip}-name{i}",
                             headers=lambda i, ip=client_ip: {"X-Forwarded-For": ip})
            assert sorted(results) == [401, 401, 429], client_ip
        # A client that forges the left end of the chain is still the address the proxy saw
        # (the right-most one not itself a trusted proxy): it is already at its limit.
        forged = _storm(base, 1, name=lambda i: "fresh-name",
                        headers=lambda i: {"X-Forwarded-For": "192.0.2.99, 203.0.113.7"})
        assert forged == [429]


def test_trusted_proxies_must_be_addresses(make_web: Callable[..., Web]) -> None:
    from meeting_governance.errors import ConfigError

    for bad in (["*"], ["proxy.example"], ["10.0.0.0/33"]):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            make_web(web={"trusted_proxies": bad})
