"""One rule for every lease: free when it expired (by the database's clock) or when its owner is
a dead process of this host; never while a live owner holds it."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext
from meeting_governance.locks import (
    acquire_row_lock,
    claim,
    database_now,
    exclusive,
    owner_is_dead,
    renew_lease,
)
from meeting_governance.models import Recording, ServiceLock

HOST = socket.gethostname()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def leased(app: AppContext, name: str, owner: str, expires_in: timedelta,
           state: str = "downloading") -> int:
    with app.session() as session:
        rec = Recording(graph_recording_id=name, meeting_id=name, organizer_id="org",
                        state=state, lease_owner=owner,
                        lease_expires_at=datetime.now(UTC) + expires_in)
        session.add(rec)
        session.flush()
        assert rec.id is not None
        return rec.id


def test_owner_is_dead() -> None:
    assert owner_is_dead(f"{HOST}:{dead_pid()}:tag")
    assert not owner_is_dead(f"{HOST}:{os.getpid()}")
    assert not owner_is_dead(f"another-host:{dead_pid()}")  # cannot tell: wait for expiry
    assert not owner_is_dead("w1")


def test_claim_takes_only_free_leases(app: AppContext) -> None:
    hour = timedelta(hours=1)
    live_here = leased(app, "live-here", f"{HOST}:{os.getpid()}", hour)
    live_elsewhere = leased(app, "live-elsewhere", "another-host:42", hour)
    dead_here = leased(app, "dead-here", f"{HOST}:{dead_pid()}", hour)
    expired = leased(app, "expired", "another-host:43", -hour)
    leased(app, "stored-dead-here", f"{HOST}:{dead_pid()}", hour, state="stored")  # finished
    taken = claim(app, "restarted", 10)
    assert sorted(taken) == sorted([dead_here, expired])
    with app.session() as session:
        owners = {r.id: r.lease_owner for r in session.exec(select(Recording)).all()}
    assert owners[live_here] == f"{HOST}:{os.getpid()}"
    assert owners[live_elsewhere] == "another-host:42"


def test_named_locks_follow_the_same_rule(app: AppContext) -> None:
    ttl = timedelta(minutes=5)
    assert acquire_row_lock(app, "thing", f"{HOST}:{dead_pid()}", ttl) is None
    assert acquire_row_lock(app, "thing", "me", ttl) is None  # its holder died: taken at once
    assert acquire_row_lock(app, "thing", "another-host:1", ttl) == "me"
    with exclusive(app, "poller", "one") as first:
        assert first
        with exclusive(app, "poller", "two") as second:
            assert not second


def test_database_now_is_the_servers_time(app: AppContext) -> None:
    with app.session() as session:
        before = datetime.now(UTC)
        now = database_now(session)
    assert now.tzinfo is not None
    assert abs(now - before) < timedelta(minutes=1)  # same machine here: close to ours


def test_a_host_whose_clock_runs_fast_takes_no_live_lease(app: AppContext) -> None:
    """Leases end by the database's clock, not by the clock of the host that asks."""
    live_elsewhere = leased(app, "live-elsewhere", "another-host:42", timedelta(hours=1))
    app.clock = FixedClock(datetime.now(UTC) + timedelta(hours=3))  # this host: 3 h ahead
    assert claim(app, "fast-host", 10) == []
    assert acquire_row_lock(app, "thing", "another-host:1", timedelta(hours=1)) is None
    assert acquire_row_lock(app, "thing", "fast-host:1", timedelta(minutes=5)) == "another-host:1"
    with app.session() as session:
        rec = session.get(Recording, live_elsewhere)
        lock = session.get(ServiceLock, "thing")
        assert rec is not None and rec.lease_owner == "another-host:42"
        assert lock is not None and lock.owner == "another-host:1"


def test_a_renewed_lease_ends_by_the_database_clock(app: AppContext) -> None:
    rid = leased(app, "mine", "w1", timedelta(seconds=1))
    app.clock = FixedClock(datetime(2001, 1, 1, tzinfo=UTC))  # a host far behind
    assert renew_lease(app, rid, "w1")
    with app.session() as session:
        rec = session.get(Recording, rid)
        assert rec is not None and rec.lease_expires_at is not None
        left = rec.lease_expires_at - database_now(session)
    assert timedelta(seconds=app.settings.daemon.lease_seconds - 60) < left
    assert claim(app, "other", 10) == []  # not expired, though the asking host thinks 2001
