"""Pipeline commands: poll, process, recordings, transcript, demo, daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from meeting_governance.commands._stub import not_built

recordings_app = typer.Typer(help="Recordings discovered from Graph and their states.",
                             no_args_is_help=True)
transcript_app = typer.Typer(help="Stored transcripts: list, show, export, edit.",
                             no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("daemon")(daemon)
    app.command("poll")(poll)
    app.command("process")(process)
    app.add_typer(recordings_app, name="recordings")
    app.add_typer(transcript_app, name="transcript")


def demo(ctx: typer.Context) -> None:
    """Start the Graph emulator with sample meetings and run the whole pipeline once."""
    not_built("demo")


def daemon(ctx: typer.Context) -> None:
    """Run poll, process and purge on their schedules until SIGTERM."""
    not_built("daemon")


def poll(ctx: typer.Context) -> None:
    """One discovery pass over the organisers in scope."""
    not_built("poll")


def process(ctx: typer.Context,
            limit: int = typer.Option(10, "--limit", min=1, help="At most this many.")) -> None:
    """Take pending recordings through the pipeline once."""
    not_built("process")


@recordings_app.command("list")
def recordings_list(ctx: typer.Context,
                    as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every recording with its state and reason."""
    not_built("recordings list")


@transcript_app.command("list")
def transcript_list(ctx: typer.Context,
                    as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stored transcripts (metadata only)."""
    not_built("transcript list")


@transcript_app.command("show")
def transcript_show(ctx: typer.Context, transcript_id: str = typer.Argument(...),
                    reason: str = typer.Option("", "--reason", help="Why (audited).")) -> None:
    """Decrypt and print one transcript (the access is audited)."""
    not_built("transcript show")


@transcript_app.command("export")
def transcript_export(ctx: typer.Context, transcript_id: str = typer.Argument(...),
                      fmt: str = typer.Option("vtt", "--format", help="vtt|srt|json|txt"),
                      out: Path | None = typer.Option(None, "--out", help="File to write.")) -> None:
    """Export one transcript as WebVTT, SRT, JSON or text."""
    not_built("transcript export")
