"""One recording through every state, top to bottom: discover → resolve participants → decide →
download → (decide again) → transcribe → (check once more, inside the store's transaction) →
encrypt and store.

Who was there is read again for every decision: the meeting and this recording's attendance
from Graph, every identifier of each person from the directory (`people`). The last check runs
in the transaction that stores the transcript, after waiting on the registry version
(`optout_identities.lock_registry`): an opt-out registered at any moment before the store wins.

Each step is a function; each state change is one transaction with its audit entry, so after a
crash every recording resumes from its last durable state. Work is claimed with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL) that the holder renews while it works; an expired lease
hands the item to another worker, and the store step only commits for the lease holder, so a
recording is never transcribed into two transcripts.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from meeting_governance import formats, holds, retention, speakers
from meeting_governance.context import AppContext, worker_identity
from meeting_governance.diarization import Diarization
from meeting_governance.epochs import Owner
from meeting_governance.errors import DatabaseError, GovernanceError, GraphError, TranscriptionError
from meeting_governance.gate import Decision, Verdict, decide
from meeting_governance.gate_inputs import (
    Attendance,
    gate,
    last_check,
    remember_participants,
    who_was_there,
)
from meeting_governance.graph import (
    Discovery,
    GraphClient,
    discover,
    download_recording,
)
from meeting_governance.graph.recordings import group_organizers, link_fingerprint
from meeting_governance.graph.transcripts import speaker_timelines
from meeting_governance.health import classify
from meeting_governance.locks import LeaseKeeper, claim, release, renew_lease
from meeting_governance.models import DeltaLink, Recording, Transcript
from meeting_governance.observability import METRICS
from meeting_governance.states import State, transition
from meeting_governance.store import NewTranscript, participant_dicts, store_transcript
from meeting_governance.transcribe import Transcriber, TranscriptResult

log = logging.getLogger(__name__)
MAX_ID = 1024  # the width of recording.graph_recording_id and recording.meeting_id


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


# -- discovery ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PollReport:
    organizers: int
    new: int
    seen: int
    errors: tuple[str, ...]
    restarted: tuple[str, ...] = ()  # organisers whose discovery started a new round
    causes: tuple[str, ...] = ()  # the errors' causes (health.classify), for the metrics


def _discovery_start(app: AppContext, stored: DeltaLink | None, now: datetime) -> datetime:
    """Where a new round starts: `lookback_days` ago, or earlier if the last successful poll
    was (an outage longer than the look-back must not lose the recordings made during it)."""
    start = now - timedelta(days=app.settings.graph.lookback_days)
    if stored is not None and stored.updated_at < start:
        return stored.updated_at - timedelta(hours=1)
    return start


def poll(app: AppContext, graph: GraphClient, *, organizers: Sequence[str] | None = None,
         progress: Callable[[int, int], None] | None = None,
         restart: bool = False) -> PollReport:
    """One discovery pass: new recordings become rows (idempotent on the Graph id).

    Per organiser, the new rows and the new delta link commit together: a crash never stores a
    delta link whose recordings were not stored, so nothing is skipped. A stored link built
    under another configuration (or every link, with `restart`) is not replayed: a new round
    starts, with a log line, a metric and an audit entry.
    """
    new = seen = 0
    errors: list[str] = []
    causes: list[str] = []
    restarted: list[str] = []
    scope = list(organizers if organizers is not None else app.settings.graph.organizers)
    group_id = app.settings.graph.organizer_group_id
    if organizers is None and group_id:
        try:
            scope.extend(m for m in group_organizers(graph, group_id) if m not in scope)
        except GraphError as exc:
            errors.append(f"organiser group {group_id}: {exc}")
            causes.append(classify(exc)[0])
    now = app.clock.now()
    settings = app.settings.graph
    for index, organizer_id in enumerate(scope, start=1):
        fingerprint = link_fingerprint(settings.base_url, organizer_id, settings.lookback_days)
        with app.session() as session:
            stored = session.get(DeltaLink, organizer_id)
        link, reason = (stored.link if stored else None), None
        if stored is not None and restart:
            link, reason = None, "restart requested (poll --restart)"
        elif stored is not None and stored.fingerprint != fingerprint:
            link, reason = None, ("the stored delta link was built under another configuration "
                                  "(graph.base_url, graph.lookback_days or the request template)")
        try:
            found = discover(graph, organizer_id, delta_link=link, restart_reason=reason,
                             start=_discovery_start(app, stored, now))
        except GraphError as exc:
            errors.append(f"organiser {organizer_id}: {exc}")
            causes.append(classify(exc)[0])
            log.warning("discovery failed", extra={"organizer": organizer_id, "code": exc.code,
                                                    "status": exc.status})
            METRICS.errors.labels(kind="discovery").inc()
            continue
        if found.restarted:
            restarted.append(organizer_id)
            log.warning("discovery restarted", extra={"organizer": organizer_id,
                                                      "reason": found.restarted})
            METRICS.discovery_restarts.inc()
        try:
            new, seen = _store_discovery(app, organizer_id, found, now, errors, new, seen,
                                         fingerprint)
        except DatabaseError as exc:
            errors.append(f"organiser {organizer_id}: {exc}")
            causes.append("database")
            log.warning("storing discovered recordings failed", extra={"organizer": organizer_id})
            continue
        if progress:
            progress(index, len(scope))
    log.info("poll done", extra={"organizers": len(scope), "new": new, "seen": seen,
                                 "errors": len(errors), "restarted": len(restarted)})
    return PollReport(len(scope), new, seen, tuple(errors), tuple(restarted), tuple(causes))


def _store_discovery(app: AppContext, organizer_id: str, found: Discovery, now: datetime,
                     errors: list[str], new: int, seen: int,
                     fingerprint: str | None = None) -> tuple[int, int]:
    """One organiser's new rows and its new delta link, in one transaction."""
    with app.session() as session:
        existing = set(session.exec(select(Recording.graph_recording_id).where(
            col(Recording.graph_recording_id).in_([r.recording_id for r in found.recordings]))
        ).all()) if found.recordings else set()
        for ref in found.recordings:
            seen += 1
            if ref.recording_id in existing:
                continue
            if len(ref.recording_id) > MAX_ID or len(ref.meeting_id) > MAX_ID:
                # No real Graph id is this long; storing it would fail on PostgreSQL and
                # stop discovery for the organiser for good. Skip it, loudly.
                errors.append(f"organiser {organizer_id}: skipped a recording whose id is "
                              f"longer than {MAX_ID} characters")
                log.warning("recording id too long", extra={"organizer": organizer_id})
                continue
            call_id = ref.call_id if ref.call_id and len(ref.call_id) <= 200 else None
            rec = Recording(graph_recording_id=ref.recording_id, meeting_id=ref.meeting_id,
                            organizer_id=organizer_id, call_id=call_id,
                            recorded_at=ref.created, recording_end=ref.end, meeting_end=ref.end,
                            first_seen_at=now, updated_at=now)
            try:
                with session.begin_nested():
                    session.add(rec)
                    session.flush()
            except SAIntegrityError:
                continue  # another poller stored it first: idempotent
            existing.add(ref.recording_id)
            new += 1
            app.audit(session, "recording.discovered", target_type="recording",
                      target_id=str(rec.id), actor=f"worker:{worker_identity()}")
        if found.restarted:
            app.audit(session, "discovery.restarted", target_type="organizer",
                      target_id=organizer_id, actor=f"worker:{worker_identity()}",
                      reason=found.restarted)
        if found.delta_link:
            if stored := session.get(DeltaLink, organizer_id):
                stored.link = found.delta_link
                stored.updated_at = now
                stored.fingerprint = fingerprint
                session.add(stored)
            else:
                session.add(DeltaLink(organizer_id=organizer_id, link=found.delta_link,
                                      updated_at=now, fingerprint=fingerprint))
    return new, seen


# -- claiming: the leases live in `locks`, with every other lock -----------------------------

# -- one recording ------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    recording_id: int
    state: str
    reason: str
    transcript_id: str | None = None


def _media_dir(app: AppContext, recording_id: int) -> Path:
    return app.settings.staging_dir / f"rec-{recording_id}"


def _remove_media(app: AppContext, recording_id: int) -> None:
    shutil.rmtree(_media_dir(app, recording_id), ignore_errors=True)


def _retry_delay(app: AppContext, attempts: int) -> timedelta:
    base = app.settings.daemon.retry_base_seconds
    return timedelta(seconds=min(base * (2 ** max(attempts - 1, 0)), 6 * 3600))


def _load(session: Session, recording_id: int, worker: str) -> Recording | None:
    rec = session.exec(select(Recording).where(col(Recording.id) == recording_id)
                       .with_for_update()).one_or_none()
    if rec is None or rec.lease_owner != worker:
        return None  # lost our lease: another worker has it now
    return rec


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


def _store(app: AppContext, recording_id: int, worker: str, seen: Attendance,
           result: TranscriptResult, timelines: Sequence[str] | None = None) -> Outcome:
    info = seen.info
    assert info is not None
    with app.session() as session:
        rec = _load(session, recording_id, worker)
        if rec is None or rec.state != State.TRANSCRIBING.value:
            return Outcome(recording_id, "lost-lease", "another worker took this recording over")
        opted_out = last_check(app, session, rec, seen)
        if opted_out:
            decision = decide(participants=seen.participants, attendance_known=True,
                              matched_optout_ids=opted_out, allow_anonymous=False,
                              now=app.clock.now(), deadline=app.clock.now())
            transition(app, session, rec, State.BLOCKED, reason=decision.reason,
                       actor=f"worker:{worker}", optouts=",".join(decision.optout_ids),
                       at="store")
            log.info("opt-out registered during transcription: not stored",
                     extra={"recording": recording_id})
            return Outcome(recording_id, rec.state, rec.reason)
        if session.exec(select(Transcript.id).where(
                col(Transcript.recording_id) == recording_id)).first() is not None:
            transition(app, session, rec, State.STORED, reason="already stored",
                       actor=f"worker:{worker}")
            return Outcome(recording_id, rec.state, rec.reason)
        ref = seen.meeting_ref(rec)
        meeting_end = ref.end or rec.recorded_at or app.clock.now()
        assignment = retention.assign(app.settings.retention, organizer_id=rec.organizer_id,
                                      groups=(), meeting_end=meeting_end)
        row = store_transcript(app, session, NewTranscript(
            recording_id=recording_id, meeting_id=rec.meeting_id, organizer_id=rec.organizer_id,
            meeting_start=ref.start, meeting_end=meeting_end,
            subject=info.subject, participants=seen.participants,
            identifier_blinds=seen.blinds,
            content_json=formats.to_json(result), language=result.language,
            duration_s=result.duration, model=result.model,
            retention_policy=assignment.policy, retain_until=assignment.retain_until))
        # Speaker labels named only from the evidence recorded with them (speakers.py).
        namings = speakers.meeting_namings(participant_dicts(seen.participants),
                                           info.presence, rec.recorded_at, result.turns,
                                           timelines)
        if namings:
            speakers.record(app, session, row, namings,
                            people=participant_dicts(seen.participants),
                            actor=f"worker:{worker}")
        # A hold on a person or a meeting set before this transcript existed covers it too.
        holds.refresh_flags(session, [row.id])
        transition(app, session, rec, State.STORED, reason="transcribed and stored",
                   actor=f"worker:{worker}", transcript=row.id,
                   policy=assignment.policy)
        log.info("transcript stored", extra={"recording": recording_id, "transcript": row.id,
                                             "audio_seconds": round(result.duration, 1),
                                             "segments": len(result.segments)})
        return Outcome(recording_id, rec.state, rec.reason, row.id)


@dataclass(frozen=True)
class ProcessReport:
    outcomes: tuple[Outcome, ...]

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


def process(app: AppContext, services: Services, *, limit: int | None, worker: str | None = None,
            on_item: Callable[[Outcome], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ProcessReport:
    """Claim and process up to `limit` due recordings (None: until none is due), claiming
    `daemon.process_batch` at a time; one bad recording never stops the rest.

    A worker holds leases only on what it is about to work on: with the default batch of 1,
    a second worker never waits for recordings the first one has claimed but not started.
    """
    worker = worker or app.settings.daemon.worker_id or worker_identity()
    outcomes: list[Outcome] = []
    while limit is None or len(outcomes) < limit:
        if should_stop and should_stop():
            break
        wanted = app.settings.daemon.process_batch
        batch = claim(app, worker, wanted if limit is None else min(wanted, limit - len(outcomes)))
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


__all__ = ["LeaseKeeper", "Outcome", "PollReport", "ProcessReport", "Services", "claim",
           "poll", "process", "process_one", "release", "renew_lease"]
