"""Opt-out registry and local web accounts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from meeting_governance.cliutil import (
    app_context,
    console,
    err_console,
    group,
    print_json,
    print_table,
)
from meeting_governance.commands.directory import registration_for
from meeting_governance.errors import GovernanceError, InputError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import optouts
    from meeting_governance.context import AppContext
else:  # loaded when a command uses it: `--help` stays fast
    optouts = module("meeting_governance.optouts")

SEARCH_NOTE = ("Search finds exact matches only: a whole e-mail address, Entra object id, full "
               "name or opt-out id. The same person's other addresses are not searched.")
NO_MATCH_NOTE = ("No opt-out has exactly this e-mail address, object id, name or id. Search "
                 "finds exact matches only (names and addresses are stored as keyed hashes): "
                 "part of a name or address, another spelling or another address of the same "
                 "person finds nothing. This does not mean the person has no opt-out: try "
                 "their other addresses or object id, or `optout list` without --search.")

optout_app = group(help="The opt-out registry: add, list, revoke, import.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(optout_app, name="optout")


@optout_app.command("add")
def optout_add(
    ctx: typer.Context,
    email: str | None = typer.Option(None, "--email", help="E-mail address or UPN."),
    object_id: str | None = typer.Option(None, "--object-id", help="Entra object id (GUID)."),
    meeting: str | None = typer.Option(
        None, "--meeting", help="Only this meeting: its Graph meeting id or Teams join link."),
    valid_from: str | None = typer.Option(
        None, "--from", help="Start of a date range (YYYY-MM-DD or ISO 8601; UTC if no zone)."),
    valid_until: str | None = typer.Option(
        None, "--until", help="End of a date range (a bare date includes that whole day)."),
    name: str | None = typer.Option(None, "--name", help="The person's name (for display)."),
    note: str | None = typer.Option(None, "--note", help="A note (stored encrypted)."),
    covers: str = typer.Option("both", "--covers",
                               help="What it blocks: recording, transcription or both."),
    as_json: bool = typer.Option(False, "--json", help="Print the new opt-out as JSON."),
    check: bool = typer.Option(False, "--check", help="Only show whom the identity reaches in "
                               "the directory (and which meeting a link names); save nothing."),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the directory: match "
                                 "the identifier given until the daemon resolves it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Save without asking (asked only on a "
                             "terminal)."),
) -> None:
    """Register an opt-out: all meetings by default, one meeting, or a date range.

    The address or object id is first looked up in the directory (Graph `users`): what it
    reaches is shown — a member, a guest and their home domain, or "not found in the directory —
    matched by this address only" — and the opt-out then matches every identifier of that
    person (object id, mail, UPN, aliases, other mails, a guest's own address)."""
    if covers.strip().lower() not in optouts.COVERS:
        raise InputError(f"covers: expected recording, transcription or both (got {covers!r})")
    recording, transcription = optouts.COVERS[covers.strip().lower()]
    req = optouts.OptOutRequest(
        email=email, object_id=object_id, name=name, meeting=meeting,
        valid_from=optouts.parse_when(valid_from, field="from") if valid_from else None,
        valid_until=optouts.parse_when(valid_until, field="until", end=True) if valid_until else None,
        covers_recording=recording, covers_transcription=transcription, note=note)
    optouts.check(req)
    clean = optouts.cleaned_identity(req)
    app = app_context(ctx)
    registration, why_not = (None, "the directory was not asked (--offline)") if offline else \
        registration_for(app, email=clean[0], object_id=clean[1])
    out = err_console if as_json else console
    if registration is not None:
        out.print(f"Resolves to: {registration.who.line()}", markup=False, soft_wrap=True)
    else:
        out.print(f"Not resolved: {why_not}", markup=False, soft_wrap=True)
    _show_meeting(app, meeting, out)
    if check:
        return
    if not yes and sys.stdin.isatty() and not typer.confirm("Save this opt-out?", err=True):
        raise typer.Exit(1)
    with app.session() as session:
        view = optouts.add_optout(app, session, req, actor=app.actor, registration=registration)
    if as_json:
        print_json(view.to_json())
    else:
        console.print(f"opt-out {view.id} added. {view.summary()}", markup=False, soft_wrap=True)


def _show_meeting(app: AppContext, meeting: str | None, out: Console) -> None:
    """Which meeting a Teams link names (subject, time, organiser), when it can be found."""
    if not meeting or ("://" not in meeting and "/meet" not in meeting):
        return
    from meeting_governance.graph import GraphClient
    from meeting_governance.graph.meetings import find_meeting

    try:
        with GraphClient.from_settings(app.settings.graph) as graph:
            found = find_meeting(graph, meeting, app.settings.graph.organizers)
    except GovernanceError as exc:
        text = f"Meeting: not looked up ({exc.__class__.__name__})"
    else:
        text = f"Meeting: {found.describe()}" if found else \
            "Meeting: no organiser in scope has a meeting with this link (saved as given)"
    out.print(text, markup=False, soft_wrap=True)


@optout_app.command("list")
def optout_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    search: str | None = typer.Option(
        None, "--search", help="Exact only: a whole e-mail address, Entra object id, full name "
        "or opt-out id (case and spaces ignored). Part of a name or address, another spelling "
        "or the person's other addresses find nothing: no result does not mean no opt-out."),
    active: bool = typer.Option(False, "--active", help="Hide revoked opt-outs."),
    limit: int = typer.Option(200, "--limit", min=1, help="At most this many (newest first)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many first."),
) -> None:
    """List opt-outs, newest first (decrypted for display)."""
    app = app_context(ctx)
    with app.session() as session:
        views = optouts.list_optouts(app, session, search=search, include_revoked=not active,
                                     limit=limit, offset=offset)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    print_table("Opt-outs", ["id", "person", "scope", "covers", "from", "until", "state"],
                [[v.id, v.person, v.scope if v.scope != "meeting" else f"meeting {v.meeting}",
                  v.covers, v.valid_from, v.valid_until,
                  "active" if v.active else f"revoked {v.revoked_at:%Y-%m-%d}"] for v in views])
    if search is not None:
        # On stderr: the table stays the only output a script reads.
        err_console.print(SEARCH_NOTE if views else NO_MATCH_NOTE, markup=False, soft_wrap=True)


@optout_app.command("revoke")
def optout_revoke(
    ctx: typer.Context,
    optout_id: str = typer.Argument(..., help=("The opt-out's id, or a unique prefix of it "
                                               "(at least 4 characters; see `optout list`).")),
    reason: str | None = typer.Option(None, "--reason", help="Why (stored encrypted)."),
) -> None:
    """Revoke an opt-out; it stays in the history."""
    app = app_context(ctx)
    with app.session() as session:
        view = optouts.revoke_optout(app, session, optout_id, actor=app.actor, reason=reason)
    console.print(f"opt-out {view.id} revoked.", markup=False, soft_wrap=True)


@optout_app.command("import")
def optout_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV with a header: email, object_id, name, meeting, "
                                "from, until, covers, note.", exists=True, dir_okay=False,
                                readable=True),
) -> None:
    """Import opt-outs from CSV: all rows or, if any row is bad, none (named by line)."""
    if file.stat().st_size > optouts.MAX_CSV_BYTES:
        raise InputError(f"{file.name}: larger than {optouts.MAX_CSV_BYTES // (1024 * 1024)} MB; "
                         "split it into smaller files")
    data = file.read_bytes()
    app = app_context(ctx)
    try:
        with app.session() as session:
            views = optouts.import_csv(app, session, data, actor=app.actor)
    except InputError as exc:
        raise InputError(f"{file.name}: {exc}") from None
    console.print(f"imported {len(views)} opt-out{'s' if len(views) != 1 else ''} "
                  f"from {file.name}.", markup=False, soft_wrap=True)
