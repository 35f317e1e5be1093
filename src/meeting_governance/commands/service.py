"""Long-running services: the web app and the Graph emulator."""

from __future__ import annotations

from pathlib import Path

import typer

from meeting_governance.cliutil import app_context, console, long_running, state
from meeting_governance.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("emulator")(emulator)


def serve(ctx: typer.Context,
          host: str | None = typer.Option(None, "--host", help="Default: web.host."),
          port: int | None = typer.Option(None, "--port", help="Default: web.port.")) -> None:
    """Serve the opt-out form, the admin pages and the JSON API (Ctrl-C stops it)."""
    import uvicorn

    from meeting_governance.web import create_app
    from meeting_governance.web.app import UVICORN_OPTIONS

    long_running()
    app_ctx = app_context(ctx)
    app_ctx.vault  # noqa: B018 - opened now: a bad keyring stops the server here, not at a save
    web = app_ctx.settings.web
    bind_host = host or web.host
    bind_port = port if port is not None else web.port
    shown_host = f"[{bind_host}]" if ":" in bind_host else bind_host
    url = web.base_url or f"http://{shown_host}:{bind_port}"
    console.print(f"serving the opt-out form at {url}/login (Ctrl-C to stop)")
    # log_config=None: uvicorn keeps its hands off logging; logs.configure_logging (run by
    # app_context) already sends its loggers through the JSON formatter and the masking.
    uvicorn.run(create_app(app_ctx), host=bind_host, port=bind_port, log_level="warning",
                log_config=None,
                **UVICORN_OPTIONS)


def emulator(
    ctx: typer.Context,
    port: int = typer.Option(8443, "--port", min=0, max=65535, help="Loopback port (0: any)."),
    scenario: Path | None = typer.Option(
        None, "--scenario", help="Scenario TOML (default: the demo's, mg_emulator/scenarios/demo.toml)."),
    media: Path | None = typer.Option(None, "--media", help="Directory of the recordings' media "
                                      "(default: the demo clips shipped in the package)."),
) -> None:
    """Run the Microsoft Graph + sign-in emulator on loopback HTTPS (Ctrl-C stops it).

    It generates a throwaway CA and prints where its bundle is: point graph.ca_bundle at it,
    graph.authority_host and graph.base_url at the printed URLs. The emulator is not part of
    the product: install the demo extra (pip install -e '.[demo]') first."""
    from meeting_governance.demo import require_emulator

    require_emulator()
    long_running()
    from mg_emulator import ScenarioError, default_media_dir, default_scenario_path, run_emulator

    settings = state(ctx).settings()
    state_dir = settings.home / "emulator"
    try:
        run_emulator(port, scenario or default_scenario_path("demo"),
                     media or default_media_dir(), state_dir)
    except ScenarioError as exc:
        raise ConfigError(str(exc)) from None
