"""Retention, legal holds and the purge."""

from __future__ import annotations

import typer

from meeting_governance.commands._stub import not_built

hold_app = typer.Typer(help="Legal holds: set, release, list.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention policies.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)
    app.add_typer(hold_app, name="hold")
    app.add_typer(retention_app, name="retention")


def purge(ctx: typer.Context,
          dry_run: bool = typer.Option(False, "--dry-run"),
          as_of: str | None = typer.Option(None, "--as-of"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Purge every transcript that is due."""
    not_built("purge")


@hold_app.command("set")
def hold_set(ctx: typer.Context, transcript_id: str = typer.Argument(...),
             reason: str = typer.Option(..., "--reason")) -> None:
    """Put a transcript under legal hold."""
    not_built("hold set")


@hold_app.command("release")
def hold_release(ctx: typer.Context, transcript_id: str = typer.Argument(...),
                 reason: str = typer.Option(..., "--reason")) -> None:
    """Release a legal hold."""
    not_built("hold release")


@retention_app.command("apply")
def retention_apply(ctx: typer.Context, dry_run: bool = typer.Option(False, "--dry-run")) -> None:
    """Re-evaluate retention of stored transcripts."""
    not_built("retention apply")
