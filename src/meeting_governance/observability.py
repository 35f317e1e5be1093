"""The Prometheus metrics (logging lives in `logs.py`; its names are re-exported here).

In the daemon the metrics are multiprocess (`enable_multiprocess`): every worker process
writes its samples to files in one directory and the one `/metrics` endpoint reads them all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from meeting_governance.logs import JsonFormatter, configure_logging, redact

__all__ = ["METRICS", "JsonFormatter", "Metrics", "configure_logging", "enable_multiprocess",
           "multiprocess_dir", "redact"]


class Metrics:
    """The process's Prometheus metrics, in a registry of their own (tests make fresh ones).

    What the database knows (recordings by state, queue depth, last success per job, health)
    is not here: `health.DatabaseCollector` reads it at each scrape, once for all processes.
    """

    def __init__(self) -> None:
        self.build()

    def build(self) -> None:
        """(Re)create every metric: after `enable_multiprocess` they write to its files."""
        self.registry = CollectorRegistry()
        self.transcription_seconds = Counter(
            "mg_transcription_seconds", "Wall seconds spent transcribing", registry=self.registry)
        self.audio_seconds = Counter("mg_audio_seconds", "Seconds of audio transcribed",
                                     registry=self.registry)
        self.errors = Counter("mg_errors", "Pipeline errors by kind", ["kind"],
                              registry=self.registry)
        self.purged = Counter("mg_purged_transcripts", "Transcripts purged",
                              registry=self.registry)
        self.step_seconds = Histogram("mg_step_seconds", "Pipeline step duration", ["step"],
                                      registry=self.registry)
        self.discovery_restarts = Counter(
            "mg_discovery_restarts", "Delta links dropped and discovery started anew "
            "(rejected by Graph, another host, another configuration, or by hand)",
            registry=self.registry)
        self.directory_lookups = Counter(
            "mg_directory_lookups", "Participant identities by where they came from",
            ["source"], registry=self.registry)
        self.job_runs = Counter("mg_job_runs", "Scheduled job runs by job and outcome",
                                ["job", "outcome"], registry=self.registry)
        self.poll_errors = Counter(
            "mg_poll_errors", "Failed polls by cause (credential, sign_in, forbidden, "
            "throttled, unreachable, graph_server, graph, database, other)", ["cause"],
            registry=self.registry)
        # One sample per live worker process (multiprocess mode adds its pid as a label).
        self.worker = Gauge("mg_worker_info", "A daemon worker process that is running",
                            ["worker", "role"], registry=self.registry,
                            multiprocess_mode="liveall")


METRICS = Metrics()


def multiprocess_dir() -> Path | None:
    """Where this process's metrics files go, when multiprocess mode is on."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def enable_multiprocess(path: Path, *, fresh: bool) -> None:
    """Switch this process's metrics to files under `path`, shared with the daemon's other
    worker processes (`fresh`: empty it first — the daemon that owns it, at start).

    prometheus_client picks its value class when it is imported; this sets the directory
    (inherited by worker processes started afterwards) and rebuilds `METRICS` on files."""
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = values.MultiProcessValue()
    METRICS.build()


def mark_process_dead(pid: int) -> None:
    """A worker process ended: drop its live gauges (its counters keep counting in the sum)."""
    from prometheus_client import multiprocess

    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(pid, str(path))


def scrape(extra: CollectorRegistry | None = None) -> bytes:
    """The text exposition of every process's metrics (one process's when not multiprocess),
    followed by `extra` (the database's)."""
    from prometheus_client import generate_latest

    path = multiprocess_dir()
    if path is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(path))
        body = generate_latest(registry)
    else:
        body = generate_latest(METRICS.registry)
    return body + (generate_latest(extra) if extra is not None else b"")
