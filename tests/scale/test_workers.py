"""Past one machine: several daemons share one PostgreSQL database (issue 8).

Three daemon processes (as if on three hosts) and 30 recordings from the emulator: each
recording is transcribed exactly once; a worker SIGKILLed mid-item loses nothing (its lease
expires and another worker finishes the item); only one process polls at a time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from meeting_governance import audit
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import make_engine
from meeting_governance.locks import exclusive
from meeting_governance.models import AuditEntry, Recording, Transcript
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorKeys,
    EmulatorServer,
    Meeting,
    Organizer,
    Person,
    Scenario,
)
from mg_emulator import (
    Recording as EmuRecording,
)
from mg_emulator.scenario import default_media_dir
from tests.conftest import make_settings
from tests.pipeline.conftest import subprocess_env
from tests.pipeline.test_daemon import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"
MEMBER = "a1b2c3d4-0001-4000-8000-000000000001"
COUNT = 30


def many_recordings() -> Scenario:
    base = datetime(2026, 11, 3, 9, tzinfo=UTC)
    meetings, recordings = [], []
    for n in range(COUNT):
        start = base + timedelta(hours=n)
        mid = f"MSo-scale-{n:02d}=="
        report = AttendanceReport(id=f"rep-{n}", records=(
            AttendanceRecord(id="o", email="alex@contoso.example", identity_id=ORG, seconds=60,
                             tenant_id="t"),
            AttendanceRecord(id="m", email="casey@contoso.example", identity_id=MEMBER,
                             seconds=60, tenant_id="t")))
        meetings.append(Meeting(id=mid, organizer=ORG, subject=f"Scale {n}", start=start,
                                end=start + timedelta(minutes=30),
                                attendance_reports=(report,)))
        recordings.append(EmuRecording(id=f"VjIj-scale-{n:02d}=", meeting=mid,
                                       media=f"sample-{n % 6 + 1}.{'mp4' if n % 6 == 4 else 'm4a'}",
                                       content_type="video/mp4", created=start, end=start))
    return Scenario(tenant_id="t", client_id="c", client_secret="s", page_size=7,
                    organizers=(Organizer(id=ORG, upn="alex@contoso.example"),),
                    meetings=tuple(meetings), recordings=tuple(recordings),
                    people=(Person(id=MEMBER, upn="casey@contoso.example",
                                   mail="casey@contoso.example"),))


def _counts(db: str) -> tuple[dict[str, int], list[Recording]]:
    engine = make_engine(db)
    try:
        with Session(engine) as session:
            rows = list(session.exec(select(Recording)).all())
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts, rows


def test_three_workers_share_the_work_and_survive_a_sigkill(pg_schema_url: str, home: Path,
                                                            tmp_path: Path,
        emulator_keys: EmulatorKeys) -> None:
    settings = make_settings(home, pg_schema_url)
    initialise(settings, home / "config.toml")
    with EmulatorServer(many_recordings(), media_dir=default_media_dir(),
                        keys=emulator_keys) as emulator:
        workers: dict[str, subprocess.Popen[bytes]] = {}

        def start(name: str) -> None:
            env = subprocess_env(home, emulator, pg_schema_url,
                                 MG_DAEMON__WORKER_ID=name, MG_DAEMON__LEASE_SECONDS="10",
                                 MG_DAEMON__PROCESS_INTERVAL_SECONDS="1",
                                 MG_DAEMON__WORKERS="1",  # three hosts, one worker each
                                 MG_TRANSCRIPTION__CPU_THREADS="1")
            log = (tmp_path / f"{name}.log").open("wb")
            workers[name] = subprocess.Popen([sys.executable, "-m", "meeting_governance",
                                              "daemon"], env=env, stdout=log,
                                             stderr=subprocess.STDOUT)

        killed_item: int | None = None
        try:
            # w1 starts first (a worker keeps at the queue while work is due, so a late
            # starter might find none) and is killed while it holds an item in flight.
            start("w1")
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and killed_item is None:
                _, rows = _counts(pg_schema_url)
                mine = [r for r in rows if r.lease_owner == "w1"
                        and r.state in ("downloading", "transcribing")]
                if mine:
                    workers["w1"].send_signal(signal.SIGKILL)
                    killed_item = mine[0].id
                time.sleep(0.05)
            assert killed_item is not None, "w1 never held an item"
            start("w2")
            start("w3")
            wait_for(lambda: _counts(pg_schema_url)[0].get("stored", 0) == COUNT, 300,
                     "all 30 recordings to be stored by the remaining workers")
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in workers.values():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        content = [r.path for r in emulator.requests.all() if r.path.endswith("/content")]

    engine = make_engine(pg_schema_url)
    with Session(engine) as session:
        transcripts = session.exec(select(Transcript)).all()
        discovered = session.exec(select(AuditEntry).where(
            AuditEntry.action == "recording.discovered")).all()
        stored_by = {e.actor for e in session.exec(select(AuditEntry).where(
            AuditEntry.action == "recording.stored")).all()}
        killed = session.get(Recording, killed_item)
    engine.dispose()
    # Exactly once: one transcript per recording, every recording discovered once.
    assert len(transcripts) == COUNT
    assert len({t.recording_id for t in transcripts}) == COUNT
    assert len(discovered) == COUNT
    # Media fetched once per recording, plus at most the one the killed worker had started.
    assert COUNT <= len(content) <= COUNT + 1
    # The killed worker's item was finished by another worker.
    assert killed is not None and killed.state == "stored"
    assert len(stored_by) >= 2  # the work was shared
    assert audit.verify(make_engine(pg_schema_url)).ok


def test_only_one_poller_at_a_time(pg_schema_url: str, home: Path, tmp_path: Path,
        emulator_keys: EmulatorKeys) -> None:
    settings = make_settings(home, pg_schema_url)
    initialise(settings, home / "config.toml")
    app = AppContext.open(settings)
    with EmulatorServer(many_recordings(), media_dir=default_media_dir(),
                        keys=emulator_keys) as emulator:
        env = subprocess_env(home, emulator, pg_schema_url)
        with exclusive(app, "poller", "another-host:1") as mine:
            assert mine
            blocked = subprocess.run([sys.executable, "-m", "meeting_governance", "poll"],
                                     env=env, capture_output=True, text=True, timeout=120)
        assert blocked.returncode != 0
        assert "another process is polling" in blocked.stderr
        assert not [r for r in emulator.requests.all() if "getAllRecordings" in r.path]
        done = subprocess.run([sys.executable, "-m", "meeting_governance", "poll"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    with app.session() as session:
        assert len(session.exec(select(Recording).where(col(Recording.id) > 0)).all()) == COUNT
    app.close()


def test_daemon_workers_option_starts_processes_that_share_the_work(
        pg_schema_url: str, home: Path, tmp_path: Path,
        emulator_keys: EmulatorKeys) -> None:
    """`daemon --workers 2` on one host: two processes, each with its own model, one poller."""
    settings = make_settings(home, pg_schema_url)
    initialise(settings, home / "config.toml")
    with EmulatorServer(many_recordings(), media_dir=default_media_dir(),
                        keys=emulator_keys) as emulator:
        env = subprocess_env(home, emulator, pg_schema_url, MG_DAEMON__PROCESS_BATCH="1",
                             MG_DAEMON__PROCESS_INTERVAL_SECONDS="1",
                             MG_TRANSCRIPTION__CPU_THREADS="1")
        daemon = subprocess.Popen([sys.executable, "-m", "meeting_governance", "daemon",
                                   "--workers", "2"], env=env,
                                  stdout=(tmp_path / "daemon.log").open("wb"),
                                  stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _counts(pg_schema_url)[0].get("stored", 0) == COUNT, 300,
                     "both worker processes to store every recording")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=120) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
    engine = make_engine(pg_schema_url)
    with Session(engine) as session:
        workers = {e.actor for e in session.exec(select(AuditEntry).where(
            AuditEntry.action == "recording.downloading")).all()}
        assert len(session.exec(select(Transcript)).all()) == COUNT
    engine.dispose()
    assert len(workers) == 2, workers


def test_several_workers_on_sqlite_are_refused(home: Path) -> None:
    initialise(make_settings(home), home / "config.toml")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(home)
    run = subprocess.run([sys.executable, "-m", "meeting_governance", "daemon", "--workers", "2"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "needs PostgreSQL" in run.stderr and "Traceback" not in run.stderr


def _worker_processes(pid: int) -> list[int]:
    """The worker processes a daemon spawned (multiprocessing's own helpers left out)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_by_default_postgresql_gets_one_single_threaded_worker_per_core(
        pg_schema_url: str, home: Path, tmp_path: Path,
        emulator_keys: EmulatorKeys) -> None:
    """daemon.workers = 0 (auto): as many workers as cores, one model thread each; a worker
    whose daemon was killed outright stops by itself rather than run on unsupervised."""
    import json
    import os

    cores = len(os.sched_getaffinity(0))
    settings = make_settings(home, pg_schema_url)
    initialise(settings, home / "config.toml")
    with EmulatorServer(many_recordings(), media_dir=default_media_dir(),
                        keys=emulator_keys) as emulator:
        env = subprocess_env(home, emulator, pg_schema_url,
                             MG_DAEMON__PROCESS_INTERVAL_SECONDS="1")
        daemon = subprocess.Popen([sys.executable, "-m", "meeting_governance", "daemon"],
                                  env=env, stdout=(tmp_path / "daemon.log").open("wb"),
                                  stderr=subprocess.STDOUT)
        children: list[int] = []
        try:
            wait_for(lambda: _counts(pg_schema_url)[0].get("stored", 0) >= 2 * cores, 300,
                     "the workers to store some recordings")
            children = _worker_processes(daemon.pid)
            assert len(children) == cores - 1
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
            wait_for(lambda: not any(_alive(pid) for pid in children), 120,
                     "the orphaned workers to notice and stop")
        finally:
            if daemon.poll() is None:
                daemon.kill()
            for pid in children:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
    entries = [json.loads(line) for line in
               (home / "logs" / "meeting-governance.jsonl").read_text().splitlines()]
    plan = next(e for e in entries if e.get("msg") == "daemon workers")
    assert (plan["workers"], plan["threads"]) == (cores, 1)
    assert any(e.get("msg") == "the daemon that started this worker is gone; stopping"
               for e in entries) or cores == 1
    if cores > 1:
        engine = make_engine(pg_schema_url)
        with Session(engine) as session:
            actors = {e.actor for e in session.exec(select(AuditEntry).where(
                AuditEntry.action == "recording.downloading")).all()}
        engine.dispose()
        assert len(actors) == cores, actors
