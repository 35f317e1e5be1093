"""End to end against the emulator with the real model on real speech (SQLite and PostgreSQL).

What a user would check: opted-out and unknown meetings are never fetched, the transcript says
what was spoken, nothing personal is left in clear on disk or in the log, temporary media is
gone after success and after failure, and polling twice changes nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from meeting_governance import audit, formats
from meeting_governance.db import checkpoint
from meeting_governance.models import Recording, Transcript
from meeting_governance.optouts import OptOutRequest, add_optout
from meeting_governance.pipeline import SilentReporter, poll, process
from meeting_governance.store import read_content
from tests.conftest import scan_for

from .conftest import OPTED_MAIL, PERSONAL, SPOKEN, Env, recording_id

pytestmark = pytest.mark.slow


def _states(env: Env) -> dict[str, tuple[str, str]]:
    with env.app.session() as session:
        rows = session.exec(select(Recording)).all()
    return {r.graph_recording_id: (r.state, r.reason) for r in rows}


def _opt_out_dana(env: Env) -> None:
    with env.app.session() as session:
        # Registered with different case and spacing than Graph reports: must still match.
        add_optout(env.app, session, OptOutRequest(email=f"  {OPTED_MAIL.upper()} ",
                                                   name="Dana Optout"), actor="coordinator")


def test_pipeline_end_to_end(env: Env) -> None:
    _opt_out_dana(env)
    with env.graph() as graph:
        first = poll(env.app, graph)
        again = poll(env.app, graph)
    assert first.new == 5 and not first.errors
    assert again.new == 0  # delta: nothing new, no duplicates

    report = process(env.app, env.services, limit=20)
    states = _states(env)
    assert len(states) == 5
    assert states[recording_id("ok")][0] == "stored"
    assert states[recording_id("optout")] == ("blocked", "opted out (1 opt-out)")
    assert states[recording_id("unknown")][0] == "waiting"
    assert "without a matchable identity" in states[recording_id("unknown")][1]
    assert states[recording_id("noreport")][0] == "waiting"
    assert "no attendance report" in states[recording_id("noreport")][1]
    assert states[recording_id("corrupt")][0] == "failed"
    assert "TranscriptionError" in states[recording_id("corrupt")][1]
    assert len(report.outcomes) == 5

    # Media was requested only for the two recordings that passed the gate.
    fetched = env.content_requests()
    assert len(fetched) == 2
    assert not any("optout" in path or "unknown" in path or "noreport" in path for path in fetched)

    # The transcript holds the spoken words, readable through the vault only.
    with env.app.session() as session:
        row = session.exec(select(Transcript)).one()
        text = formats.to_txt(formats.from_json(json.dumps(read_content(env.app, session, row)))
                              .segments).lower()
    for word in SPOKEN:
        assert word in text
    assert row.retention_policy == "standard" and row.retain_until is not None

    # Temporary media is gone after the success and after the corrupt-media failure.
    assert list(env.settings.staging_dir.rglob("*")) == []

    # Nothing personal in clear: database file, WAL, logs, staging — the whole data dir.
    checkpoint(env.app.engine)
    needles = [s.encode() for s in [*SPOKEN, *PERSONAL]]
    assert scan_for(env.settings.home, needles) == []

    assert audit.verify(env.app.engine).ok


def test_failed_recording_stays_retryable_and_unknown_blocks_after_deadline(env: Env) -> None:
    with env.graph() as graph:
        poll(env.app, graph)
    process(env.app, env.services, limit=20)
    with env.app.session() as session:
        corrupt = session.exec(select(Recording).where(
            Recording.graph_recording_id == recording_id("corrupt"))).one()
        assert corrupt.attempts == 1 and corrupt.next_attempt_at is not None
        waiting = session.exec(select(Recording).where(Recording.state == "waiting")).all()
        # Move the clock past the deadline by moving the meeting back in time.
        from datetime import timedelta

        for rec in waiting:
            rec.meeting_end = rec.meeting_end - timedelta(days=60)
            rec.next_attempt_at = env.app.clock.now()
            session.add(rec)
    # The emulator would now answer again, but the deadline has passed: unknown means no.
    env.emulator.requests.clear()
    process(env.app, env.services, limit=20)
    states = _states(env)
    assert states[recording_id("unknown")][0] == "blocked"
    assert states[recording_id("unknown")][1].startswith("participants unknown")
    assert states[recording_id("noreport")][0] == "blocked"
    assert env.content_requests() == []


def test_optout_registered_during_download_still_wins(env: Env) -> None:
    """The second gate: an opt-out added while the media downloads blocks transcription.

    The coordinator acts from the pipeline's own progress hook (no patched function): when the
    first byte of a recording arrives, Casey opts out."""
    with env.graph() as graph:
        poll(env.app, graph)

    class OptOutMidDownload(SilentReporter):
        done = False

        def download(self, recording_id: int, done: int, total: int | None) -> None:
            if not self.done and done > 0:
                self.done = True
                with env.app.session() as session:
                    add_optout(env.app, session,
                               OptOutRequest(object_id="A1B2C3D4-0001-4000-8000-000000000001"),
                               actor="coordinator")

    env.services.reporter = OptOutMidDownload()
    process(env.app, env.services, limit=20)
    states = _states(env)
    # The first download is the weekly sync's (Casey attended): blocked after downloading.
    assert states[recording_id("ok")] == ("blocked", "opted out (1 opt-out)")
    # Dana's meeting has no opt-out in this test (and Casey was not in it): it goes through.
    assert states[recording_id("optout")][0] == "stored"
    with env.app.session() as session:
        stored = session.exec(select(Transcript)).all()
        ok = session.exec(select(Recording).where(
            Recording.graph_recording_id == recording_id("ok"))).one()
    assert stored and ok.id not in [t.recording_id for t in stored]
    # The blocked recording's media was fetched once and deleted at once.
    assert len([p for p in env.content_requests() if "ok" in p]) == 1
    assert list(env.settings.staging_dir.rglob("*")) == []


class RecordingReporter:
    """Keeps every progress callback, to check what the CLI's bar would show."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, str]] = []
        self.downloads: list[tuple[int, int, int | None]] = []
        self.audio: list[tuple[int, float, float]] = []

    def step(self, recording_id: int, step: str) -> None:
        self.steps.append((recording_id, step))

    def download(self, recording_id: int, done: int, total: int | None) -> None:
        self.downloads.append((recording_id, done, total))

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        self.audio.append((recording_id, done, total))


def test_long_steps_report_progress(env: Env) -> None:
    with env.graph() as graph:
        poll(env.app, graph)
    reporter = RecordingReporter()
    env.services.reporter = reporter
    process(env.app, env.services, limit=20)
    stored = [rid for rid, step in reporter.steps if step == "transcribe"]
    # No opt-out in this test: ok, optout (nobody opted out) and corrupt pass the gate.
    assert [step for _, step in reporter.steps].count("download") == 3
    assert stored
    ok = stored[0]
    sizes = [(done, total) for rid, done, total in reporter.downloads if rid == ok]
    assert sizes and [d for d, _ in sizes] == sorted(d for d, _ in sizes)
    assert sizes[-1][0] == sizes[-1][1]  # the whole file, as Graph announced it
    seconds = [(done, total) for rid, done, total in reporter.audio if rid == ok]
    assert seconds and seconds[-1][0] == pytest.approx(seconds[-1][1], abs=0.5)
    assert [d for d, _ in seconds] == sorted(d for d, _ in seconds)
