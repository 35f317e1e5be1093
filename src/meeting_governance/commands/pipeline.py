"""Pipeline commands: poll, process, recordings, transcript, demo, daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from meeting_governance import formats
from meeting_governance.cliutil import (
    app_context,
    console,
    err_console,
    group,
    long_running,
    print_json,
    print_table,
    state,
)
from meeting_governance.commands import transcript_edit, transcript_speakers
from meeting_governance.errors import InputError
from meeting_governance.exitcodes import ExitCode

TRANSCRIPT_ID_HELP = ("Transcript id, or a unique prefix of it (at least 4 characters; see "
                      "`transcript list`).")
recordings_app = group(help="Recordings discovered from Graph and their states.",
                             no_args_is_help=True)
transcript_app = group(help="Stored transcripts: list, show, export, edit (rectify).",
                             no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("daemon")(daemon)
    app.command("poll")(poll)
    app.command("process")(process)
    app.add_typer(recordings_app, name="recordings")
    app.add_typer(transcript_app, name="transcript")
    transcript_edit.register(transcript_app)
    transcript_speakers.register(transcript_app)


def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(False, "--keep", help="Keep the previous demo's data instead of "
                              "starting afresh."),
) -> None:
    """Start the Graph emulator with sample meetings, register opt-outs, run the whole pipeline
    once and print a summary. Uses its own data dir ($MG_HOME/demo) and configuration, never
    your real ones. Needs the emulator: pip install -e '.[demo]'."""
    from meeting_governance.demo import run_demo

    long_running()
    run_demo(state(ctx).settings(), keep=keep, console=console)


def daemon(
    ctx: typer.Context,
    workers: int | None = typer.Option(
        None, "--workers", min=0, max=64,
        help="Worker processes on this host, each with its own model (more than 1 needs "
             "PostgreSQL). Default: daemon.workers; 0 = auto: one per core on PostgreSQL "
             "(memory permitting), 1 on SQLite or with a GPU."),
) -> None:
    """Run poll, process and purge on their schedules until SIGTERM or SIGINT.

    Each worker's model gets transcription.cpu_threads threads, or its share of the cores when
    that is 0. The log says how many workers started and why."""
    from meeting_governance.daemon import run_daemon

    long_running()
    st = state(ctx)
    run_daemon(st.settings(), workers=workers, config_file=st.config, verbose=st.verbose)


def poll(ctx: typer.Context,
         as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
         restart: bool = typer.Option(
             False, "--restart", help="Drop every stored delta link and start discovery anew "
             "from graph.lookback_days (recordings already known are not duplicated).")) -> None:
    """One discovery pass over the organisers in scope (graph.organizers).

    A stored delta link that Graph rejects (expired or reset), that points at another host than
    graph.base_url, or that was built under another configuration is dropped and discovery
    starts a new round by itself; `--restart` does it by hand."""
    from meeting_governance.context import worker_identity
    from meeting_governance.errors import LockedError
    from meeting_governance.graph import GraphClient
    from meeting_governance.locks import exclusive
    from meeting_governance.pipeline import poll as run_poll

    app = app_context(ctx)
    if not app.settings.graph.organizers and not app.settings.graph.organizer_group_id:
        raise InputError("no organisers in scope: set graph.organizers in the config file or "
                         "MG_GRAPH__ORGANIZERS (comma-separated Entra object ids)")
    with exclusive(app, "poller", worker_identity()) as mine:
        if not mine:
            raise LockedError("another process is polling right now (the daemon's poller?); "
                              "one poller at a time — try again when it has finished")
        with GraphClient.from_settings(app.settings.graph) as graph:
            report = run_poll(app, graph, restart=restart)
    if as_json:
        print_json(report)
        return
    console.print(f"Polled {report.organizers} organisers: {report.new} new recordings "
                  f"({report.seen} listed).")
    if report.restarted:
        console.print(f"Discovery started a new round for {len(report.restarted)} organiser"
                      f"{'s' if len(report.restarted) != 1 else ''} (see the log for why).")
    for error in report.errors:
        err_console.print(f"[yellow]warning:[/] {error}")
    if report.errors:
        raise typer.Exit(1)


def process(
    ctx: typer.Context,
    limit: int = typer.Option(10, "--limit", min=1, help="At most this many recordings."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON."),
) -> None:
    """Take pending recordings through the pipeline once (gate, download, transcribe, store).

    Exits 0 when every recording taken went where it should (stored, blocked, waiting), 1 when
    any failed in this run (the table says whether a retry is pending), 2 for a configuration
    problem and 3 when the model, a configured path or the keyring is not usable (checked
    before anything is claimed or downloaded). A progress bar shows on a terminal only."""
    from meeting_governance.cliutil import BarReporter
    from meeting_governance.pipeline import Services
    from meeting_governance.pipeline import process as run_process
    from meeting_governance.preflight import run_preflight

    long_running()
    st = state(ctx)
    run_preflight(st.settings())
    app = app_context(ctx)
    services = Services.from_app(app)
    try:
        with BarReporter(enabled=not as_json) as reporter:
            services.reporter = reporter
            report = run_process(app, services, limit=limit, on_item=reporter.finished)
    finally:
        services.close()
    failed = [o for o in report.outcomes if o.state == "failed"]
    if as_json:
        print_json([o.__dict__ for o in report.outcomes])
    elif not report.outcomes:
        console.print("Nothing to process.")
    else:
        print_table("Processed", ["recording", "state", "reason", "transcript"],
                    [[o.recording_id, o.state, o.reason, o.transcript_id]
                     for o in report.outcomes])
    if failed:
        err_console.print(f"{len(failed)} of {len(report.outcomes)} recordings failed in this "
                          "run: see `meeting-governance recordings list --state failed`",
                          markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED)


@recordings_app.command("list")
def recordings_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only."),
    state_filter: str | None = typer.Option(None, "--state", help="Only this state."),
) -> None:
    """Every recording with its state, why, and its transcript id once stored.

    A `failed` recording reads "retry pending (attempt n/m, next at …)" while the pipeline
    will try it again by itself, and "given up" when it will not (`recordings retry ID`
    brings it back); `--json` has `retry_pending` and `given_up` beside `state`."""
    from sqlmodel import col, select

    from meeting_governance.models import Recording, Transcript
    from meeting_governance.states import status_of

    app = app_context(ctx)
    max_attempts = app.settings.daemon.max_attempts
    with app.session() as session:
        query = select(Recording).order_by(col(Recording.id))
        if state_filter:
            query = query.where(Recording.state == state_filter)
        rows = session.exec(query).all()
        transcripts = dict(session.exec(select(Transcript.recording_id, Transcript.id)
                                        .where(col(Transcript.recording_id).is_not(None))).all())
    data = []
    for r in rows:
        status = status_of(r.state, attempts=r.attempts, next_attempt_at=r.next_attempt_at,
                           max_attempts=max_attempts)
        data.append({"id": r.id, "recording_id": r.graph_recording_id, "meeting_id": r.meeting_id,
                     "organizer_id": r.organizer_id, "state": r.state, "status": status.label,
                     "retry_pending": status.retry_pending, "given_up": status.given_up,
                     "reason": r.reason, "attempts": r.attempts, "max_attempts": max_attempts,
                     "next_attempt_at": r.next_attempt_at,
                     "transcript_id": transcripts.get(r.id), "updated_at": r.updated_at})
    if as_json:
        print_json(data)
        return
    print_table("Recordings", ["id", "status", "reason", "transcript", "updated"],
                [[d["id"], d["status"], d["reason"], d["transcript_id"], d["updated_at"]]
                 for d in data])


@recordings_app.command("retry")
def recordings_retry(ctx: typer.Context,
                     recording: int = typer.Argument(..., help="Recording id (the `id` column).")) -> None:
    """Make a failed or waiting recording due again now (after fixing its cause)."""
    from meeting_governance.ids import UnknownIdError
    from meeting_governance.models import Recording

    app = app_context(ctx)
    with app.session() as session:
        rec = session.get(Recording, recording)
        if rec is None:
            raise UnknownIdError(f"recording {recording} does not exist: see "
                                 "`meeting-governance recordings list`")
        if rec.state not in ("failed", "waiting"):
            raise InputError(f"recording {recording} is {rec.state}; only failed or waiting "
                             "recordings can be retried")
        rec.next_attempt_at = app.clock.now()
        session.add(rec)
        app.audit(session, "recording.retry", target_type="recording", target_id=str(rec.id))
    console.print(f"Recording {recording} is due again; run `meeting-governance process`.")


@transcript_app.command("list")
def transcript_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout only."),
    include_purged: bool = typer.Option(False, "--include-purged", help="Also list tombstones."),
) -> None:
    """Stored transcripts (metadata only; nothing is decrypted)."""
    from sqlmodel import col, select

    from meeting_governance.models import Transcript

    app = app_context(ctx)
    with app.session() as session:
        query = select(Transcript).order_by(col(Transcript.created_at))
        if not include_purged:
            query = query.where(col(Transcript.purged_at).is_(None))
        rows = session.exec(query).all()
    data = [{"id": t.id, "recording_id": t.recording_id, "meeting_id": t.meeting_id,
             "meeting_start": t.meeting_start, "duration_s": round(t.duration_s, 1),
             "language": t.language, "model": t.model, "version": t.version,
             "retention_policy": t.retention_policy, "retain_until": t.retain_until,
             "legal_hold": t.legal_hold, "purged_at": t.purged_at} for t in rows]
    if as_json:
        print_json(data)
        return
    print_table("Transcripts", ["id", "meeting start", "seconds", "lang", "policy",
                                "retain until", "hold"],
                [[d["id"], d["meeting_start"], d["duration_s"], d["language"],
                  d["retention_policy"], d["retain_until"], d["legal_hold"]] for d in data])


def _read(ctx: typer.Context, transcript_id: str, reason: str) -> tuple[dict, str | None]:
    """The document with named speakers applied (name and how it was named; unnamed stay
    "Speaker N"), and the meeting subject; audited."""
    import json

    from meeting_governance import speakers
    from meeting_governance.store import get_transcript, read_content, subject_owner

    app = app_context(ctx)
    with app.session() as session:
        row = get_transcript(session, transcript_id)
        content = read_content(app, session, row)
        views = speakers.names_for(app, session, row, content)
        if any(v.name for v in views.values()):
            result = formats.from_json(json.dumps(content))
            named = speakers.named_segments(result.segments, views)
            content = {**content, "segments": [formats.segment_json(x) for x in named],
                       "speaker_notes": speakers.naming_notes(views)}
        subject = (app.vault.open_text(session, row.subject_item, owner=subject_owner(row.id))
                   if row.subject_item else None)
        app.audit(session, "transcript.read", target_type="transcript", target_id=row.id,
                  reason=reason or "not given")
    return content, subject


@transcript_app.command("show")
def transcript_show(
    ctx: typer.Context,
    transcript_id: str = typer.Argument(..., help=TRANSCRIPT_ID_HELP),
    reason: str = typer.Option("", "--reason", help="Why you read it (goes to the audit log)."),
) -> None:
    """Decrypt and print one transcript; the access is audited (who and why)."""
    content, subject = _read(ctx, transcript_id, reason)
    notes = content.pop("speaker_notes", [])
    result = formats.from_json(__import__("json").dumps(content))
    for note in notes:
        console.print(f"# {note}", markup=False, highlight=False)
    if subject:
        console.print(f"[bold]{subject}[/]", markup=True, highlight=False)
    console.print(f"language {result.language}, {result.duration:.1f} s, model {result.model}")
    for seg in result.segments:
        who = f"{seg.speaker}: " if seg.speaker else ""
        console.print(f"[{formats.vtt_timestamp(seg.start)}] {who}{seg.text}", markup=False,
                      highlight=False)


@transcript_app.command("export")
def transcript_export(
    ctx: typer.Context,
    transcript_id: str = typer.Argument(..., help=TRANSCRIPT_ID_HELP),
    fmt: str = typer.Option("vtt", "--format", help="vtt | srt | json | txt"),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (default: stdout)."),
    reason: str = typer.Option("", "--reason", help="Why you export it (audited)."),
) -> None:
    """Export one transcript as WebVTT (what Teams uses), SRT, JSON or text (audited)."""
    import json

    if fmt not in formats.FORMATS:
        raise InputError(f"--format {fmt!r} is not supported; allowed: {', '.join(formats.FORMATS)}")
    content, _ = _read(ctx, transcript_id, reason or f"export {fmt}")
    notes = content.pop("speaker_notes", [])
    text = formats.render(formats.from_json(json.dumps(content)), fmt, notes)
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        import os

        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        err_console.print(f"wrote {out} (mode 0600: it holds plaintext — delete it when done)")
