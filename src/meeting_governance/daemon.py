"""`meeting-governance daemon`: APScheduler 3 runs poll, process and purge on their schedules.

- The job store is the application database (SQLAlchemyJobStore), so schedules survive restarts.
- SIGTERM/SIGINT: no new item is started; the one in hand finishes (or, if the process is killed
  outright, its lease expires and another worker resumes it from its last durable state).
- SQLite is one daemon per database (a second one is refused); on PostgreSQL any number of
  daemons on any number of hosts share the work (leases + `FOR UPDATE SKIP LOCKED`), the poller,
  the purge and the daily audit checkpoint each run in one process at a time (`locks`).
- `/healthz` and Prometheus `/metrics` on `daemon.metrics_host:metrics_port`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
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
from prometheus_client import generate_latest
from sqlalchemy import func
from sqlmodel import Session, select

from meeting_governance.config import Settings, load_settings
from meeting_governance.context import AppContext, worker_identity
from meeting_governance.db import is_sqlite
from meeting_governance.errors import ConfigError, GovernanceError, LockedError
from meeting_governance.locks import acquire_row_lock, exclusive, release_row_lock
from meeting_governance.models import Recording
from meeting_governance.observability import METRICS, configure_logging

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
def poll_job() -> None:
    """Discovery, in one process at a time across all hosts."""
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
            rt.last["poll"] = rt.app.clock.now().isoformat()
            log.info("poll job", extra={"new": report.new, "errors": len(report.errors)})
        except GovernanceError as exc:
            log.warning("poll job failed", extra={"error": type(exc).__name__})


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
        rt.last["process"] = rt.app.clock.now().isoformat()
        if report.outcomes:
            log.info("process job", extra={"items": len(report.outcomes)})
    except GovernanceError as exc:
        log.warning("process job failed", extra={"error": type(exc).__name__})


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
            rt.last["directory"] = rt.app.clock.now().isoformat()
            log.info("directory job", extra={"examined": report.examined,
                                             "added": report.identifiers_added,
                                             "failed": report.error is not None})
        except GovernanceError as exc:
            log.warning("directory job failed", extra={"error": type(exc).__name__})


def purge_job() -> None:
    from meeting_governance import purge as purge_module

    rt = _runtime()
    if rt.stopping.is_set():
        return
    try:
        report = purge_module.purge(rt.app, as_of=rt.app.clock.now())
        rt.last["purge"] = rt.app.clock.now().isoformat()
        log.info("purge job", extra={"purged": getattr(report, "purged", None)})
    except LockedError:
        log.info("purge skipped: another worker is purging")
    except GovernanceError as exc:
        log.warning("purge job failed", extra={"error": type(exc).__name__})


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
            rt.last["checkpoint"] = rt.app.clock.now().isoformat()
            log.info("checkpoint job", extra={"head_seq": point.head_seq})
        except (GovernanceError, OSError) as exc:
            log.warning("checkpoint job failed", extra={"error": type(exc).__name__})


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

def _recordings_by_state(app: AppContext) -> dict[str, int]:
    with Session(app.engine) as session:
        rows = session.exec(select(Recording.state, func.count()).group_by(Recording.state)).all()
    return {state: int(count) for state, count in rows}


class _HealthHandler(BaseHTTPRequestHandler):
    runtime: Runtime

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        rt = self.runtime
        if self.path.startswith("/metrics"):
            for state, count in _recordings_by_state(rt.app).items():
                METRICS.recordings.labels(state=state).set(count)
            body = generate_latest(METRICS.registry)
            self._send(200, body, "text/plain; version=0.0.4")
        elif self.path.startswith("/healthz"):
            try:
                counts = _recordings_by_state(rt.app)
                status, code = "ok", 200
            except GovernanceError:
                counts, status, code = {}, "database unavailable", 503
            payload = {"status": status, "worker": rt.worker, "recordings": counts,
                       "last_runs": rt.last, "stopping": rt.stopping.is_set()}
            self._send(code, json.dumps(payload).encode(), "application/json")
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
          stop_event: threading.Event | None = None, parent: int | None = None) -> None:
    """Run one daemon process until signalled (or `stop_event` is set, for tests); a worker
    started by `daemon --workers` (`parent`: its pid) also stops when that process is gone."""
    global _RUNTIME
    configure_logging(settings.logging.level, settings.log_file)
    app = AppContext.open(settings)
    worker = settings.daemon.worker_id or worker_identity()
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


def _child(config_file: str | None, home: str, threads: int, number: int, parent: int) -> None:
    os.environ["MG_HOME"] = home
    settings = load_settings(config_file)
    settings.transcription.cpu_threads = threads
    if settings.daemon.worker_id:  # each worker process has a name of its own in leases
        settings.daemon.worker_id = f"{settings.daemon.worker_id}/{number}"
    serve(settings, only_process=True, parent=parent)


def run_daemon(settings: Settings, *, workers: int | None = None,
               config_file: Path | None = None) -> None:
    """The CLI entry: this process schedules everything; `workers - 1` more only process.

    `workers` None takes `daemon.workers` (0: auto, see sizing.py); each worker gets
    `transcription.cpu_threads` model threads, or its share of the cores when that is 0."""
    from meeting_governance.preflight import run_preflight
    from meeting_governance.sizing import available_memory, host_cores, plan_workers

    configure_logging(settings.logging.level, settings.log_file)
    # A missing model or GPU, an unwritable path or an unreadable keyring stops us now.
    device = run_preflight(settings).device
    plan = plan_workers(settings.daemon.workers if workers is None else workers,
                        cores=host_cores(), threads=settings.transcription.cpu_threads,
                        sqlite=settings.database_url.startswith("sqlite"),
                        gpu=device is not None and device.device == "cuda", memory=available_memory())
    log.info("daemon workers", extra={"workers": plan.workers, "threads": plan.threads,
                                      "why": plan.reason})
    settings.transcription.cpu_threads = plan.threads
    children: list[Any] = []
    ctx = multiprocessing.get_context("spawn")
    for number in range(2, plan.workers + 1):
        child = ctx.Process(target=_child, args=(str(config_file) if config_file else None,
                                                 str(settings.home), plan.threads, number,
                                                 os.getpid()), daemon=False)
        child.start()
        children.append(child)
    try:
        serve(settings)
    finally:
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=600)
