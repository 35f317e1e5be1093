"""`meeting-governance daemon`: APScheduler 3 runs poll, process and purge on their schedules.

- The job store is the application database (SQLAlchemyJobStore), so schedules survive restarts.
- SIGTERM/SIGINT: no new item is started; the one in hand finishes (or, if the process is killed
  outright, its lease expires and another worker resumes it from its last durable state).
- SQLite is one daemon per database (a second one is refused); on PostgreSQL any number of
  daemons on any number of hosts share the work (leases + `FOR UPDATE SKIP LOCKED`), the poller,
  the purge and the daily audit checkpoint each run in one process at a time (`locks`).
- `/healthz` and Prometheus `/metrics` on `daemon.metrics_host:metrics_port`: health is read
  from the database (`health.py`; each job's outcome is stored in `job_run`), the metrics of
  every worker process from the multiprocess files in `$MG_HOME/metrics/<pid>`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from meeting_governance.config import Settings, load_settings
from meeting_governance.context import AppContext, worker_identity
from meeting_governance.db import is_sqlite
from meeting_governance.errors import ConfigError, GovernanceError, LockedError
from meeting_governance.locks import acquire_row_lock, exclusive, release_row_lock
from meeting_governance.logs import configure_logging
from meeting_governance.observability import (
    METRICS,
    enable_multiprocess,
    mark_process_dead,
    scrape,
)
from meeting_governance.states import safe_reason

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the scheduled jobs share inside one daemon process."""

    app: AppContext
    worker: str
    stopping: threading.Event = field(default_factory=threading.Event)
    services: Any = None
    last: dict[str, str] = field(default_factory=dict)
    graph: Any = None  # the poller's and the directory refresh's GraphClient, kept for the run

    def get_graph(self) -> Any:
        """One client (one Session, the process's msal app) for polls and directory refreshes."""
        if self.graph is None:
            from meeting_governance.graph import GraphClient

            self.graph = GraphClient.from_settings(self.app.settings.graph)
        return self.graph

    def get_services(self) -> Any:
        if self.services is None:
            from meeting_governance.pipeline import Services

            self.services = Services.from_app(self.app)
        return self.services


_RUNTIME: Runtime | None = None


def _runtime() -> Runtime:
    if _RUNTIME is None:
        raise RuntimeError("daemon runtime not started")
    return _RUNTIME


# Jobs are module-level functions: the job store keeps a reference, not a pickled closure.
def _succeeded(rt: Runtime, job: str) -> None:
    from meeting_governance.health import record_run

    rt.last[job] = rt.app.clock.now().isoformat()
    METRICS.job_runs.labels(job=job, outcome="ok").inc()
    record_run(rt.app, job, rt.worker)


def _failed(rt: Runtime, job: str, exc: BaseException | None = None, *,
            problem: str = "", cause: str = "other") -> None:
    """A job failed: its cause goes to the log (and, with -v, the terminal), `job_run` (so
    `/healthz` of every process says it) and the metrics."""
    from meeting_governance.health import classify, record_run

    if exc is not None:
        cause, problem = classify(exc)
    METRICS.job_runs.labels(job=job, outcome="failed").inc()
    if job == "poll":
        METRICS.poll_errors.labels(cause=cause).inc()
    log.error(f"{job} job failed: {problem}",
              extra={"job": job, "cause": cause,
                     "error": type(exc).__name__ if exc is not None else "partial"})
    record_run(rt.app, job, rt.worker, cause=cause, error=problem)


def poll_job() -> None:
    """Discovery, in one process at a time across all hosts."""
    from meeting_governance.health import classify
    from meeting_governance.pipeline import poll

    rt = _runtime()
    if rt.stopping.is_set():
        return
    with exclusive(rt.app, "poller", rt.worker) as mine:
        if not mine:
            log.info("poll skipped: another worker is polling")
            return
        try:
            report = poll(rt.app, rt.get_graph())
        except GovernanceError as exc:
            _failed(rt, "poll", exc)
            return
        log.info("poll job", extra={"new": report.new, "errors": len(report.errors)})
        if report.errors:
            # Discovery failed for some organisers: their recordings are not being found.
            cause = report.causes[0] if report.causes else "other"
            more = len(report.errors) - 1
            problem = report.errors[0] + (f" (and {more} more)" if more else "")
            _failed(rt, "poll", problem=classify(ValueError(problem))[1], cause=cause)
        else:
            _succeeded(rt, "poll")


def process_job() -> None:
    from meeting_governance.pipeline import process

    rt = _runtime()
    if rt.stopping.is_set():
        return
    try:
        # Drain: while recordings are due this worker keeps at them (claiming one batch at a
        # time); the interval only says how soon an idle worker looks again.
        report = process(rt.app, rt.get_services(), limit=None,
                         worker=rt.worker, should_stop=rt.stopping.is_set)
        if report.outcomes:
            log.info("process job", extra={"items": len(report.outcomes)})
        _succeeded(rt, "process")
    except GovernanceError as exc:
        _failed(rt, "process", exc)


def directory_job() -> None:
    """Re-resolve the opt-outs' identities (people gain and lose aliases) and drop stale
    cached lookups, in one process at a time."""
    from meeting_governance.optout_identities import refresh

    rt = _runtime()
    if rt.stopping.is_set():
        return
    with exclusive(rt.app, "directory", rt.worker) as mine:
        if not mine:
            return
        try:
            report = refresh(rt.app, rt.get_graph())
        except GovernanceError as exc:
            _failed(rt, "directory", exc)
            return
        log.info("directory job", extra={"examined": report.examined,
                                         "added": report.identifiers_added,
                                         "failed": report.error is not None})
        if report.error is not None:
            _failed(rt, "directory", problem=safe_reason(
                f"the directory could not be read ({str(report.error)[:300]})"), cause="graph")
        else:
            _succeeded(rt, "directory")


def purge_job() -> None:
    from meeting_governance import purge as purge_module

    rt = _runtime()
    if rt.stopping.is_set():
        return
    try:
        report = purge_module.purge(rt.app, as_of=rt.app.clock.now())
        log.info("purge job", extra={"purged": getattr(report, "purged", None)})
        _succeeded(rt, "purge")
    except LockedError:
        log.info("purge skipped: another worker is purging")
    except GovernanceError as exc:
        _failed(rt, "purge", exc)


def checkpoint_job() -> None:
    """A signed audit checkpoint each day (a purge writes one too), in one process at a time."""
    from meeting_governance import checkpoints

    rt = _runtime()
    if rt.stopping.is_set():
        return
    with exclusive(rt.app, "checkpoint", rt.worker) as mine:
        if not mine:
            return
        try:
            point = checkpoints.take(rt.app, reason="daily")
            log.info("checkpoint job", extra={"head_seq": point.head_seq})
            _succeeded(rt, "checkpoint")
        except (GovernanceError, OSError) as exc:
            _failed(rt, "checkpoint", exc)


def lock_job() -> None:
    """Renew this daemon's SQLite lock; if another daemon took it over, stop cleanly."""
    rt = _runtime()
    try:
        _hold_daemon_lock(rt)
    except LockedError:
        log.error("daemon lock lost to another process; stopping")
        rt.stopping.set()


def _hold_daemon_lock(rt: Runtime) -> None:
    if not is_sqlite(rt.app.engine):
        return
    ttl = timedelta(seconds=max(rt.app.settings.daemon.lease_seconds, 30))
    holder = acquire_row_lock(rt.app, "daemon", rt.worker, ttl)
    if holder is not None:
        raise LockedError(
            f"another daemon ({holder}) is running on this SQLite database; SQLite supports one "
            "daemon. Stop it first, or move to PostgreSQL (MG_DATABASE__URL) for several workers")


# -- health and metrics ---------------------------------------------------------------------

class _HealthHandler(BaseHTTPRequestHandler):
    runtime: Runtime

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        from meeting_governance.health import DatabaseCollector, check

        rt = self.runtime
        if self.path.startswith("/metrics"):
            database = CollectorRegistry()
            database.register(DatabaseCollector(rt.app, rt.stopping.is_set))
            self._send(200, scrape(database), "text/plain; version=0.0.4")
        elif self.path.startswith("/healthz"):
            health = check(rt.app, stopping=rt.stopping.is_set())
            payload = {**health.as_json(), "worker": rt.worker, "last_runs": rt.last,
                       "stopping": rt.stopping.is_set()}
            self._send(200 if health.ok else 503, json.dumps(payload).encode(),
                       "application/json")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _start_health(rt: Runtime) -> ThreadingHTTPServer | None:
    settings = rt.app.settings.daemon
    if not settings.metrics_port:
        return None
    handler = type("HealthHandler", (_HealthHandler,), {"runtime": rt})
    try:
        server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), handler)
    except OSError as exc:
        raise ConfigError(f"daemon.metrics_port {settings.metrics_port} cannot be used ({exc}); "
                          "pick a free port or set it to 0") from exc
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


# -- the daemon -----------------------------------------------------------------------------

def build_scheduler(rt: Runtime, *, only_process: bool = False) -> BackgroundScheduler:
    """Poll and purge live in the database job store (their schedules survive restarts and are
    shared by every daemon; advisory locks make sure one process runs each). Each process keeps
    its own `process` and lock-renewal jobs in memory: every worker processes."""
    daemon = rt.app.settings.daemon
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=rt.app.engine,
                                                 tablename="apscheduler_jobs"),
                   "local": MemoryJobStore()},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    scheduler.add_job(f"{__name__}:process_job",
                      IntervalTrigger(seconds=daemon.process_interval_seconds),
                      id="process", jobstore="local", replace_existing=True)
    if not only_process:
        scheduler.add_job(f"{__name__}:poll_job",
                          IntervalTrigger(minutes=daemon.poll_interval_minutes),
                          id="poll", replace_existing=True)
        scheduler.add_job(f"{__name__}:purge_job",
                          CronTrigger.from_crontab(daemon.purge_cron, timezone="UTC"),
                          id="purge", replace_existing=True)
        scheduler.add_job(f"{__name__}:directory_job",
                          IntervalTrigger(minutes=rt.app.settings.directory.refresh_interval_minutes),
                          id="directory", replace_existing=True)
        scheduler.add_job(f"{__name__}:checkpoint_job",
                          CronTrigger.from_crontab(rt.app.settings.audit.checkpoint_cron,
                                                   timezone="UTC"),
                          id="checkpoint", replace_existing=True)
    if is_sqlite(rt.app.engine):
        scheduler.add_job(f"{__name__}:lock_job",
                          IntervalTrigger(seconds=max(daemon.lease_seconds // 3, 10)),
                          id="daemon-lock", jobstore="local", replace_existing=True)
    return scheduler


def serve(settings: Settings, *, only_process: bool = False,
          stop_event: threading.Event | None = None, parent: int | None = None,
          verbose: bool = False) -> None:
    """Run one daemon process until signalled (or `stop_event` is set, for tests); a worker
    started by `daemon --workers` (`parent`: its pid) also stops when that process is gone."""
    global _RUNTIME
    configure_logging(settings.logging.level, settings.log_file, stderr=verbose)
    app = AppContext.open(settings)
    worker = settings.daemon.worker_id or worker_identity()
    METRICS.worker.labels(worker=worker, role="worker" if only_process else "scheduler").set(1)
    app.actor = f"worker:{worker}"
    rt = Runtime(app=app, worker=worker, stopping=stop_event or threading.Event())
    try:
        # At start, not at the first recording: an enabled but missing speaker encoder (or
        # any other model problem Services can see) stops the daemon with its fix.
        rt.get_services()
    except GovernanceError:
        app.close()
        raise
    _RUNTIME = rt
    _hold_daemon_lock(rt)
    health = None if only_process else _start_health(rt)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stop requested", extra={"signal": signum})
        rt.stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    scheduler = build_scheduler(rt, only_process=only_process)
    scheduler.start()
    log.info("daemon started", extra={"worker": worker, "only_process": only_process})
    try:
        # Run the first passes at once rather than after the first interval.
        if not only_process:
            scheduler.modify_job("poll", next_run_time=app.clock.now())
            scheduler.modify_job("directory", next_run_time=app.clock.now())
        scheduler.modify_job("process", jobstore="local",
                             next_run_time=app.clock.now() + timedelta(seconds=1))
        while not rt.stopping.wait(0.5):
            if parent is not None and os.getppid() != parent:
                log.warning("the daemon that started this worker is gone; stopping")
                rt.stopping.set()
    finally:
        scheduler.shutdown(wait=True)  # lets the item in hand finish
        if health is not None:
            health.shutdown()
        if rt.services is not None:
            rt.services.close()
        if rt.graph is not None:
            rt.graph.close()
        if is_sqlite(app.engine):
            release_row_lock(app, "daemon", worker)
        log.info("daemon stopped", extra={"worker": worker})
        app.close()
        _RUNTIME = None


def _child(config_file: str | None, home: str, threads: int, number: int, parent: int,
           verbose: bool = False, metrics_dir: str | None = None) -> None:
    os.environ["MG_HOME"] = home
    if metrics_dir:  # inherited too; set here so the metrics are on files before anything
        enable_multiprocess(Path(metrics_dir), fresh=False)
    settings = load_settings(config_file)
    settings.transcription.cpu_threads = threads
    if settings.daemon.worker_id:  # each worker process has a name of its own in leases
        settings.daemon.worker_id = f"{settings.daemon.worker_id}/{number}"
    serve(settings, only_process=True, parent=parent, verbose=verbose)


def metrics_directory(home: Path) -> Path:
    """This daemon's multiprocess metrics files: `$MG_HOME/metrics/<pid>`, private, emptied at
    start; directories left by daemons that are gone are removed."""
    base = home / "metrics"
    if base.is_dir():
        for old in base.iterdir():
            if old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / str(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_daemon(settings: Settings, *, workers: int | None = None,
               config_file: Path | None = None, verbose: bool = False) -> None:
    """The CLI entry: this process schedules everything; `workers - 1` more only process.

    `workers` None takes `daemon.workers` (0: auto, see sizing.py); each worker gets
    `transcription.cpu_threads` model threads, or its share of the cores when that is 0.
    Every process writes its metrics to files in one directory (Prometheus multiprocess
    mode), which the one `/metrics` endpoint of this process reads. `verbose`: the log on
    stderr too."""
    from meeting_governance.preflight import run_preflight
    from meeting_governance.sizing import available_memory, host_cores, plan_workers

    configure_logging(settings.logging.level, settings.log_file, stderr=verbose)
    # A missing model or GPU, an unwritable path or an unreadable keyring stops us now.
    device = run_preflight(settings).device
    plan = plan_workers(settings.daemon.workers if workers is None else workers,
                        cores=host_cores(), threads=settings.transcription.cpu_threads,
                        sqlite=settings.database_url.startswith("sqlite"),
                        gpu=device is not None and device.device == "cuda", memory=available_memory())
    log.info("daemon workers", extra={"workers": plan.workers, "threads": plan.threads,
                                      "why": plan.reason})
    settings.transcription.cpu_threads = plan.threads
    metrics_dir = metrics_directory(settings.home)
    enable_multiprocess(metrics_dir, fresh=True)
    children: list[Any] = []
    ctx = multiprocessing.get_context("spawn")
    try:
        for number in range(2, plan.workers + 1):
            child = ctx.Process(target=_child, args=(str(config_file) if config_file else None,
                                                     str(settings.home), plan.threads, number,
                                                     os.getpid(), verbose, str(metrics_dir)),
                                daemon=False)
            child.start()
            children.append(child)
        serve(settings, verbose=verbose)
    finally:
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=600)
            if child.pid:
                mark_process_dead(child.pid)
        shutil.rmtree(metrics_dir, ignore_errors=True)
