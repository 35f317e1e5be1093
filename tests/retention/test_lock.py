"""Only one purge at a time: a second one is refused at once with `LockedError`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.errors import LockedError
from meeting_governance.models import ServiceLock
from meeting_governance.purge import LOCK_NAME, purge, purge_lock

from .helpers import T0, make_transcript


def cli_env(app: AppContext) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(app.settings.home)
    env["MG_DATABASE__URL"] = app.settings.database_url
    env["MG_CONFIG"] = str(app.settings.home / "config.toml")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_second_purge_is_refused_while_one_runs(app: AppContext) -> None:
    make_transcript(app)
    with purge_lock(app):
        with pytest.raises(LockedError, match="another purge is running"):
            purge(app, as_of=T0)
        assert purge(app, as_of=T0, dry_run=True).purged == 1  # a dry run writes nothing
        other = subprocess.run([sys.executable, "-m", "meeting_governance", "purge", "--json",
                                "--as-of", T0.isoformat()], env=cli_env(app),
                               capture_output=True, text=True, timeout=120)
        assert other.returncode == 75  # EX_TEMPFAIL, as scripts/purge
        assert "another purge is running" in other.stderr
        assert other.stdout == ""
    assert purge(app, as_of=T0).purged == 1  # free again once released


def test_lease_of_a_dead_process_is_taken_over(app: AppContext) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with app.session() as session:
        session.add(ServiceLock(name=LOCK_NAME, owner=f"{socket.gethostname()}:{dead.pid}:gone",
                                expires_at=datetime.now(UTC) + timedelta(hours=1)))
    make_transcript(app)
    assert purge(app, as_of=T0).purged == 1


def test_live_lease_elsewhere(app: AppContext) -> None:
    with app.session() as session:
        session.add(ServiceLock(name=LOCK_NAME, owner="another-host:1234:abcd",
                                expires_at=datetime.now(UTC) + timedelta(hours=1)))
    make_transcript(app)
    if is_sqlite(app.engine):
        with pytest.raises(LockedError, match="another-host"):
            purge(app, as_of=T0)
        with app.session() as session:  # an expired lease is free
            row = session.get(ServiceLock, LOCK_NAME)
            assert row is not None
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(row)
    # On PostgreSQL the advisory lock is the authority: no other session holds it, so the
    # row is a leftover of a crashed run and is taken over.
    assert purge(app, as_of=T0).purged == 1
