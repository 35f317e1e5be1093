"""One rule for every lease: free when it expired (by `app.clock`) or when its owner is a dead
process of this host; never while a live owner holds it."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta

from sqlmodel import select

from meeting_governance.context import AppContext
from meeting_governance.locks import acquire_row_lock, claim, exclusive, owner_is_dead
from meeting_governance.models import Recording

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
                        lease_expires_at=app.clock.now() + expires_in)
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
