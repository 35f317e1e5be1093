"""`meeting-governance`: the command tree operators script against (see PRODUCT.md's contract).

Every command has `--help`; list commands take `--json` and then print JSON on stdout only.
Errors of our own type become one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from meeting_governance import __version__
from meeting_governance.cliutil import (
    discard_created_homes,
    err_console,
    quick_exit,
    quick_start,
    state,
)
from meeting_governance.commands import (
    admin,
    dsr,
    optout,
    pipeline,
    retention,
    service,
    users,
)
from meeting_governance.errors import GovernanceError
from meeting_governance.exitcodes import ExitCode

app = typer.Typer(
    rich_markup_mode="markdown",
    name="meeting-governance",
    help="Transcribe Teams recordings locally, honour every opt-out, keep transcripts "
    "encrypted and purge them provably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"meeting-governance {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", envvar="MG_CONFIG", help="TOML config file (default: $MG_HOME/config.toml "
        "if present, else built-in defaults).", show_default=False),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also write logs to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Meeting Governance."""
    st = state(ctx)
    st.config = config
    st.verbose = verbose
    ctx.call_on_close(st.close)


admin.register(app)
pipeline.register(app)
optout.register(app)
retention.register(app)
dsr.register(app)
service.register(app)
users.register(app)


def main() -> None:
    """Console-script entry point: our errors become one line and an exit code (`exitcodes`).

    A command that fails leaves no data directory behind that it created itself."""
    quick_start()
    try:
        app()
    except GovernanceError as exc:
        discard_created_homes()
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        discard_created_homes()
        err_console.print("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            discard_created_homes()
        raise
    except BaseException:
        discard_created_homes()
        raise
    finally:
        quick_exit()
