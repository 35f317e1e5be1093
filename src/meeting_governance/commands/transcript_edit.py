"""`transcript edit`: rectification of a stored transcript (a new version; the old one shredded).

The lead wires it into the `transcript` group: `transcript_edit.register(transcript_app)`
(same as `transcript_app.command("edit")(edit)`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from meeting_governance.cliutil import app_context, console, err_console
from meeting_governance.errors import InputError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import context, rectify, store
else:  # loaded when a command uses them: `--help` stays fast
    context = module("meeting_governance.context")
    rectify = module("meeting_governance.rectify")
    store = module("meeting_governance.store")

MAX_INPUT_BYTES = 20 * 1024 * 1024


def register(transcript_app: typer.Typer) -> None:
    transcript_app.command("edit")(edit)


def edit(
    ctx: typer.Context,
    transcript_id: str = typer.Argument(..., help=("Transcript id, or a unique prefix "
                                                   "of it (4+ characters; see `transcript list`).")),
    from_file: Path | None = typer.Option(
        None, "--from", exists=True, dir_okay=False, readable=True,
        help="The corrected text (as `edit` shows it: 'start --> end | words' per line) or a "
        "JSON document from `transcript export --format json`. Without it, $EDITOR opens."),
    reason: str = typer.Option("", "--reason", help="Why it is corrected (sealed with the new "
                               "version; the audit log records only that it was given)."),
    reference: str | None = typer.Option(None, "--reference",
                                         help="The rectification request's reference."),
) -> None:
    """Correct a transcript: the new version is sealed under a new data key and the old one is
    crypto-shredded, so one readable version remains; the audit log shows the correction."""
    app = app_context(ctx)
    if from_file is not None:
        if from_file.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{from_file.name}: larger than {MAX_INPUT_BYTES // 2**20} MB")
        text = from_file.read_text(encoding="utf-8")
        version = None
    else:
        with app.session() as session:
            row = store.get_transcript(session, transcript_id)
            content = store.read_content(app, session, row)
            version = row.version
            app.audit(session, "transcript.read", target_type="transcript", target_id=row.id,
                      reason="rectification", reference=reference)
        edited = _edit_in_editor(app.settings.staging_dir, rectify.editable_text(content))
        if edited is None:
            err_console.print("unchanged: nothing was stored.")
            raise typer.Exit(1)
        text = edited
    report = rectify.rectify(app, transcript_id, text, reason=reason, reference=reference,
                     expected_version=version)
    console.print(f"transcript {report.transcript_id}: version {report.from_version} → "
                  f"{report.to_version} ({report.segments_changed} segments changed); "
                  "the previous version was shredded.", markup=False)


def _edit_in_editor(staging: Path, text: str) -> str | None:
    """Run $EDITOR on a 0600 file in the private (0700) staging directory, removed afterwards:
    the plaintext is on disk only while the editor has it open. None if left unchanged."""
    context.private_dir(staging)
    path = staging / f"edit-{uuid.uuid4().hex}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        command = [*shlex.split(editor_command()), str(path)]
        try:
            status = subprocess.run(command, check=False).returncode
        except OSError as exc:
            raise InputError(f"could not run the editor {command[0]!r} ({exc.strerror}); set "
                             "$EDITOR or use --from FILE") from None
        if status != 0:
            raise InputError(f"the editor {command[0]!r} exited with status {status}; "
                             "nothing was stored")
        edited = path.read_text(encoding="utf-8")
    finally:
        _wipe(path)
    return None if edited == text else edited


def editor_command() -> str:
    """$VISUAL, then $EDITOR, then vi: what git and crontab do."""
    return os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"


def _wipe(path: Path) -> None:
    """Overwrite, then remove (best effort on journalling or copy-on-write file systems)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)
