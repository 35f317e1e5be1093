"""`transcript speakers`: the speaker labels of a transcript, how each was named, and the DPO's
naming of a label after listening (audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from meeting_governance.cliutil import (
    app_context,
    console,
    err_console,
    print_json,
    print_table,
)
from meeting_governance.errors import InputError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import speakers
else:  # loaded when the command runs: `--help` stays fast
    speakers = module("meeting_governance.speakers")


def register(transcript_app: typer.Typer) -> None:
    transcript_app.command("speakers")(speakers_command)


def speakers_command(
    ctx: typer.Context,
    transcript_id: str = typer.Argument(..., help="Transcript id, or a unique prefix of it (at least 4 "
                                       "characters; see `transcript list`)."),
    name: str | None = typer.Option(None, "--name", help="The label to name, as listed "
                                    "(e.g. 'Speaker 2'); needs --person."),
    person: str | None = typer.Option(None, "--person", help="The participant it is: e-mail "
                                      "address/UPN or Entra object id of someone on the "
                                      "meeting's participant list."),
    note: str = typer.Option("", "--note", help="What you heard that names them (kept with "
                             "the link; no names of others)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only."),
) -> None:
    """List the transcript's speaker labels with the name each carries and how it was named
    (attendance, teams_timeline, dpo; unnamed stay "Speaker N"), or, with --name and
    --person, name a label as a DPO who listened (audited; replaces automatic namings)."""
    app = app_context(ctx)
    if (name is None) != (person is None):
        raise InputError("naming a label needs both --name LABEL and --person ADDRESS")
    if name is not None and person is not None:
        link = speakers.assign(app, transcript_id, name, person, note=note)
        (err_console if as_json else console).print(
            f"{link.label} of transcript {link.transcript_id} is now named by dpo (audited).",
            markup=False)
    views = speakers.speakers(app, transcript_id)
    if as_json:
        print_json([{"label": v.label, "name": v.name, "method": v.method,
                     "evidence": v.evidence, "assigned_by": v.assigned_by} for v in views])
        return
    if not views:
        console.print(f"Transcript {transcript_id} has no speaker labels (it was transcribed "
                      "without diarization: diarization.enabled).", markup=False)
        return
    print_table(f"Speakers of {transcript_id}", ["label", "shown as", "named by", "evidence"],
                [[v.label, v.shown, v.method, v.evidence] for v in views])
