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
    with ctx.session() as db:
        assert users.authenticate(ctx, db, "cora", PASSWORD) is not None
        assert users.authenticate(ctx, db, "cora", PASSWORD + "x") is None
        assert users.authenticate(ctx, db, "nobody", PASSWORD) is None
        assert users.authenticate(ctx, db, "", "") is None
        users.disable_user(ctx, db, "cora")
        users.disable_user(ctx, db, "cora")  # idempotent
        assert users.authenticate(ctx, db, "cora", PASSWORD) is None
        with pytest.raises(NotFoundError):
            users.disable_user(ctx, db, "nobody")
        names = [u.name for u in users.list_users(db, include_disabled=False)]
    assert "cora" not in names and "ada" in names


def test_entra_users_never_sign_in_with_a_password(web: Web) -> None:
    ctx = web.ctx
    with ctx.session() as db:
        view = users.upsert_entra_user(ctx, db, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "dpo")
        again = users.upsert_entra_user(ctx, db, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "admin")
        assert view.id == again.id and again.role == "admin" and again.source == "entra"
        assert users.authenticate(ctx, db, view.name, "") is None


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
    assert disabled.exit_code == 0
    with web.ctx.session() as db:
        assert users.authenticate(web.ctx, db, "erin", "an-excellent-passphrase") is None
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
