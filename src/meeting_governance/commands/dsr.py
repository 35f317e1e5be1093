"""Data-subject requests and anonymised statistics."""

from __future__ import annotations

import typer

from meeting_governance.commands._stub import not_built

dsr_app = typer.Typer(help="Data-subject requests: export, erase, list.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dsr_app, name="dsr")
    app.command("stats")(stats)


@dsr_app.command("export")
def dsr_export(ctx: typer.Context, email: str | None = typer.Option(None, "--email"),
               object_id: str | None = typer.Option(None, "--object-id")) -> None:
    """Export everything held about a person."""
    not_built("dsr export")


@dsr_app.command("erase")
def dsr_erase(ctx: typer.Context, email: str | None = typer.Option(None, "--email"),
              object_id: str | None = typer.Option(None, "--object-id")) -> None:
    """Erase a person's transcripts."""
    not_built("dsr erase")


def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Anonymised statistics."""
    not_built("stats")
