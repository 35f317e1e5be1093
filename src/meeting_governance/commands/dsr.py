"""Data-subject requests (the DPO's desk) and anonymised statistics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from meeting_governance.cliutil import app_context, console, err_console, group, print_json, print_table
from meeting_governance.commands.directory import OFFLINE_HELP, identity_for, registration_for
from meeting_governance.errors import InputError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import dsr
    from meeting_governance.context import AppContext
    from meeting_governance.people import PersonIdentity
else:  # loaded when a command uses it: `--help` stays fast
    dsr = module("meeting_governance.dsr")

dsr_app = group(help="Data-subject requests: open, export, erase, withdraw, list, close.",
                      no_args_is_help=True)

_EMAIL = "The person's e-mail address or UPN."
_OID = "The person's Entra object id (GUID)."
_REF = "The request's reference in the log (default: a new one, like DSR-2026-0001)."


def register(app: typer.Typer) -> None:
    app.add_typer(dsr_app, name="dsr")
    app.command("stats")(stats)


@dsr_app.command("open")
def dsr_open(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="access | erasure | rectification | withdrawal"),
    email: str | None = typer.Option(None, "--email", help=_EMAIL),
    object_id: str | None = typer.Option(None, "--object-id", help=_OID),
    received: str | None = typer.Option(None, "--received", help="When it was received "
                                        "(YYYY-MM-DD or ISO 8601; default: now)."),
    reference: str | None = typer.Option(None, "--reference", help=_REF),
) -> None:
    """Log a request as it arrives; it is due `dsr.due_days` later."""
    from meeting_governance.clock import parse_instant

    who = dsr.subject(email, object_id)  # validate before touching the database
    try:
        at: datetime | None = parse_instant(received) if received else None
    except ValueError:
        raise InputError("--received: not a date (expected YYYY-MM-DD or ISO 8601)") from None
    app = app_context(ctx)
    with app.session() as session:
        row = dsr.open_request(app, session, kind, email=who.email, object_id=who.object_id,
                               reference=reference, received_at=at)
    console.print(f"request {row.reference} ({row.kind}) logged; due "
                  f"{row.due_at:%Y-%m-%d}.", markup=False)


@dsr_app.command("export")
def dsr_export(
    ctx: typer.Context,
    email: str | None = typer.Option(None, "--email", help=_EMAIL),
    object_id: str | None = typer.Option(None, "--object-id", help=_OID),
    out: Path | None = typer.Option(None, "--out", help="The zip to write (default: "
                                    "REFERENCE.zip here; never overwritten)."),
    reference: str | None = typer.Option(None, "--reference", help=_REF),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    full_transcript: bool = typer.Option(False, "--full-transcript", help="Give the whole "
                                         "transcripts, other participants' words included "
                                         "(needs --reason; recorded with the request)."),
    reason: str | None = typer.Option(None, "--reason", help="Why the full transcript is "
                                      "given (kept sealed in the request log)."),
) -> None:
    """Access: a zip of everything held about a person (opt-outs, transcripts of the meetings
    they attended, as JSON and WebVTT), under every identifier the directory knows for them.
    Each transcript holds the person's own turns in full and the rest as "another participant
    spoke (start–end)", unless --full-transcript --reason "…". Every decryption is audited."""
    who = dsr.subject(email, object_id)
    if full_transcript and not (reason or "").strip():
        raise InputError("--full-transcript needs --reason: say why this person gets the other "
                         "participants' words too (it is kept, sealed, with the request)")
    if (reason or "").strip() and not full_transcript:
        raise InputError("--reason goes with --full-transcript (the default export needs none)")
    app = app_context(ctx)
    identity = identity_for(app, email=who.email, object_id=who.object_id, offline=offline)
    err_console.print(identity.note, markup=False)
    target = out
    if target is None:
        if reference:
            target = Path(f"{reference}.zip")
        else:
            with app.session() as session:
                row = dsr.open_request(app, session, "access", email=who.email,
                                       object_id=who.object_id)
            reference, target = row.reference, Path(f"{row.reference}.zip")
    report = dsr.export_person(app, identity, email=who.email, object_id=who.object_id,
                               out=target, reference=reference,
                               full_transcript=full_transcript, reason=reason)
    if as_json:
        print_json(report)
        return
    console.print(f"{report.reference}: wrote {report.path} ({report.size} bytes, mode 0600): "
                  f"{len(report.transcript_ids)} transcripts, {report.optouts} opt-outs.",
                  markup=False)
    err_console.print("It holds plaintext personal data: hand it over securely, then delete it.")


@dsr_app.command("erase")
def dsr_erase(
    ctx: typer.Context,
    email: str | None = typer.Option(None, "--email", help=_EMAIL),
    object_id: str | None = typer.Option(None, "--object-id", help=_OID),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    reference: str | None = typer.Option(None, "--reference", help=_REF),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    redact: bool = typer.Option(False, "--redact", help="Remove only this person's turns "
                                "from each transcript and keep the others' words (a new "
                                "version; the old one destroyed); uncertain turns follow "
                                "dsr.redact_uncertain."),
) -> None:
    """Erasure: crypto-shred the transcripts of every meeting the person attended, under any of
    their identifiers (as the purge does), except those under legal hold, which are listed
    with their reasons. With --redact, only the person's own turns go."""
    who = dsr.subject(email, object_id)
    app = app_context(ctx)
    identity = identity_for(app, email=who.email, object_id=who.object_id, offline=offline)
    err_console.print(identity.note, markup=False)
    if redact:
        _redact(app, identity, who, reference=reference, dry_run=dry_run, yes=yes,
                as_json=as_json, kind="erasure")
        return
    preview = dsr.erase_person(app, identity, email=who.email, object_id=who.object_id,
                               reference=reference, dry_run=True)
    if dry_run:
        _show_erasure(preview, as_json)
        return
    if not yes:
        _show_erasure(preview, False, to=err_console)
        if not typer.confirm(f"Erase {len(preview.erased)} transcript"
                             f"{'s' if len(preview.erased) != 1 else ''} for good "
                             f"({len(preview.held)} under legal hold are kept)?", err=True):
            raise typer.Exit(1)
    report = dsr.erase_person(app, identity, email=who.email, object_id=who.object_id,
                              reference=reference)
    _show_erasure(report, as_json)


def _redact(app: AppContext, identity: PersonIdentity, who: dsr.Subject, *,
            reference: str | None, dry_run: bool, yes: bool, as_json: bool, kind: str) -> None:
    preview = dsr.redact_person(app, identity, email=who.email, object_id=who.object_id,
                                reference=reference, dry_run=True, kind=kind)
    if dry_run:
        _show_redaction(preview, as_json)
        return
    if not yes:
        _show_redaction(preview, False, to=err_console)
        if not typer.confirm(f"Redact this person from {len(preview.redacted)} transcript"
                             f"{'s' if len(preview.redacted) != 1 else ''}?", err=True):
            raise typer.Exit(1)
    report = dsr.redact_person(app, identity, email=who.email, object_id=who.object_id,
                               reference=reference, kind=kind)
    _show_redaction(report, as_json)


def _show_redaction(report: dsr.RedactionReport, as_json: bool, *,
                    to: Console | None = None) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    out = to or console
    verb = "would redact" if report.dry_run else "redacted"
    head = f"{report.reference}: " if report.reference else "dry run: "
    out.print(f"{head}{verb} the person from {len(report.redacted)} transcripts "
              f"({sum(r.own_turns for r in report.redacted)} of their segments; policy for "
              f"uncertain turns: {report.policy}, {report.uncertain_removed} removed, "
              f"{report.uncertain_kept} kept); {len(report.unchanged)} had nothing of theirs; "
              f"{len(report.held)} under legal hold left as they are.", markup=False)
    for r in report.redacted:
        out.print(f"  {r.transcript_id}: version {r.from_version} -> {r.to_version}, "
                  f"{r.own_turns} own, {r.uncertain_removed} uncertain removed, "
                  f"{r.uncertain_kept} uncertain kept, {r.kept} of others kept", markup=False)
    if report.receipt:
        out.print(f"receipt: {report.receipt}", markup=False)


def _show_erasure(report: dsr.ErasureReport, as_json: bool, *, to: Console | None = None) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    out = to or console
    verb = "would erase" if report.dry_run else "erased"
    head = f"{report.reference}: " if report.reference else "dry run: "
    out.print(f"{head}{verb} {len(report.erased)} transcripts; removed the person from "
              f"{report.recording_links_removed} recording participant lists"
              f"{' (would)' if report.dry_run else ''}.", markup=False)
    for held in report.held:
        reasons = "; ".join(f"{h.kind} hold {h.hold_id}: {h.reason or '(no reason recorded)'}"
                            for h in held.holds)
        out.print(f"  kept (legal hold) {held.transcript_id}: {reasons}", markup=False)
    for note in report.notes:
        out.print(note, markup=False)


@dsr_app.command("withdraw")
def dsr_withdraw(
    ctx: typer.Context,
    email: str | None = typer.Option(None, "--email", help=_EMAIL),
    object_id: str | None = typer.Option(None, "--object-id", help=_OID),
    name: str | None = typer.Option(None, "--name", help="The person's name (for display)."),
    reference: str | None = typer.Option(None, "--reference", help=_REF),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the directory: the "
                                 "opt-out matches the identity given until the daemon "
                                 "resolves it."),
    redact_past: bool = typer.Option(False, "--redact-past", help="Also remove the person's "
                                     "turns from past transcripts (as `dsr erase --redact`), "
                                     "with a receipt."),
) -> None:
    """Withdrawal of consent: an opt-out from every meeting (recording and transcription),
    matching every identifier the directory knows for the person; with --redact-past, their
    turns also leave the transcripts already made."""
    who = dsr.subject(email, object_id)
    app = app_context(ctx)
    # Resolved before anything changes: a directory that cannot be read stops it all here.
    identity = identity_for(app, email=who.email, object_id=who.object_id,
                            offline=offline) if redact_past else None
    registration, why_not = (None, "--offline") if offline else \
        registration_for(app, email=who.email, object_id=who.object_id)
    err_console.print(f"Resolves to: {registration.who.line()}" if registration
                      else f"Not resolved: {why_not}", markup=False)
    report = dsr.withdraw_consent(app, registration, email=who.email, object_id=who.object_id,
                                  name=name, reference=reference)
    console.print(f"{report.reference}: opt-out {report.optout_id} added (all meetings).",
                  markup=False)
    if identity is not None:
        _redact(app, identity, who, reference=report.reference, dry_run=False, yes=True,
                as_json=False, kind="withdrawal")


@dsr_app.command("list")
def dsr_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only."),
    overdue: bool = typer.Option(False, "--overdue", help="Only open requests past their due date."),
    open_only: bool = typer.Option(False, "--open", help="Only open requests."),
) -> None:
    """The request log, soonest due first, with what is overdue."""
    app = app_context(ctx)
    with app.session() as session:
        views = dsr.list_requests(app, session, open_only=open_only, overdue=overdue)
    if as_json:
        print_json([v.as_dict() for v in views])
        return
    print_table("Data-subject requests", ["reference", "kind", "received", "due", "status"],
                [[v.reference, v.kind, f"{v.received_at:%Y-%m-%d}", f"{v.due_at:%Y-%m-%d}",
                  (("OVERDUE" if v.overdue else f"open, {v.days_left} days left")
                   if v.status == "open" else v.status)
                  + (" (full transcript given)" if v.full_transcript else "")] for v in views])


@dsr_app.command("decisions")
def dsr_decisions(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The request's reference (see `dsr list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only."),
) -> None:
    """The DPO's recorded choices for a request (full transcript given, and why); the sealed
    reasons are decrypted, and that is audited."""
    app = app_context(ctx)
    views = dsr.decisions(app, reference)
    if as_json:
        print_json([asdict(v) for v in views])
        return
    if not views:
        console.print(f"{reference}: no decision recorded (the export gave the person's own "
                      "turns only).", markup=False)
    for v in views:
        console.print(f"{v.reference}: full transcript chosen by {v.decided_by} on "
                      f"{v.decided_at:%Y-%m-%d %H:%M} UTC — reason: {v.reason or '(shredded)'}",
                      markup=False)


@dsr_app.command("close")
def dsr_close(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The request's reference (see `dsr list`)."),
    status: str = typer.Option("closed", "--status", help="completed | closed"),
) -> None:
    """Close a request handled outside this tool (answered, rejected, withdrawn)."""
    app = app_context(ctx)
    with app.session() as session:
        row = dsr.close_request(app, session, reference, status=status)
    console.print(f"request {row.reference} {row.status}.", markup=False)


def stats(ctx: typer.Context,
          as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only.")) -> None:
    """Anonymised statistics by month: no identities; cells below stats.min_cell suppressed."""
    from meeting_governance.stats import COUNTS, statistics

    app = app_context(ctx)
    rows = statistics(app)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    print_table("Statistics (counts below "
                f"{app.settings.stats.min_cell} are shown as <{app.settings.stats.min_cell})",
                ["month", "seen", "transcribed", "blocked: opted out", "blocked: unknown",
                 "blocked: other", "purged", "audio hours"],
                [[r.month, *(r.shown(getattr(r, c)) for c in COUNTS), r.shown(r.audio_hours)]
                 for r in rows])
