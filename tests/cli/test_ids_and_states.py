"""Ids people can use (full in pipes and JSON, unique prefixes accepted) and states that read
right (retry pending vs given up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import NotFoundError, UsageError
from meeting_governance.exitcodes import ExitCode
from meeting_governance.ids import MIN_PREFIX, UnknownIdError, resolve_id
from meeting_governance.models import Recording, Transcript
from meeting_governance.states import status_of
from meeting_governance.store import get_transcript

from ..retention.helpers import make_transcript

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _cli(app: AppContext, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_") and k != "COLUMNS"}
    env.update(MG_HOME=str(app.settings.home), MG_DATABASE__URL=app.settings.database_url,
               HF_HUB_OFFLINE="1", PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
               **extra)
    return subprocess.run([sys.executable, "-m", "meeting_governance", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def _with_ids(app: AppContext, monkeypatch: pytest.MonkeyPatch, *ids: str) -> None:
    """Store real transcripts under ids we choose, so that their prefixes collide."""
    import uuid
    from types import SimpleNamespace

    from meeting_governance import store

    chosen = iter(ids)  # store.py names new transcripts with uuid4: only there is it replaced
    monkeypatch.setattr(store, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(next(chosen))))
    for tid in ids:
        assert make_transcript(app, words=f"words {tid[:8]}").id == tid
    monkeypatch.undo()


def test_prefixes_resolve_when_unique_and_fail_clearly_otherwise(
        app: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = "abcd1111" + "0" * 24, "abcd2222" + "0" * 24
    _with_ids(app, monkeypatch, a, b)
    with app.session() as session:
        column = col(Transcript.id)
        assert resolve_id(session, column, a, kind="transcript", listing="transcript list") == a
        assert resolve_id(session, column, "abcd1", kind="t", listing="x") == a
        assert get_transcript(session, "abcd2").id == b
        with pytest.raises(UsageError, match="2 transcript ids start with 'abcd'"):
            resolve_id(session, column, "abcd", kind="transcript", listing="transcript list")
        with pytest.raises(UnknownIdError, match="does not exist"):
            resolve_id(session, column, "ffff", kind="transcript", listing="transcript list")
        with pytest.raises(UnknownIdError, match=f"at least {MIN_PREFIX} characters"):
            resolve_id(session, column, "abc", kind="transcript", listing="transcript list")
        with pytest.raises(UnknownIdError):  # LIKE wildcards are not wildcards here
            resolve_id(session, column, "abc%", kind="transcript", listing="transcript list")
    assert issubclass(UnknownIdError, NotFoundError)
    assert UnknownIdError.exit_code == UsageError.exit_code == ExitCode.USAGE


def test_the_cli_takes_prefixes_and_prints_whole_ids_in_a_pipe(
        app: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = "abcd1111" + "9" * 24, "abcd2222" + "9" * 24
    _with_ids(app, monkeypatch, a, b)
    listed = _cli(app, "transcript", "list")  # not a terminal, COLUMNS unset
    assert listed.returncode == 0, listed.stderr
    assert a in listed.stdout and b in listed.stdout and "…" not in listed.stdout
    ambiguous = _cli(app, "hold", "set", "abcd", "--reason", "litigation")
    assert ambiguous.returncode == 2
    assert "2 transcript ids start with 'abcd'" in ambiguous.stderr
    held = _cli(app, "hold", "set", "abcd2", "--reason", "litigation")
    assert held.returncode == 0, held.stderr
    holds = json.loads(_cli(app, "hold", "list", "--json").stdout)
    assert len(holds) == 1 and b in json.dumps(holds)
    missing = _cli(app, "transcript", "export", "0000ffff")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_recordings_list_shows_transcript_ids_and_reads_failures_right(app: AppContext) -> None:
    row = make_transcript(app, with_recording=True)
    later = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    with app.session() as session:
        session.add(Recording(graph_recording_id="r-pending", meeting_id="m2", organizer_id="o",
                              state="failed", attempts=2, next_attempt_at=later,
                              reason="GraphError: 503"))
        session.add(Recording(graph_recording_id="r-given-up", meeting_id="m3", organizer_id="o",
                              state="failed", attempts=5, reason="TranscriptionError: corrupt"))
    done = _cli(app, "recordings", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["recording_id"]: r for r in json.loads(done.stdout)}
    stored = next(r for r in rows.values() if r["state"] == "stored")
    assert stored["transcript_id"] == row.id
    maximum = app.settings.daemon.max_attempts
    assert rows["r-pending"]["retry_pending"] and not rows["r-pending"]["given_up"]
    assert rows["r-pending"]["status"] == (f"retry pending (attempt 2/{maximum}, "
                                           "next at 2030-01-01T09:00:00+00:00)")
    assert rows["r-given-up"]["given_up"] and "recordings retry" in rows["r-given-up"]["status"]
    table = _cli(app, "recordings", "list")
    assert row.id in table.stdout and "retry pending" in table.stdout
    assert "given up" in table.stdout


def test_status_of_reads_each_state() -> None:
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert status_of("stored", attempts=0, next_attempt_at=None, max_attempts=5).label == "stored"
    waiting = status_of("waiting", attempts=0, next_attempt_at=at, max_attempts=5)
    assert waiting.label.startswith("waiting (next check at 2026-05-01T12:00:00")
    pending = status_of("failed", attempts=1, next_attempt_at=at, max_attempts=5)
    assert pending.retry_pending and "attempt 1/5" in pending.label
    gone = status_of("failed", attempts=5, next_attempt_at=None, max_attempts=5)
    assert gone.given_up and gone.label.startswith("given up")


def test_a_dry_run_purge_says_would_purge(app: AppContext) -> None:
    make_transcript(app)
    done = _cli(app, "purge", "--dry-run", "--json", "--as-of", "2031-01-01T00:00:00Z")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True and report["would_purge"] == 1 and report["purged"] == 0


def test_bad_input_on_new_entry_points_is_a_usage_error_that_changes_nothing(
        app: AppContext, tmp_path: Path) -> None:
    """Bad arguments exit 2 (README "Exit codes": fix the argument), with the fix named, and
    leave no file and no audit entry behind."""
    from meeting_governance.models import AuditEntry

    with app.session() as session:
        audited = len(session.exec(select(AuditEntry)).all())
    out = tmp_path / "bundle.zip"
    cases = [
        (["dsr", "export", "--email", "ada@example.org", "--full-transcript", "--out", str(out)],
         "--full-transcript needs --reason"),
        (["dsr", "export", "--email", "ada@example.org", "--reason", "why", "--out", str(out)],
         "--reason goes with --full-transcript"),
        (["transcript", "speakers", "abcd", "--name", "Speaker 1"],
         "needs both --name LABEL and --person ADDRESS"),
        (["transcript", "speakers", "abcdef"], "no transcript id starts with it"),
        (["optout", "add", "--email", "not-an-address"], "address"),
    ]
    for args, message in cases:
        run = _cli(app, *args)
        assert run.returncode == ExitCode.USAGE, (args, run.stderr)
        assert message in run.stderr, (args, run.stderr)
    assert not out.exists()
    with app.session() as session:
        assert len(session.exec(select(AuditEntry)).all()) == audited
