"""PostgreSQL restarted under a running daemon (`pg_ctlcluster … restart`): it reconnects and
finishes the work; nothing is lost or done twice.

Restarting the server affects every client of it, so this runs where nothing else shares the
server during the suite: under CI (CI=true, the suite is serial) or when
TEST_PG_RESTART=1 is set. It needs root and Debian's pg_ctlcluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meeting_governance import audit
from meeting_governance.context import initialise
from meeting_governance.db import make_engine
from mg_emulator import EmulatorServer
from tests.conftest import make_settings
from tests.pipeline.conftest import subprocess_env
from tests.pipeline.test_daemon import states, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ENABLED = os.environ.get("CI") == "true" or os.environ.get("TEST_PG_RESTART") == "1"


def _cluster() -> str | None:
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if (p / "main").is_dir())
    return versions[-1] if versions else None


def _ready() -> bool:
    done = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False)
    return done.returncode == 0


@pytest.mark.skipif(not ENABLED, reason="restarts the shared PostgreSQL: only under CI or "
                    "TEST_PG_RESTART=1")
def test_daemon_survives_a_postgres_restart(pg_schema_url: str, home: Path,
                                            emulator: EmulatorServer, tmp_path: Path) -> None:
    version = _cluster()
    if version is None:
        pytest.skip("needs root and pg_ctlcluster to restart PostgreSQL")
    initialise(make_settings(home, pg_schema_url), home / "config.toml")
    env = subprocess_env(home, emulator, pg_schema_url, MG_DAEMON__PROCESS_INTERVAL_SECONDS="1",
                         MG_DAEMON__PROCESS_BATCH="1", MG_DAEMON__LEASE_SECONDS="10")
    daemon = subprocess.Popen([sys.executable, "-m", "meeting_governance", "daemon"], env=env,
                              stdout=(tmp_path / "daemon.log").open("wb"),
                              stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: states(pg_schema_url).get("stored", 0) >= 1, 180,
                 "the first recording to be stored")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                        "restart"], check=True, timeout=120)
        deadline = time.monotonic() + 60
        while not _ready():
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            time.sleep(0.5)
        # The scenario: 2 recordings pass the gate and are stored, 1 fails (corrupt media).
        wait_for(lambda: states(pg_schema_url).get("stored", 0) == 2
                 and states(pg_schema_url).get("failed", 0) == 1, 240,
                 "the daemon to reconnect and finish the work")
        assert daemon.poll() is None, "the daemon died with the database restart"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        deadline = time.monotonic() + 60
        while not _ready() and time.monotonic() < deadline:
            time.sleep(0.5)
    engine = make_engine(pg_schema_url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM transcript").scalar_one()
    assert stored == 2
    assert audit.verify(engine).ok
    engine.dispose()
