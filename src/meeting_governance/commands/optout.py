"""Opt-out registry and local web accounts."""

from __future__ import annotations

from pathlib import Path

import typer

from meeting_governance.commands._stub import not_built

optout_app = typer.Typer(help="The opt-out registry: add, list, revoke, import.",
                         no_args_is_help=True)
users_app = typer.Typer(help="Local accounts of the web app.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(optout_app, name="optout")
    app.add_typer(users_app, name="users")


@optout_app.command("add")
def optout_add(ctx: typer.Context,
               email: str | None = typer.Option(None, "--email"),
               object_id: str | None = typer.Option(None, "--object-id")) -> None:
    """Register an opt-out."""
    not_built("optout add")


@optout_app.command("list")
def optout_list(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List opt-outs."""
    not_built("optout list")


@optout_app.command("revoke")
def optout_revoke(ctx: typer.Context, optout_id: str = typer.Argument(...)) -> None:
    """Revoke an opt-out."""
    not_built("optout revoke")


@optout_app.command("import")
def optout_import(ctx: typer.Context, file: Path = typer.Argument(...)) -> None:
    """Import opt-outs from CSV."""
    not_built("optout import")


@users_app.command("add")
def users_add(ctx: typer.Context, name: str = typer.Argument(...),
              role: str = typer.Option(..., "--role")) -> None:
    """Add a local account."""
    not_built("users add")
