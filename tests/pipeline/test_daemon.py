"""The daemon as an operator runs it: a real process, real signals, its health endpoint."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlmodel import Session, select

from meeting_governance.config import load_settings
from meeting_governance.context import initialise
from meeting_governance.db import make_engine
from meeting_governance.models import Recording, Transcript
from mg_emulator import EmulatorServer
from tests.conftest import make_settings

from .conftest import subprocess_env

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def states(db: str) -> dict[str, int]:
    engine = make_engine(db)
    try:
        with Session(engine) as session:
            rows = session.exec(select(Recording)).all()
            counts: dict[str, int] = {}
            for row in rows:
                counts[row.state] = counts.get(row.state, 0) + 1
            return counts
    finally:
        engine.dispose()


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "meeting_governance", "daemon"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_daemon_runs_the_pipeline_serves_health_and_stops_on_sigterm(
        home: Path, emulator: EmulatorServer, tmp_path: Path) -> None:
    initialise(make_settings(home), home / "config.toml")
    port = free_port()
    env = subprocess_env(home, emulator, MG_DAEMON__METRICS_PORT=str(port),
                         MG_DAEMON__PROCESS_INTERVAL_SECONDS="1")
    db = f"sqlite:///{home / 'meeting-governance.db'}"
    daemon = start_daemon(env, tmp_path / "daemon.log")
    try:
        # poll runs at start, process every second: 2 stored, 1 failed (corrupt), the rest gated.
        wait_for(lambda: states(db).get("stored", 0) == 2 and states(db).get("failed", 0) == 1,
                 180, "the daemon to process the sample recordings")
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                                   timeout=5).read())
        assert health["status"] == "ok" and health["recordings"]["stored"] == 2
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'mg_recordings{state="stored"} 2.0' in metrics
        assert b"mg_audio_seconds_total" in metrics

        # A second daemon on the same SQLite database is refused, clearly.
        second = subprocess.run([sys.executable, "-m", "meeting_governance", "daemon"],
                                env={**env, "MG_DAEMON__METRICS_PORT": "0"},
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert "another daemon" in second.stderr and "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    engine = make_engine(db)
    with Session(engine) as session:
        assert len(session.exec(select(Transcript)).all()) == 2
    engine.dispose()
    # The job store persisted the schedules in the application database.
    settings = load_settings(None, home=home)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        jobs = {row[0] for row in conn.exec_driver_sql("SELECT id FROM apscheduler_jobs")}
    engine.dispose()
    assert {"poll", "purge", "checkpoint"} <= jobs  # the daily signed audit checkpoint too
    log_text = (home / "logs" / "meeting-governance.jsonl").read_text()
    assert "daemon stopped" in log_text


def test_process_asked_for_a_missing_gpu_stops_before_claiming_or_downloading(
        home: Path, emulator: EmulatorServer) -> None:
    """transcription.device = "cuda" on a machine without one: one line, exit 2, and every
    recording stays as discovered, its media never requested."""
    initialise(make_settings(home), home / "config.toml")
    env = subprocess_env(home, emulator)
    cli = [sys.executable, "-m", "meeting_governance"]
    subprocess.run([*cli, "poll"], env=env, check=True, capture_output=True, timeout=120)
    db = f"sqlite:///{home / 'meeting-governance.db'}"
    discovered = states(db)

    done = subprocess.run([*cli, "process"], env={**env, "MG_TRANSCRIPTION__DEVICE": "cuda"},
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stderr
    assert 'transcription.device = "cuda"' in done.stderr and "no CUDA device" in done.stderr
    assert "Traceback" not in done.stderr
    assert states(db) == discovered == {"discovered": len(emulator.scenario.recordings)}
    assert not [r for r in emulator.requests.all() if r.path.endswith("/content")]
    assert not list((home / "staging").glob("*/*"))


def test_the_daemon_keeps_at_due_recordings_rather_than_waiting_an_interval(
        home: Path, emulator: EmulatorServer, tmp_path: Path) -> None:
    """With an hour between passes, one pass still takes every due recording (it used to take
    `process_batch` and idle until the next interval)."""
    initialise(make_settings(home), home / "config.toml")
    env = subprocess_env(home, emulator, MG_DAEMON__PROCESS_INTERVAL_SECONDS="3600")
    db = f"sqlite:///{home / 'meeting-governance.db'}"
    daemon = start_daemon(env, tmp_path / "daemon.log")
    try:
        wait_for(lambda: states(db).get("stored", 0) == 2 and states(db).get("failed", 0) == 1,
                 180, "one pass of the daemon to take every due recording")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
