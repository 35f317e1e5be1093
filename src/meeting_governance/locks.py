"""Every lock and lease in one place, with one rule each for keys, time and dead owners.

- **Names are per installation**: a named lock is a `service_lock` row of this installation's
  database (its schema on a shared PostgreSQL) and, on PostgreSQL, also a session advisory lock
  whose key hashes the schema with the name, so installations sharing a server never collide.
- **One clock, the database's**: every expiry is written and compared in the database's time
  (`database_now`), so daemons on several hosts sharing one PostgreSQL agree on when a lease
  ends even when their own clocks drift; a host running fast can neither take a live lease
  nor keep a dead one. (Retry schedules, `next_attempt_at`, are domain time: `app.clock`.)
- **One way to detect a dead owner**: an owner is `host:pid[:tag]`; a lease whose owner is a
  process of this host that no longer exists is free at once, any other lease when it expires.
  (A PostgreSQL advisory lock also dies with its connection, across hosts.)

Users: the purge (`hold`, raising `LockedError`), the poller (`exclusive`, yielding whether
this process won), the SQLite daemon (`acquire_row_lock`), and the pipeline's per-recording
leases (`claim`, `renew_lease`, `LeaseKeeper`, `release`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.errors import GovernanceError, LockedError
from meeting_governance.models import Recording, ServiceLock
from meeting_governance.states import IN_FLIGHT, State

log = logging.getLogger(__name__)


# -- owners ----------------------------------------------------------------------------------
def new_owner() -> str:
    """This process, uniquely: `host:pid:tag`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """A lease left by a process of this host that no longer exists (a SIGKILLed holder)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _free(owner: str, expires_at: datetime, me: str, now: datetime) -> bool:
    return owner == me or expires_at <= now or owner_is_dead(owner)


# -- the clock ---------------------------------------------------------------------------------
def database_now(session: Any) -> datetime:
    """The database server's current time, aware UTC: the one clock of every lease and lock.

    `clock_timestamp()` on PostgreSQL (not `now()`, which stands still for a transaction);
    SQLite's is this host's clock, which every process sharing the file shares too."""
    if is_sqlite(session.get_bind()):
        raw = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
        return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
    value: datetime = session.execute(text("SELECT clock_timestamp()")).scalar()
    return value.astimezone(UTC)


# -- named locks -------------------------------------------------------------------------------
def advisory_key(conn: Any, name: str) -> int:
    """The advisory lock key of `name` in this connection's schema."""
    schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
    digest = hashlib.sha256(f"meeting-governance:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def acquire_row_lock(app: AppContext, name: str, owner: str, ttl: timedelta) -> str | None:
    """Take or renew the `service_lock` row; None on success, else the live holder."""
    with Session(app.engine) as session:
        row = session.get(ServiceLock, name, with_for_update=True)
        now = database_now(session)
        if row is not None and not _free(row.owner, row.expires_at, owner, now):
            session.rollback()
            return row.owner
        if row is None:
            row = ServiceLock(name=name, owner=owner, expires_at=now + ttl)
        row.owner = owner
        row.expires_at = now + ttl
        session.add(row)
        session.commit()
    return None


def release_row_lock(app: AppContext, name: str, owner: str) -> None:
    with Session(app.engine) as session:
        session.exec(delete(ServiceLock).where(col(ServiceLock.name) == name,
                                               col(ServiceLock.owner) == owner))
        session.commit()


@dataclass
class Lock:
    """A named lock while held; `renew` pushes its expiry out during long work."""

    app: AppContext
    name: str
    owner: str
    ttl: timedelta

    def renew(self) -> None:
        with self.app.session() as session:
            result = session.exec(update(ServiceLock).where(
                col(ServiceLock.name) == self.name, col(ServiceLock.owner) == self.owner)
                .values(expires_at=database_now(session) + self.ttl))
            if result.rowcount == 0:
                raise LockedError(f"this process lost the {self.name} lock (it expired and "
                                  "another process took it over); stopping here")


def _release_advisory(conn: Any, key: int) -> None:
    """Unlock before the connection goes back to the pool (a pooled session would keep it)."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    except DBAPIError:
        conn.invalidate()  # closing the session for real releases the lock too
    finally:
        conn.close()


@contextmanager
def hold(app: AppContext, name: str, *, ttl: timedelta, busy: str,
         owner: str | None = None) -> Iterator[Lock]:
    """Hold `name` for the block or raise `LockedError(busy …)` at once (never wait)."""
    owner = owner or new_owner()
    pg_conn, key = None, 0
    if not is_sqlite(app.engine):
        pg_conn = app.engine.connect()
        key = advisory_key(pg_conn, name)
        got = bool(pg_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        pg_conn.commit()
        if not got:
            pg_conn.close()
            raise LockedError(f"{busy} (advisory lock held); this run did nothing — try again "
                              "when it has finished")
    try:
        # With the advisory lock held, a leftover row is a crashed holder's: take it over.
        holder = acquire_row_lock(app, name, owner, ttl) if pg_conn is None else None
        if pg_conn is not None:
            with app.session() as session:
                session.exec(delete(ServiceLock).where(col(ServiceLock.name) == name))
                session.add(ServiceLock(name=name, owner=owner,
                                        expires_at=database_now(session) + ttl))
        if holder is not None:
            raise LockedError(f"{busy} (lock held by {holder}); this run did nothing — try "
                              "again when it has finished")
        try:
            yield Lock(app, name, owner, ttl)
        finally:
            release_row_lock(app, name, owner)
    finally:
        if pg_conn is not None:
            _release_advisory(pg_conn, key)


@contextmanager
def exclusive(app: AppContext, name: str, owner: str, *,
              ttl: timedelta = timedelta(minutes=30)) -> Iterator[bool]:
    """Yield True when this process holds `name` for the block, False when another one does."""
    with ExitStack() as stack:
        try:
            stack.enter_context(hold(app, name, ttl=ttl, busy=f"{name} is held elsewhere",
                                     owner=owner))
        except LockedError:
            yield False
            return
        yield True


# -- per-recording leases (the pipeline's workers) ----------------------------------------------
def claim(app: AppContext, worker: str, limit: int) -> list[int]:
    """Lease up to `limit` recordings that are due; other workers skip the rows we lock.

    Due: new, waiting or failed with their retry time reached, or in flight under a lease that
    expired — or whose owner is a dead process of this host (taken at once, not at expiry).
    A lease a live worker holds is never taken."""
    now = app.clock.now()  # when retries fall due: domain time
    with app.session() as session:
        db_now = database_now(session)  # when leases end: the database's time
        lease_until = db_now + timedelta(seconds=app.settings.daemon.lease_seconds)
        in_flight = col(Recording.state).in_([s.value for s in IN_FLIGHT])
        expired = col(Recording.lease_expires_at) < db_now
        pending = or_(
            col(Recording.state) == State.DISCOVERED.value,
            (col(Recording.state).in_([State.WAITING.value, State.FAILED.value]))
            & col(Recording.next_attempt_at).is_not(None)
            & (col(Recording.next_attempt_at) <= now))
        due = or_(pending, in_flight & expired)
        free = or_(col(Recording.lease_owner).is_(None), expired)
        taken = list(session.exec(
            select(Recording).where(due, free).order_by(col(Recording.id)).limit(limit)
            .with_for_update(skip_locked=True)).all())
        if len(taken) < limit:
            # Leases still running that name a process of this host: free if it died.
            here = col(Recording.lease_owner).startswith(f"{socket.gethostname()}:")
            orphans = session.exec(
                select(Recording).where(here, ~expired, or_(pending, in_flight))
                .order_by(col(Recording.id))
                .limit(4 * limit).with_for_update(skip_locked=True)).all()
            taken += [r for r in orphans if owner_is_dead(r.lease_owner or "")][:limit - len(taken)]
        for rec in taken:
            rec.lease_owner = worker
            rec.lease_expires_at = lease_until
            session.add(rec)
        return [rec.id for rec in taken if rec.id is not None]


def renew_lease(app: AppContext, recording_id: int, worker: str) -> bool:
    """Extend our lease; False when it was lost (expired and taken by another worker)."""
    with app.session() as session:
        until = database_now(session) + timedelta(seconds=app.settings.daemon.lease_seconds)
        result = session.exec(
            update(Recording).where(col(Recording.id) == recording_id,
                                    col(Recording.lease_owner) == worker)
            .values(lease_expires_at=until))
        return bool(result.rowcount)


class LeaseKeeper:
    """Renews a lease in the background while a long step (download, transcription) runs."""

    def __init__(self, app: AppContext, recording_id: int, worker: str) -> None:
        self.app, self.recording_id, self.worker = app, recording_id, worker
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"lease-{recording_id}")

    def _run(self) -> None:
        interval = max(self.app.settings.daemon.lease_seconds / 3, 1.0)
        while not self._stop.wait(interval):
            try:
                if not renew_lease(self.app, self.recording_id, self.worker):
                    self.lost = True
                    return
            except GovernanceError:
                log.warning("lease renewal failed", extra={"recording": self.recording_id})

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def release(app: AppContext, recording_ids: Sequence[int], worker: str) -> None:
    """Give leased-but-untouched items back (graceful stop)."""
    if not recording_ids:
        return
    with app.session() as session:
        session.exec(
            update(Recording).where(col(Recording.id).in_(list(recording_ids)),
                                    col(Recording.lease_owner) == worker)
            .values(lease_owner=None, lease_expires_at=None))
