"""SIGKILL `python -m meeting_governance process` at each pipeline state — mid-download (with a
partial file on disk), mid-transcription, right after a store — then run again once the lease
has expired: every recording ends where it should exactly once, one transcript per stored
recording, no orphaned temporary media, no half-written rows, audit chain intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from meeting_governance.locks import owner_is_dead
from meeting_governance.pipeline import process
from tests.pipeline.conftest import ORG

from .conftest import (
    Env,
    assert_invariants,
    make_env,
    recording_id,
    row,
    rows,
    staging_files,
    transitions,
)

pytestmark = pytest.mark.slow

LEASE_SECONDS = 10


@pytest.fixture
def kill_env(home: Path, db_url: str, emulator: Any, whisper_model: Any) -> Iterator[Env]:
    e = make_env(home, db_url, emulator, whisper_model, download={"chunk_bytes": 4096},
                 daemon={"lease_seconds": LEASE_SECONDS})
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


def cli_env(e: Env, **extra: str) -> dict[str, str]:
    """The worker's whole configuration from MG_HOME and MG_* variables, as an operator sets it."""
    g = e.settings.graph
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env.update({
        "MG_HOME": str(e.settings.home),
        "MG_DATABASE__URL": e.settings.database_url,
        "MG_GRAPH__TENANT_ID": g.tenant_id,
        "MG_GRAPH__CLIENT_ID": g.client_id,
        "MG_GRAPH__CLIENT_SECRET": g.client_secret,
        "MG_GRAPH__CLOUD": "custom",
        "MG_GRAPH__AUTHORITY_HOST": g.authority_host,
        "MG_GRAPH__BASE_URL": g.base_url,
        "MG_GRAPH__CA_BUNDLE": g.ca_bundle,
        "MG_GRAPH__ORGANIZERS": ORG,
        "MG_GRAPH__BACKOFF_BASE_S": "0",
        "MG_DAEMON__LEASE_SECONDS": str(LEASE_SECONDS),
        "MG_DOWNLOAD__CHUNK_BYTES": "4096",
        "MG_GATE__PARTICIPANTS_DEADLINE_HOURS": str(24 * 60),
    })
    env.update(extra)
    return env


def run_cli(e: Env, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    log = (e.settings.home.parent / "worker.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "meeting_governance", *args],
                            env=cli_env(e, **extra), stdout=log, stderr=log,
                            cwd=e.settings.home.parent)


def peek(e: Env, sql: str) -> list[tuple[Any, ...]]:
    """Read the database without taking the write lock the app's sessions take on SQLite."""
    url = e.settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchall()
    with e.app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).fetchall()]


def state_of(e: Env, key: str) -> str | None:
    found = peek(e, "SELECT graph_recording_id, state FROM recording")
    return dict(found).get(recording_id(key))


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str,
             timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the worker ended (rc {proc.returncode}) before {what}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def poll_once(e: Env) -> None:
    proc = run_cli(e, "poll")
    assert proc.wait(timeout=120) == 0, (e.settings.home.parent / "worker.log").read_text()
    assert len(rows(e)) == 5


def restart_after_lease(e: Env, *, killed_holding: bool = True) -> None:
    """A fresh worker takes the dead worker's items over at once — their leases name a process
    of this host that no longer exists (`locks.owner_is_dead`), so nobody waits for them to
    expire — and finishes them all. (A live lease is never taken: tests/foundation/test_locks.)
    Workers claim one recording at a time, so a worker killed right after a store may not have
    claimed its next recording yet: then it held none."""
    owners = {r.lease_owner for r in rows(e).values() if r.lease_owner}
    assert owners or not killed_holding, "the killed worker held leases"
    assert all(owner_is_dead(o) for o in owners), owners
    for _ in range(20):  # PostgreSQL may need a moment to drop the dead worker's row locks
        process(e.app, e.services, limit=20, worker="restarted")
        if not any(r.state in ("discovered", "downloading", "transcribing")
                   for r in rows(e).values()):
            break
        time.sleep(0.2)


def assert_final(e: Env) -> None:
    states = {k: row(e, k).state for k in ("ok", "optout", "unknown", "noreport", "corrupt")}
    assert states == {"ok": "stored", "optout": "stored", "unknown": "waiting",
                      "noreport": "waiting", "corrupt": "failed"}
    assert_invariants(e)
    # Exactly once: one transition into each terminal state per recording.
    for action in ("recording.stored", "recording.blocked"):
        assert all(n == 1 for n in transitions(e, action).values()), action
    assert staging_files(e) == []


def test_sigkill_mid_download_leaves_a_partial_file_that_the_restart_cleans(
        kill_env: Env) -> None:
    e = kill_env
    poll_once(e)
    # The first connection drops after 10 kB; the worker then backs off for 30-60 s with the
    # partial file on disk — where we kill it.
    e.emulator.faults.set(cut_download_after=10_000, cut_download_count=1)
    proc = run_cli(e, "process", "--limit", "20", MG_GRAPH__BACKOFF_BASE_S="60",
                   MG_GRAPH__BACKOFF_MAX_S="60")

    def partial_on_disk() -> bool:
        parts = [p for p in e.settings.staging_dir.rglob("*.part") if p.stat().st_size > 0]
        return state_of(e, "ok") == "downloading" and bool(parts) and any(
            r.path.endswith("/content") for r in e.emulator.requests.all())

    wait_for(partial_on_disk, proc, "a partial download on disk")
    time.sleep(0.2)  # let the cut land and the worker start its backoff
    kill(proc)
    assert state_of(e, "ok") == "downloading"
    assert staging_files(e), "the dead worker left its partial file"

    e.emulator.faults.reset()
    restart_after_lease(e)
    assert_final(e)


def test_sigkill_mid_transcription_resumes_and_stores_once(kill_env: Env) -> None:
    e = kill_env
    poll_once(e)
    proc = run_cli(e, "process", "--limit", "20")
    wait_for(lambda: state_of(e, "ok") == "transcribing", proc, "transcription")
    kill(proc)
    assert state_of(e, "ok") == "transcribing"
    assert peek(e, "SELECT count(*) FROM transcript") == [(0,)]

    restart_after_lease(e)
    assert_final(e)


def test_sigkill_right_after_a_store_keeps_it_and_finishes_the_rest(kill_env: Env) -> None:
    e = kill_env
    poll_once(e)
    proc = run_cli(e, "process", "--limit", "20")
    wait_for(lambda: peek(e, "SELECT count(*) FROM transcript") == [(1,)], proc,
             "the first transcript")
    kill(proc)
    assert state_of(e, "ok") == "stored"

    restart_after_lease(e, killed_holding=False)
    assert_final(e)
