"""Whether the daemon is doing its job, from what every process shares: the database.

`/healthz` is degraded (HTTP 503, each reason named) when
- the database or the keyring cannot be reached;
- the last run of a scheduled job failed (poll, directory refresh, purge, checkpoint, process):
  the reason is the failure's cause, safe to show (a configuration key to set, a Graph code or
  status; anything shaped like an address masked);
- a job in the shared schedule is overdue (no daemon's scheduler ran it: stopped or stuck);
- recordings are queued (due or in flight) and none has progressed (a state change or a lease
  renewal) for `daemon.health_stall_minutes`.

Job outcomes live in `job_run` (one row per job, written by whichever process ran it), the
schedule in APScheduler's `apscheduler_jobs`, the queue in `recording`: a daemon with
`--workers N` and daemons on several hosts all answer the same. `DatabaseCollector` exposes
the same facts as Prometheus metrics at each scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import DatabaseError, GovernanceError, GraphError
from meeting_governance.models import JobRun, Recording
from meeting_governance.states import IN_FLIGHT, State, safe_reason

log = logging.getLogger(__name__)

_CREDENTIAL = ("no Graph credential", "cannot read the certificate file",
               "the certificate credential needs")
_SIGN_IN = ("sign-in failed", "the sign-in authority rejected")


def classify(exc: BaseException) -> tuple[str, str]:
    """(cause, text) for a job's failure: a short label for the metric, and the error's own
    message (it names the problem and the fix), masked and cut to fit."""
    message = str(exc).strip() or type(exc).__name__
    cause = "other"
    if isinstance(exc, GraphError):
        if message.startswith(_CREDENTIAL):
            cause = "credential"
        elif message.startswith(_SIGN_IN) or exc.status == 401:
            cause = "sign_in"
        elif exc.status == 403:
            cause = "forbidden"
        elif exc.status == 429:
            cause = "throttled"
        elif exc.status is not None and exc.status >= 500:
            cause = "graph_server"
        elif exc.status is None and exc.retryable:
            cause = "unreachable"
        else:
            cause = "graph"
    elif isinstance(exc, DatabaseError | SQLAlchemyError):
        cause = "database"
        message = _first_line(exc)
    return cause, safe_reason(message)[:400]


def _first_line(exc: BaseException) -> str:
    """A driver error's first line, without the SQL and parameters SQLAlchemy appends."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else ''}".strip()


def record_run(app: AppContext, job: str, worker: str, *, cause: str = "",
               error: str = "") -> None:
    """Store how `job` just went (no `error`: it succeeded). Never raises: a database that
    cannot be written is what `/healthz` then reports by itself."""
    now = app.clock.now()
    for attempt in (1, 2):  # two processes may create the row at once: the loser updates it
        try:
            with app.session() as session:
                row = session.get(JobRun, job, with_for_update=True) or JobRun(job=job)
                row.last_started_at = now
                row.worker = worker[:200]
                if error:
                    row.last_failure_at = now
                    row.last_cause = cause[:40]
                    row.last_error = error[:500]
                    row.failures += 1
                else:
                    row.last_success_at = now
                    row.failures = 0
                session.add(row)
            return
        except (SQLAlchemyError, GovernanceError) as exc:
            raced = isinstance(exc, SAIntegrityError) or isinstance(exc.__cause__,
                                                                    SAIntegrityError)
            if raced and attempt == 1:
                continue
            log.warning("job outcome not recorded", extra={"job": job,
                                                           "error": type(exc).__name__})
            return


@dataclass(frozen=True)
class JobState:
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failures: int
    cause: str
    error: str

    @property
    def failing(self) -> bool:
        return self.last_failure_at is not None and (
            self.last_success_at is None or self.last_failure_at >= self.last_success_at)


@dataclass(frozen=True)
class Health:
    """One answer of `/healthz`: ok, or degraded with every reason."""

    reasons: tuple[str, ...]
    recordings: dict[str, int] = field(default_factory=dict)
    queue: dict[str, int] = field(default_factory=dict)
    oldest_waiting_s: float | None = None
    jobs: dict[str, JobState] = field(default_factory=dict)
    next_runs: dict[str, datetime] = field(default_factory=dict)
    database_ok: bool = True

    @property
    def ok(self) -> bool:
        return not self.reasons

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "degraded",
            "reasons": list(self.reasons),
            "recordings": self.recordings,
            "queue": self.queue,
            "oldest_waiting_seconds": self.oldest_waiting_s,
            "jobs": {name: {"last_success": _iso(job.last_success_at),
                            "last_failure": _iso(job.last_failure_at),
                            "failures_in_a_row": job.failures,
                            "cause": job.cause if job.failing else "",
                            "error": job.error if job.failing else ""}
                     for name, job in sorted(self.jobs.items())},
            "next_runs": {name: _iso(at) for name, at in sorted(self.next_runs.items())},
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check(app: AppContext, *, stopping: bool = False) -> Health:
    """Every health condition, read from the database and the keyring now."""
    now = app.clock.now()
    reasons: list[str] = []
    if stopping:
        reasons.append("stopping: a stop was requested (SIGTERM/SIGINT)")
    try:
        facts = _database_facts(app, now)
    except (SQLAlchemyError, GovernanceError) as exc:
        reasons.append(f"database unreachable ({safe_reason(_first_line(exc))[:300]}): check "
                       "database.url (MG_DATABASE__URL) and that the server is up")
        facts = None
    keyring = _keyring_problem(app)
    if keyring:
        reasons.append(keyring)
    if facts is None:
        return Health(reasons=tuple(reasons), database_ok=False)
    recordings, jobs, next_runs, queue, oldest, last_progress = facts
    for name, job in sorted(jobs.items()):
        if job.failing:
            reasons.append(f"{name} failed: {job.error}" + (
                f" ({job.failures} times in a row)" if job.failures > 1 else ""))
    grace = timedelta(seconds=app.settings.daemon.health_overdue_seconds)
    for name, due in sorted(next_runs.items()):
        if now - due > grace:
            late = int((now - due).total_seconds())
            reasons.append(f"{name} is overdue: due {late} s ago and no daemon ran it (is a "
                           "daemon running, and is its scheduler stuck?)")
    queued = sum(queue.values())
    stall = timedelta(minutes=app.settings.daemon.health_stall_minutes)
    if queued and (last_progress is None or now - last_progress > stall):
        since = "ever" if last_progress is None else \
            f"{int((now - last_progress).total_seconds() // 60)} minutes"
        reasons.append(f"no recording has progressed for {since} while {queued} "
                       f"{'is' if queued == 1 else 'are'} queued: are the workers running?")
    return Health(reasons=tuple(reasons), recordings=recordings, queue=queue,
                  oldest_waiting_s=oldest, jobs=jobs, next_runs=next_runs)


_Facts = tuple[dict[str, int], dict[str, JobState], dict[str, datetime], dict[str, int],
               float | None, datetime | None]


def _database_facts(app: AppContext, now: datetime) -> _Facts:
    lease = timedelta(seconds=app.settings.daemon.lease_seconds)
    with Session(app.engine) as session:
        session.exec(select(text("1"))).one()
        recordings = {state: int(count) for state, count in session.exec(
            select(Recording.state, func.count()).group_by(Recording.state)).all()}
        jobs = {row.job: JobState(row.last_success_at, row.last_failure_at, row.failures,
                                  row.last_cause, row.last_error)
                for row in session.exec(select(JobRun)).all()}
        retry_due = (col(Recording.state).in_([State.WAITING.value, State.FAILED.value])
                     & col(Recording.next_attempt_at).is_not(None)
                     & (col(Recording.next_attempt_at) <= now))
        new = col(Recording.state) == State.DISCOVERED.value
        in_flight = col(Recording.state).in_([s.value for s in IN_FLIGHT])
        queue = {state: int(count) for state, count in session.exec(
            select(Recording.state, func.count()).where(or_(new, retry_due, in_flight))
            .group_by(Recording.state)).all()}
        oldest_new = session.exec(select(func.min(col(Recording.first_seen_at))).where(new)).one()
        oldest_retry = session.exec(
            select(func.min(col(Recording.next_attempt_at))).where(retry_due)).one()
        last_change = session.exec(select(func.max(col(Recording.updated_at)))).one()
        # A lease renewed is a worker at it (a long transcription changes no state for a while).
        last_lease = session.exec(select(func.max(col(Recording.lease_expires_at)))
                                  .where(col(Recording.lease_owner).is_not(None))).one()
        next_runs = _next_runs(session)
    waiting_since = [t for t in (oldest_new, oldest_retry) if t is not None]
    oldest = (now - min(waiting_since)).total_seconds() if waiting_since else None
    progress = [t for t in (last_change, last_lease - lease if last_lease else None) if t]
    return (recordings, jobs, next_runs, queue, max(oldest, 0.0) if oldest is not None else None,
            max(progress) if progress else None)


def _next_runs(session: Session) -> dict[str, datetime]:
    """The shared schedule (APScheduler's SQLAlchemy job store); empty before a daemon made it."""
    from datetime import UTC

    connection = session.connection()
    if not connection.dialect.has_table(connection, "apscheduler_jobs"):
        return {}
    rows = connection.execute(text("SELECT id, next_run_time FROM apscheduler_jobs "
                                   "WHERE next_run_time IS NOT NULL")).all()
    return {str(job): datetime.fromtimestamp(float(at), UTC) for job, at in rows}


def _keyring_problem(app: AppContext) -> str | None:
    """The keyring answers (the file reads, the HSM session works), or why not."""
    try:
        app.keys.exists("health-probe")
    except Exception as exc:  # noqa: BLE001 - any failure of the file, the HSM or its library
        return (f"keyring unreachable ({type(exc).__name__}: {safe_reason(str(exc))[:200]}): "
                "check keys.provider and that the keyring file or HSM is there and readable")
    return None


def serving(app: AppContext) -> list[str]:
    """Why a web server cannot serve now — its database does not answer, its keyring does not
    open — or nothing. For a public endpoint: the reasons say what, not where (no host, no
    path); the details go to the log."""
    problems: list[str] = []
    try:
        with Session(app.engine) as session:
            session.exec(select(text("1"))).one()
    except (SQLAlchemyError, GovernanceError) as exc:
        log.warning("health: database unreachable", extra={"error": type(exc).__name__,
                                                           "detail": _first_line(exc)[:300]})
        problems.append("database unreachable")
    detail = _keyring_problem(app)
    if detail:
        log.warning("health: keyring unreachable", extra={"detail": detail})
        problems.append("keyring unreachable")
    return problems


class DatabaseCollector(Collector):
    """What the database knows, as metrics, read once per scrape for every process."""

    def __init__(self, app: AppContext, stopping: Any = None) -> None:
        self.app = app
        self.stopping = stopping

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = check(self.app, stopping=bool(self.stopping and self.stopping()))
        healthy = GaugeMetricFamily("mg_healthy", "1 when /healthz is ok, 0 when degraded")
        healthy.add_metric([], 1.0 if health.ok else 0.0)
        yield healthy
        database = GaugeMetricFamily("mg_database_up", "1 when the database answers")
        database.add_metric([], 1.0 if health.database_ok else 0.0)
        yield database
        if not health.database_ok:
            return
        recordings = GaugeMetricFamily("mg_recordings", "Recordings by pipeline state",
                                       labels=["state"])
        for state, count in sorted(health.recordings.items()):
            recordings.add_metric([state], count)
        yield recordings
        queue = GaugeMetricFamily(
            "mg_queue_depth", "Recordings due for work (discovered, waiting or failed with "
            "their retry time reached) or in flight, by state", labels=["state"])
        for state in (State.DISCOVERED, State.WAITING, State.FAILED, *IN_FLIGHT):
            queue.add_metric([state.value], health.queue.get(state.value, 0))
        yield queue
        oldest = GaugeMetricFamily("mg_queue_oldest_age_seconds",
                                   "How long the longest-waiting due recording has waited")
        oldest.add_metric([], health.oldest_waiting_s or 0.0)
        yield oldest
        success = GaugeMetricFamily("mg_job_last_success_timestamp_seconds",
                                    "When each scheduled job last succeeded (Unix time)",
                                    labels=["job"])
        failures = GaugeMetricFamily("mg_job_failures_in_a_row",
                                     "Failed runs of each job since its last success",
                                     labels=["job"])
        for name, job in sorted(health.jobs.items()):
            if job.last_success_at is not None:
                success.add_metric([name], job.last_success_at.timestamp())
            failures.add_metric([name], job.failures)
        yield success
        yield failures
