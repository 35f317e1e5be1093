"""Revision 0016 (web sessions, sign-in attempts) upgrades a database that is already in use:
accounts, opt-outs and the audit chain made under 0002 survive, and the people can sign in."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from meeting_governance import audit, users
from meeting_governance.config import Settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import alembic_config, current_revision, head_revision, make_engine
from meeting_governance.web import create_app
from meeting_governance.web.sessions import COOKIE_NAME

from .conftest import PASSWORD, csrf_from


def test_upgrade_from_0002_keeps_data_and_signs_people_in(settings: Settings) -> None:
    # A release-0002 installation with data: an account, an opt-out, audit entries.
    initialise(settings, settings.home / "config.toml")
    engine = make_engine(settings.database_url)
    command.downgrade(alembic_config(engine), "0002")
    assert current_revision(engine) == "0002"
    assert "web_session" not in inspect(engine).get_table_names()
    hashed = users._hasher.hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO app_user (name, role, password_hash, source, created_at) "
                          "VALUES ('olga', 'dpo', :h, 'local', :t)"),
                     {"h": hashed, "t": datetime(2025, 1, 2, tzinfo=UTC)})
    engine.dispose()
    ctx = AppContext.open(settings)  # migrates, as `serve` and every command do at start
    try:
        assert current_revision(ctx.engine) == head_revision()
        tables = set(inspect(ctx.engine).get_table_names())
        assert {"web_session", "login_attempt", "app_user"} <= tables
        with ctx.session() as db:
            olga = [u for u in users.list_users(db) if u.name == "olga"]
        assert olga and olga[0].role == "dpo"
        client = TestClient(create_app(ctx), follow_redirects=False)
        token = csrf_from(client.get("/login").text)
        answer = client.post("/login", data={"name": "olga", "password": PASSWORD,
                                             "csrf_token": token})
        assert answer.status_code == 303 and client.cookies.get(COOKIE_NAME)
        assert client.get("/api/session").json()["name"] == "olga"
        assert audit.verify(ctx.engine).ok
    finally:
        ctx.close()
    # And back down: the two tables go, the accounts stay.
    engine = make_engine(settings.database_url)
    command.downgrade(alembic_config(engine), "0002")
    assert not {"web_session", "login_attempt"} & set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT role FROM app_user WHERE name = 'olga'")).scalar() == "dpo"
    engine.dispose()
