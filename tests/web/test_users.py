"""Local accounts: the data layer and the `users` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from meeting_governance import users
from meeting_governance.commands import users as users_cmd
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError

from .conftest import PASSWORD, Web


@pytest.mark.parametrize(("name", "role", "password", "message"), [
    ("bob", "root", PASSWORD, "unknown role"),
    ("cora", "dpo", PASSWORD, "already exists"),
    ("bob", "dpo", "short", "too short"),
    ("bob", "dpo", "bob-bob-bob-bob", "too easy"),
    ("bob", "dpo", "a" * 20, "too easy"),
    ("../bob", "dpo", PASSWORD, "user name"),
    ("", "dpo", PASSWORD, "user name"),
])
def test_add_user_refuses_bad_input(web: Web, name: str, role: str, password: str,
                                    message: str) -> None:
    with web.ctx.session() as db, pytest.raises(InputError, match=message):
        users.add_user(web.ctx, db, name, role, password)


def test_authenticate_and_disable(web: Web) -> None:
    ctx = web.ctx
    assert users.authenticate(ctx, "cora", PASSWORD) is not None
    assert users.authenticate(ctx, "cora", PASSWORD + "x") is None
    assert users.authenticate(ctx, "nobody", PASSWORD) is None
    assert users.authenticate(ctx, "", "") is None
    with ctx.session() as db:
        users.disable_user(ctx, db, "cora")
        users.disable_user(ctx, db, "cora")  # idempotent
    assert users.authenticate(ctx, "cora", PASSWORD) is None
    with ctx.session() as db:
        with pytest.raises(NotFoundError):
            users.disable_user(ctx, db, "nobody")
        names = [u.name for u in users.list_users(db, include_disabled=False)]
    assert "cora" not in names and "ada" in names


def test_password_check_holds_no_database_lock(web: Web) -> None:
    """argon2 runs between two short transactions: a writer is never kept waiting by it."""
    from argon2 import PasswordHasher

    seen: list[bool] = []

    class Watching(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            # While the hash is checked, another connection can write at once (SQLite would
            # answer "database is locked" after busy_timeout if a transaction were open).
            import sqlite3

            path = web.ctx.settings.home / "meeting-governance.db"
            conn = sqlite3.connect(path, timeout=0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                seen.append(True)
            finally:
                conn.close()
            return super().verify(hash, password)

    original = users._hasher
    users._hasher = Watching(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        assert users.authenticate(web.ctx, "cora", PASSWORD) is not None
        assert users.authenticate(web.ctx, "cora", "wrong") is None
    finally:
        users._hasher = original
    assert seen == [True, True]


def test_entra_users_never_sign_in_with_a_password(web: Web) -> None:
    ctx = web.ctx
    with ctx.session() as db:
        view = users.upsert_entra_user(ctx, db, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "dpo")
        again = users.upsert_entra_user(ctx, db, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "admin")
        assert view.id == again.id and again.role == "admin" and again.source == "entra"
    assert users.authenticate(ctx, view.name, "") is None


@pytest.fixture
def cli(web: Web, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """The `users` group in a Typer app of its own (cli.py registers it in the product)."""
    monkeypatch.setenv("MG_HOME", str(web.ctx.settings.home))
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Test root."""

    users_cmd.register(app)
    return app


def test_users_commands(cli: typer.Typer, web: Web) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "erin", "--role", "dpo", "--password-stdin"],
                          input="an-excellent-passphrase\n")
    assert added.exit_code == 0, added.output
    prompted = runner.invoke(cli, ["users", "add", "finn", "--role", "admin"],
                             input="another-fine-passphrase\nanother-fine-passphrase\n")
    assert prompted.exit_code == 0, prompted.output
    assert "another-fine-passphrase" not in prompted.output
    listed = runner.invoke(cli, ["users", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["erin"]["role"] == "dpo" and rows["finn"]["role"] == "admin"
    assert "password_hash" not in rows["erin"]
    disabled = runner.invoke(cli, ["users", "disable", "erin"])
    assert disabled.exit_code == 0 and "its sessions have ended" in disabled.output
    assert users.authenticate(web.ctx, "erin", "an-excellent-passphrase") is None
    bad = runner.invoke(cli, ["users", "add", "gus", "--role", "king", "--password-stdin"],
                        input="whatever-long-enough\n")
    assert bad.exit_code != 0


def test_the_audit_log_names_no_password(web: Web, tmp_path: Path) -> None:
    from sqlmodel import select

    from meeting_governance.models import AuditEntry

    with web.ctx.session() as db:
        details = " ".join(e.details for e in db.exec(select(AuditEntry)).all())
    assert PASSWORD not in details and "argon2" not in details
    assert isinstance(web.ctx, AppContext)


def test_sessions_commands(cli: typer.Typer, web: Web) -> None:
    runner = CliRunner()
    laptop, phone = web.as_role("dpo"), web.as_role("dpo")
    listed = runner.invoke(cli, ["users", "sessions", "list", "dora", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert len(rows) == 2 and {r["method"] for r in rows} == {"local"}
    cookie = laptop.cookies["mg_session"]
    assert all(cookie not in json.dumps(r) and len(r["ref"]) == 12 for r in rows)
    revoked = runner.invoke(cli, ["users", "sessions", "revoke", "dora"])
    assert revoked.exit_code == 0 and "ended 2 session(s) of dora" in revoked.output
    assert laptop.get("/optouts").status_code == 303
    assert phone.get("/api/session").status_code == 401
    assert json.loads(runner.invoke(cli, ["users", "sessions", "list", "dora", "--json"]).stdout) == []
    unknown = runner.invoke(cli, ["users", "sessions", "revoke", "nobody"])
    assert unknown.exit_code != 0
    for args in (["users", "sessions", "--help"], ["users", "sessions", "list", "--help"],
                 ["users", "sessions", "revoke", "--help"]):
        assert runner.invoke(cli, args).exit_code == 0


def test_the_unknown_name_hash_is_made_when_the_web_app_starts(web: Web) -> None:
    """A sign-in with an unknown name verifies against a dummy hash so that it costs as long
    as a known one; the app makes that hash as it starts, so even the first miss does."""
    from meeting_governance.web import create_app

    users.dummy_hash.cache_clear()
    create_app(web.ctx)
    assert users.dummy_hash.cache_info().currsize == 1
    assert users.authenticate(web.ctx, "nobody-by-this-name", PASSWORD) is None
    assert users.dummy_hash.cache_info().misses == 1  # made once, at the start
