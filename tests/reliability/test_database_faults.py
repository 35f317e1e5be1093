"""Database faults: SQLite locked by another process (before a run, and right before the store
transaction), PostgreSQL backends terminated under a running worker. Each is a clear
`DatabaseError` or a wait that then completes — never a crash, corruption or a lost item.

The FakeTranscriber stands in for the model except where the fault has to land during a long
transcription (the lease keeper under terminated backends)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from meeting_governance.errors import DatabaseError
from meeting_governance.pipeline import Services, poll, process
from meeting_governance.transcribe import Transcriber, TranscriptResult
from tests.conftest import POSTGRES_URL, DatabaseTemplate
from tests.fake_transcriber import FakeTranscriber

from .conftest import (
    Env,
    assert_invariants,
    expire_leases,
    make_due,
    make_env,
    row,
    rows,
    staging_files,
)

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE audit_head SET id = id")  # a real write transaction, held
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


class Locker:
    """Another process holding SQLite's write lock (`BEGIN IMMEDIATE`) for `seconds`."""

    def __init__(self, db_path: Path, seconds: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db_path),
                                      str(seconds)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"
        self.started = time.monotonic()

    def wait(self) -> None:
        assert self.proc.wait(timeout=60) == 0


class HookedTranscriber(Transcriber):
    """The env's own transcriber; `after` runs once transcription is done, just before the
    store."""

    def __init__(self, inner: Transcriber, after: Callable[[], None]) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.after = after

    def transcribe(self, path: Path, progress: Any = None) -> TranscriptResult:
        result = self.inner.transcribe(path, progress)
        self.after()
        return result


def hook(e: Env, after: Callable[[], None]) -> None:
    inner = e.services.transcriber
    if isinstance(inner, HookedTranscriber):
        inner = inner.inner
    e.services = Services(graph_factory=e.services.graph_factory,
                          transcriber=HookedTranscriber(inner, after))


def db_path(e: Env) -> Path:
    return Path(e.settings.database_url.split("///", 1)[1])


def integrity(e: Env) -> str:
    with sqlite3.connect(db_path(e)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def short_busy_env(home: Path, emulator: Any, fake_transcriber: FakeTranscriber,
                   db_template: DatabaseTemplate) -> Iterator[Env]:
    e = make_env(home, None, emulator, fake_transcriber, template=db_template,
                 database={"busy_timeout_ms": 300})
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


def _poll(e: Env) -> None:
    with e.graph() as graph:
        assert poll(e.app, graph).new == 5


def test_sqlite_locked_before_a_run_is_a_clear_error_then_the_run_completes(
        short_busy_env: Env) -> None:
    e = short_busy_env
    _poll(e)
    locker = Locker(db_path(e), 3)
    with pytest.raises(DatabaseError, match="database is locked"):
        process(e.app, e.services, limit=20)
    locker.wait()
    assert {r.state for r in rows(e).values()} == {"discovered"}
    assert all(r.lease_owner is None for r in rows(e).values())  # the claim rolled back

    process(e.app, e.services, limit=20)
    assert row(e, "ok").state == "stored"
    assert integrity(e) == "ok"
    assert_invariants(e)


def test_sqlite_locked_with_a_long_busy_timeout_waits_and_completes(sqlite_env: Env) -> None:
    e = sqlite_env
    _poll(e)
    locker = Locker(db_path(e), 2)
    process(e.app, e.services, limit=20)  # busy_timeout 15 s (the default) outlasts the lock
    assert time.monotonic() - locker.started >= 1.5
    locker.wait()
    assert row(e, "ok").state == "stored"
    assert integrity(e) == "ok"
    assert_invariants(e)


def test_sqlite_locked_at_the_store_step_loses_nothing(short_busy_env: Env) -> None:
    """The lock arrives between transcription and the store transaction: the run stops with a
    DatabaseError, the media is deleted, nothing half-stored; a later worker stores it once."""
    e = short_busy_env
    _poll(e)
    lockers: list[Locker] = []
    hook(e, lambda: lockers.append(Locker(db_path(e), 3)) if not lockers else None)
    with pytest.raises(DatabaseError, match="database is locked"):
        process(e.app, e.services, limit=20)
    lockers[0].wait()
    ok = row(e, "ok")
    assert ok.state == "transcribing" and ok.lease_owner  # resumable once the lease expires
    assert staging_files(e) == []
    assert integrity(e) == "ok"

    hook(e, lambda: None)
    expire_leases(e)
    process(e.app, e.services, limit=20)
    assert row(e, "ok").state == "stored"
    assert_invariants(e)


# -- PostgreSQL ----------------------------------------------------------------------------

@contextmanager
def installation_on_postgres(home: Path, pg_schema_url: str, emulator: Any,
                             model: Any) -> Iterator[tuple[Env, str]]:
    """An installation on PostgreSQL whose connections carry their own application_name, so
    the test terminates only its own backends (others share this server)."""
    name = f"mg-reliability-{uuid.uuid4().hex[:10]}"
    e = make_env(home, f"{pg_schema_url}&application_name={name}", emulator, model)
    try:
        yield e, name
    finally:
        e.services.close()
        e.app.close()


@pytest.fixture
def pg_env(home: Path, pg_schema_url: str, emulator: Any,
           fake_transcriber: FakeTranscriber) -> Iterator[tuple[Env, str]]:
    with installation_on_postgres(home, pg_schema_url, emulator, fake_transcriber) as made:
        yield made


@pytest.fixture
def pg_env_real_model(home: Path, pg_schema_url: str, emulator: Any,
                      whisper_model: Any) -> Iterator[tuple[Env, str]]:
    """The real model: its transcription lasts long enough for the lease keeper to renew."""
    with installation_on_postgres(home, pg_schema_url, emulator, whisper_model) as made:
        yield made


def terminate_backends(application_name: str) -> int:
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                {"name": application_name}).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


@pytest.mark.postgres
def test_postgres_backends_terminated_mid_run_reconnect_and_continue(
        pg_env: tuple[Env, str]) -> None:
    e, name = pg_env
    _poll(e)
    assert terminate_backends(name) >= 1  # the pool's idle connections die under it

    killed: list[int] = []
    hook(e, lambda: killed.append(terminate_backends(name)))
    report = process(e.app, e.services, limit=20)  # pre-ping finds the dead ones, reconnects
    assert killed and killed[0] >= 1, "backends were terminated between transcription and store"
    assert len(report.outcomes) == 5
    assert row(e, "ok").state == "stored" and row(e, "optout").state == "stored"
    assert_invariants(e)


@pytest.mark.postgres
def test_postgres_backends_terminated_while_a_lease_keeper_runs(
        pg_env_real_model: tuple[Env, str]) -> None:
    """Kill the backends repeatedly while transcription runs (the lease keeper renews in the
    background on its own connection): the run still completes."""
    e, name = pg_env_real_model
    _poll(e)
    stop = threading.Event()

    def keep_killing() -> None:
        while not stop.wait(0.3):
            terminate_backends(name)

    killer = threading.Thread(target=keep_killing, daemon=True)

    def start_killing() -> None:
        if not killer.is_alive():
            killer.start()

    hook(e, start_killing)
    try:
        process(e.app, e.services, limit=20)
    except DatabaseError:
        # A backend killed inside a transaction: a clear error, the item resumes later.
        pass
    finally:
        stop.set()
        killer.join(timeout=5)
    hook(e, lambda: None)
    for _ in range(5):
        expire_leases(e)
        make_due(e)
        process(e.app, e.services, limit=20)
        if row(e, "ok").state == "stored" and row(e, "optout").state == "stored":
            break
    assert row(e, "ok").state == "stored" and row(e, "optout").state == "stored"
    assert_invariants(e)
