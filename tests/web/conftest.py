"""The real web app over a real (migrated) database, with one account per role.

`web_app` runs on SQLite; `web_app_any` on both engines (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meeting_governance import users
from meeting_governance.config import GraphSettings, load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.web import create_app
from mg_emulator import EmulatorKeys, EmulatorServer
from tests.conftest import DatabaseTemplate

from .directory_scenario import build_scenario

PASSWORD = "correct-horse-battery-staple"
ROLES = ("coordinator", "dpo", "admin")
ACCOUNTS = {"coordinator": "cora", "dpo": "dora", "admin": "ada"}
JOIN_LINK = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjA5YTQ4ZjMtY2VhMy00ZDU0LWE0NjEtN"
             "mE0ZjY3ZmM5Y2Ex%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd01"
             "1db47%22%2c%22Oid%22%3a%221e9d3b2a-0000-4c44-9a39-1234567890ab%22%7d")
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
_REVIEW_RE = re.compile(r'name="review_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def review_token_from(html: str) -> str:
    """The token a review page carries to the save (what a browser sends back)."""
    match = _REVIEW_RE.search(html)
    assert match, "no review token on the page"
    return match.group(1)


def add_accounts(ctx: AppContext) -> None:
    with ctx.session() as db:
        for role, name in ACCOUNTS.items():
            users.add_user(ctx, db, name, role, PASSWORD)


@dataclass
class Web:
    """The app under test and helpers to act as one of its users."""

    ctx: AppContext
    app: FastAPI
    _signed_in: dict[str, TestClient] = field(default_factory=dict)

    def signed_in(self, role: str) -> TestClient:
        """One client per role, signed in once (for property tests running many examples)."""
        if role not in self._signed_in:
            self._signed_in[role] = self.as_role(role)
        return self._signed_in[role]

    def client(self, **kwargs: object) -> TestClient:
        return TestClient(self.app, follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def login(self, client: TestClient, name: str, password: str = PASSWORD,
              next_path: str = "") -> object:
        token = csrf_from(client.get("/login").text)
        return client.post("/login", data={"name": name, "password": password,
                                           "csrf_token": token, "next": next_path})

    def as_role(self, role: str | None) -> TestClient:
        """A client signed in as the account of `role` (None: anonymous)."""
        client = self.client()
        if role is not None:
            response = self.login(client, ACCOUNTS[role])
            assert response.status_code == 303, response.text  # type: ignore[attr-defined]
        return client

    def token(self, client: TestClient) -> str:
        """The session's CSRF token, as the API hands it out."""
        return str(client.get("/api/session").json()["csrf_token"])


def _open(home: Path, template: DatabaseTemplate | None = None, **overrides: object) -> AppContext:
    settings = load_settings(None, home=home, **overrides)
    if template is not None:
        template.apply(settings)
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    add_accounts(ctx)
    return ctx


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, with test-sized cost: the suite signs in a few hundred times."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


@pytest.fixture
def make_web(tmp_path: Path, db_template: DatabaseTemplate) -> Iterator[Callable[..., Web]]:
    """Build a web app with configuration overrides (`web={...}`) on SQLite."""
    opened: list[Web] = []

    def build(**overrides: object) -> Web:
        ctx = _open(tmp_path / f"home{len(opened)}", db_template, **overrides)
        web = Web(ctx, create_app(ctx))
        opened.append(web)
        return web

    yield build
    for web in opened:
        web.app.state.graph.close()  # as the app's shutdown does (TestClient runs no lifespan)
        web.ctx.close()


@pytest.fixture
def web(make_web: Callable[..., Web]) -> Web:
    return make_web()


@pytest.fixture
def web_any(app: AppContext) -> Web:
    """The app on each database engine (the `app` fixture is parametrised over both)."""
    add_accounts(app)
    return Web(app, create_app(app))


# -- Microsoft Graph: the emulator's directory and meetings, spoken to over loopback HTTPS -------
@pytest.fixture(scope="session")
def graph_emulator_session(tmp_path_factory: pytest.TempPathFactory,
                           emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    media = tmp_path_factory.mktemp("web-graph-media")
    with EmulatorServer(build_scenario(), media_dir=media, keys=emulator_keys) as emulator:
        yield emulator


@pytest.fixture
def graph_emulator(graph_emulator_session: EmulatorServer) -> Iterator[EmulatorServer]:
    """The emulator with no faults, an empty request log and the scenario's directory."""
    emulator = graph_emulator_session
    emulator.faults.reset()
    emulator.requests.clear()
    emulator.reset_directory()
    yield emulator
    emulator.faults.reset()
    emulator.reset_directory()


def graph_config(emulator: EmulatorServer, **overrides: object) -> dict[str, object]:
    """The `graph` section of a configuration pointing at `emulator`."""
    settings = GraphSettings(**emulator.client_config(**overrides))
    return {"cloud": "custom", "tenant_id": settings.tenant_id, "client_id": settings.client_id,
            "client_secret": settings.client_secret, "authority_host": settings.authority_host,
            "base_url": settings.base_url, "ca_bundle": settings.ca_bundle,
            "organizers": list(settings.organizers)}


@pytest.fixture
def graph_web(make_web: Callable[..., Web], graph_emulator: EmulatorServer) -> Web:
    """The web app of an installation connected to Microsoft Graph (the emulator)."""
    return make_web(graph=graph_config(graph_emulator))
