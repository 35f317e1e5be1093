"""Processing: one leased recording through every state before the store, and the worker loop.

`process_one` resolves the participants and decides (gate), before any byte of media is
requested; downloads into a private staging directory; decides again on participants read
again; transcribes locally (with speaker turns when diarization is on); reads Teams' speaker
timeline for naming; then hands over to `storing`. A failure is recorded with its attempt count
and next retry (exponential backoff, `daemon.retry_base_seconds`, at most six hours apart) and
the staging directory is removed whatever happens. `process` is the loop: lease the next items
(`claiming`), process each, one bad recording never stopping the rest.

May import Graph, the model (`transcribe`, loaded here, not by the other modules), the gate,
`claiming` and `storing`; never `discovery`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.diarization import Diarization
from meeting_governance.epochs import Owner
from meeting_governance.errors import GovernanceError, GraphError, TranscriptionError
from meeting_governance.gate import Decision, Verdict
from meeting_governance.gate_inputs import gate, remember_participants, who_was_there
from meeting_governance.graph import GraphClient, download_recording
from meeting_governance.graph.transcripts import speaker_timelines
from meeting_governance.models import Recording
from meeting_governance.observability import METRICS
from meeting_governance.pipeline.claiming import (
    LeaseKeeper,
    Outcome,
    ProcessReport,
    _load,
    next_batch,
    release,
    worker_name,
)
from meeting_governance.pipeline.storing import _store
from meeting_governance.states import State, transition
from meeting_governance.transcribe import Transcriber

log = logging.getLogger(__package__)  # the package's one logger (see discovery)


class Reporter(Protocol):
    """Where long steps report progress (the CLI draws a bar; the daemon reports nothing).

    Callbacks get only the recording id and sizes: never a name, subject or address."""

    def step(self, recording_id: int, step: str) -> None:
        """A new step started ("download" or "transcribe")."""

    def download(self, recording_id: int, done: int, total: int | None) -> None:
        """Bytes received so far, of `total` when Graph said."""

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        """Seconds of audio transcribed so far, of `total`."""


class SilentReporter:
    """Reports nothing (the daemon, the tests)."""

    def step(self, recording_id: int, step: str) -> None:
        return None

    def download(self, recording_id: int, done: int, total: int | None) -> None:
        return None

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        return None


@dataclass
class Services:
    """The pipeline's I/O edges: Graph and the model, created once per worker process."""

    graph_factory: Callable[[], GraphClient]
    transcriber: Transcriber
    reporter: Reporter | None = None
    _graph: GraphClient | None = field(default=None, repr=False)

    @property
    def graph(self) -> GraphClient:
        if self._graph is None:
            self._graph = self.graph_factory()
        return self._graph

    @classmethod
    def from_app(cls, app: AppContext) -> Services:
        """Built at the start of `process`, `daemon` and `demo`: the model and device are checked
        now (not loaded), and a speaker encoder that is enabled but missing or damaged stops them
        here too, before any recording is claimed or downloaded."""
        settings = app.settings
        diarization = Diarization.from_settings(settings.diarization)
        transcriber = Transcriber(settings.transcription, diarization=diarization)
        transcriber.check()
        return cls(graph_factory=lambda: GraphClient.from_settings(settings.graph),
                   transcriber=transcriber)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None


def _media_dir(app: AppContext, recording_id: int) -> Path:
    return app.settings.staging_dir / f"rec-{recording_id}"


def _remove_media(app: AppContext, recording_id: int) -> None:
    shutil.rmtree(_media_dir(app, recording_id), ignore_errors=True)


SETTLED = (State.STORED, State.BLOCKED, State.PURGED)


def clear_abandoned_media(app: AppContext) -> int:
    """Remove the staging directories no worker will come back for; returns how many.

    A worker killed between committing a recording's end state and deleting its media leaves
    the media behind, and nothing would ever lease that recording again. So each `process` run
    first removes the media of recordings that are settled (stored, blocked, purged) or gone.
    Media of a recording that can still be leased is left alone: a worker that leases it
    clears the folder itself, and the purge removes anything older than
    `download.staging_max_age_hours` — so a folder is never removed under a worker's feet."""
    root = app.settings.staging_dir
    if not root.is_dir():
        return 0
    dirs = {int(d.name.removeprefix("rec-")): d for d in root.iterdir()
            if d.is_dir() and d.name.startswith("rec-") and d.name[4:].isdigit()}
    if not dirs:
        return 0
    with app.session() as session:
        states = dict(session.exec(select(Recording.id, Recording.state).where(
            col(Recording.id).in_(sorted(dirs)))).all())
    removed = 0
    for recording_id, path in dirs.items():
        state = states.get(recording_id)
        if state is None or state in SETTLED:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info("abandoned media removed from staging", extra={"count": removed})
    return removed


def _retry_delay(app: AppContext, attempts: int) -> timedelta:
    base = app.settings.daemon.retry_base_seconds
    return timedelta(seconds=min(base * (2 ** max(attempts - 1, 0)), 6 * 3600))


def _apply_decision(app: AppContext, session: Session, rec: Recording, decision: Decision,
                    actor: str) -> Outcome | None:
    """Block or wait as decided; None means the recording may go on."""
    if decision.verdict is Verdict.BLOCK:
        transition(app, session, rec, State.BLOCKED, reason=decision.reason, actor=actor,
                   optouts=",".join(decision.optout_ids))
        return Outcome(rec.id or 0, rec.state, rec.reason)
    if decision.verdict is Verdict.WAIT:
        retry = timedelta(minutes=app.settings.gate.retry_interval_minutes)
        transition(app, session, rec, State.WAITING, reason=decision.reason, actor=actor,
                   retry_in=retry)
        return Outcome(rec.id or 0, rec.state, rec.reason)
    return None


def _fail(app: AppContext, recording_id: int, worker: str, error: Exception,
          *, retryable: bool) -> Outcome:
    """Record a failure with its attempt count and next retry; the item stays retryable."""
    _remove_media(app, recording_id)
    METRICS.errors.labels(kind=type(error).__name__).inc()
    with app.session() as session:
        rec = _load(session, recording_id, worker)
        if rec is None:
            return Outcome(recording_id, "lost-lease", "another worker took this recording over")
        attempts = rec.attempts + 1
        again = retryable and attempts < app.settings.daemon.max_attempts
        reason = f"{type(error).__name__}: {error}"
        if not again:
            reason += (" — no automatic retry left: fix the cause, then "
                       "`meeting-governance recordings retry` it")
        transition(app, session, rec, State.FAILED, reason=reason, actor=f"worker:{worker}",
                   count_attempt=True, retry_in=_retry_delay(app, attempts) if again else None,
                   error=type(error).__name__)
        log.warning("recording failed", extra={"recording": recording_id, "attempts": attempts,
                                               "error": type(error).__name__, "retry": again})
        return Outcome(recording_id, rec.state, rec.reason)


def process_one(app: AppContext, services: Services, recording_id: int, worker: str) -> Outcome:
    """Take one leased recording as far as it can go now."""
    reporter: Reporter = services.reporter or SilentReporter()
    actor = f"worker:{worker}"
    with app.session() as session:
        rec = _load(session, recording_id, worker)
        if rec is None:
            return Outcome(recording_id, "lost-lease", "another worker took this recording over")
        organizer_id, meeting_id, graph_id = rec.organizer_id, rec.meeting_id, rec.graph_recording_id
        window = (rec.recorded_at, rec.recording_end)
    _remove_media(app, recording_id)  # leftovers of a worker that died holding this item

    # 1-3. Resolve participants and decide, before any byte of media is requested.
    seen = who_was_there(app, services.graph, organizer_id, meeting_id, window)
    with app.session() as session:
        rec = _load(session, recording_id, worker)
        if rec is None:
            return Outcome(recording_id, "lost-lease", "another worker took this recording over")
        decision = gate(app, session, rec, seen)
        stopped = _apply_decision(app, session, rec, decision, actor)
        if stopped:
            log.info("gate stopped recording", extra={"recording": recording_id,
                                                      "verdict": decision.verdict.value})
            return stopped
        info = seen.info
        assert info is not None
        ref = seen.meeting_ref(rec)
        rec.meeting_start, rec.meeting_end = ref.start, ref.end
        if info.subject and rec.subject_item is None:
            rec.subject_item = app.vault.seal_text(
                session, info.subject, purpose="subject", epoch=app.vault.metadata_epoch(),
                owner=Owner("recording", str(recording_id), "subject"))
        remember_participants(session, recording_id, seen.blinds)
        transition(app, session, rec, State.DOWNLOADING, reason=decision.reason, actor=actor)

    # 4. Download into a private staging directory.
    reporter.step(recording_id, "download")
    try:
        with LeaseKeeper(app, recording_id, worker):
            started = time.monotonic()
            media = download_recording(
                services.graph, organizer_id, meeting_id, graph_id, _media_dir(app, recording_id),
                max_bytes=app.settings.download.max_bytes,
                allowed_content_types=app.settings.download.allowed_content_types,
                chunk_bytes=app.settings.download.chunk_bytes,
                resume_attempts=app.settings.download.resume_attempts,
                progress=lambda done, total: reporter.download(recording_id, done, total))
            METRICS.step_seconds.labels(step="download").observe(time.monotonic() - started)
    except GraphError as exc:
        return _fail(app, recording_id, worker, exc, retryable=True)

    try:
        # 5. Decide again just before transcription, on participants read again: an opt-out
        # registered meanwhile, or an attendance report revised meanwhile, wins.
        seen = who_was_there(app, services.graph, organizer_id, meeting_id, window)
        with app.session() as session:
            rec = _load(session, recording_id, worker)
            if rec is None:
                return Outcome(recording_id, "lost-lease", "another worker took this recording over")
            decision = gate(app, session, rec, seen)
            if decision.verdict is not Verdict.ALLOW:
                stopped = _apply_decision(app, session, rec, decision, actor)
                assert stopped is not None
                return stopped
            remember_participants(session, recording_id, seen.blinds)
            rec.media_sha256 = media.sha256
            rec.media_bytes = media.size
            transition(app, session, rec, State.TRANSCRIBING, actor=actor, sha256=media.sha256)

        # 6. Transcribe locally.
        reporter.step(recording_id, "transcribe")
        try:
            with LeaseKeeper(app, recording_id, worker) as keeper:
                started = time.monotonic()
                result = services.transcriber.transcribe(
                    media.path,
                    progress=lambda done, total: reporter.transcribe(recording_id, done, total))
                METRICS.transcription_seconds.inc(time.monotonic() - started)
                METRICS.audio_seconds.inc(result.duration)
            if keeper.lost:
                return Outcome(recording_id, "lost-lease", "lease lost during transcription")
        except TranscriptionError as exc:
            return _fail(app, recording_id, worker, exc, retryable=True)

        # 7. Teams' own speaker timeline, where the tenant has it (who spoke when; the words
        # are dropped on parsing), then check once more and store, in one transaction — only
        # if we still hold the lease.
        timelines = _timelines(services.graph, organizer_id, meeting_id, window) \
            if result.turns else None
        return _store(app, recording_id, worker, seen, result, timelines)
    finally:
        _remove_media(app, recording_id)


def _timelines(graph: GraphClient, organizer_id: str, meeting_id: str,
               window: tuple[datetime | None, datetime | None]) -> list[str] | None:
    """Teams' speaker timelines for this recording; any failure only means fewer names."""
    try:
        return speaker_timelines(graph, organizer_id, meeting_id, window)
    except GraphError as exc:
        log.warning("Teams speaker timeline could not be read; speakers named without it",
                    extra={"status": exc.status, "code": exc.code})
        return None


def process(app: AppContext, services: Services, *, limit: int | None, worker: str | None = None,
            on_item: Callable[[Outcome], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ProcessReport:
    """Claim and process up to `limit` due recordings (None: until none is due), claiming
    `daemon.process_batch` at a time; one bad recording never stops the rest.

    A worker holds leases only on what it is about to work on: with the default batch of 1,
    a second worker never waits for recordings the first one has claimed but not started.
    """
    worker = worker_name(app, worker)
    clear_abandoned_media(app)
    outcomes: list[Outcome] = []
    while limit is None or len(outcomes) < limit:
        if should_stop and should_stop():
            break
        batch = next_batch(app, worker, limit, len(outcomes))
        if not batch:
            break
        for index, recording_id in enumerate(batch):
            if should_stop and should_stop():
                release(app, batch[index:], worker)
                return ProcessReport(tuple(outcomes))
            try:
                outcome = process_one(app, services, recording_id, worker)
            except (GovernanceError, OSError) as exc:
                # A disk-full staging dir or a database hiccup fails this item, not the run.
                outcome = _fail(app, recording_id, worker, exc, retryable=True)
            outcomes.append(outcome)
            if on_item:
                on_item(outcome)
    return ProcessReport(tuple(outcomes))


__all__ = ["Reporter", "Services", "SilentReporter", "process", "process_one"]
