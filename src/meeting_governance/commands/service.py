"""Long-running services: the web app and the Graph emulator."""

from __future__ import annotations

from pathlib import Path

import typer

from meeting_governance.commands._stub import not_built


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("emulator")(emulator)


def serve(ctx: typer.Context, host: str | None = typer.Option(None, "--host"),
          port: int | None = typer.Option(None, "--port")) -> None:
    """Serve the opt-out form and the admin pages."""
    not_built("serve")


def emulator(ctx: typer.Context, port: int = typer.Option(8443, "--port"),
             scenario: Path | None = typer.Option(None, "--scenario")) -> None:
    """Run the Microsoft Graph + sign-in emulator on loopback."""
    not_built("emulator")
