"""`meeting-governance users …`: local accounts of the web app."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from meeting_governance.cliutil import app_context, console, group, print_json, print_table
from meeting_governance.errors import InputError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import users
else:  # loaded when a command uses it: `--help` stays fast
    users = module("meeting_governance.users")

users_app = group(help="Local accounts of the web app (coordinator, dpo, admin).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line, so `printf '%s\n' "$PW" | … --password-stdin` works; never an argument,
        # where it would show in `ps` and shell history.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("no password on standard input")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sign-in name (letters, digits, . _ -)."),
    role: str = typer.Option(..., "--role", help="coordinator | dpo | admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of stdin."),
) -> None:
    """Add a local account; prompts twice for its password (hidden)."""
    users.validate_name(name)
    users.validate_role(role)
    password = _read_password(password_stdin)
    app = app_context(ctx)
    with app.session() as session:
        view = users.add_user(app, session, name, role, password)
    console.print(f"added user {view.name} ({view.role})")


@users_app.command("list")
def users_list(ctx: typer.Context,
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List accounts, disabled ones included."""
    app = app_context(ctx)
    with app.session() as session:
        rows = users.list_users(session)
    if as_json:
        print_json([{"name": u.name, "role": u.role, "source": u.source,
                     "created_at": u.created_at, "disabled_at": u.disabled_at} for u in rows])
        return
    print_table("Users", ["name", "role", "source", "created", "disabled"],
                [(u.name, u.role, u.source, u.created_at, u.disabled_at) for u in rows])


@users_app.command("disable")
def users_disable(ctx: typer.Context,
                  name: str = typer.Argument(..., help="The account's name (see `users list`).")
                  ) -> None:
    """Disable an account: it can no longer sign in, and its open sessions end at once in
    every `serve` process."""
    app = app_context(ctx)
    with app.session() as session:
        view = users.disable_user(app, session, name)
    console.print(f"disabled user {view.name}; its sessions have ended", markup=False)


sessions_app = group(help="Signed-in web sessions of an account: list them, or end them all.",
                     no_args_is_help=True)
users_app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(ctx: typer.Context,
                  name: str = typer.Argument(..., help="The account's name (see `users list`)."),
                  as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The account's signed-in sessions: when each began, was last used and expires."""
    app = app_context(ctx)
    with app.session() as session:
        rows = users.list_sessions(session, name)
    if as_json:
        print_json([{"ref": r.ref, "method": r.method, "created_at": r.created_at,
                     "last_seen_at": r.last_seen_at, "expires_at": r.expires_at} for r in rows])
        return
    print_table(f"Sessions of {name}", ["ref", "sign-in", "began", "last used", "expires"],
                [(r.ref, r.method, r.created_at, r.last_seen_at, r.expires_at) for r in rows])


@sessions_app.command("revoke")
def sessions_revoke(ctx: typer.Context,
                    name: str = typer.Argument(..., help="The account's name (see `users list`).")
                    ) -> None:
    """End every session of the account now, in every `serve` process (a lost laptop, a
    shared computer). The account stays enabled: use `users disable` to stop sign-ins too."""
    app = app_context(ctx)
    with app.session() as session:
        ended = users.revoke_sessions(app, session, name)
    console.print(f"ended {ended} session(s) of {name}", markup=False)
