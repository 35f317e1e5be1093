"""Named locks for work only one process may do at a time (the SQLite daemon, the poller).

PostgreSQL: a session-level advisory lock, held on a dedicated connection — it disappears with
the process, so a crashed holder never blocks the others. SQLite (one host): a `service_lock`
row with an expiry that the holder renews, so a crashed holder's lock lapses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import text
from sqlmodel import Session

from meeting_governance.context import AppContext
from meeting_governance.db import is_sqlite
from meeting_governance.models import ServiceLock


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"meeting-governance:{name}".encode()).digest()[:8],
                          "big", signed=True)


def acquire_row_lock(app: AppContext, name: str, owner: str, ttl: timedelta) -> str | None:
    """Take or renew a row lock; returns None on success, else the current holder."""
    now = app.clock.now()
    with Session(app.engine) as session:
        row = session.get(ServiceLock, name, with_for_update=True)
        if row is not None and row.owner != owner and row.expires_at > now:
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
        row = session.get(ServiceLock, name)
        if row is not None and row.owner == owner:
            session.delete(row)
            session.commit()


@contextmanager
def exclusive(app: AppContext, name: str, owner: str, *,
              ttl: timedelta = timedelta(minutes=30)) -> Iterator[bool]:
    """Yield True when this process holds `name` for the block, False when another one does."""
    if is_sqlite(app.engine):
        holder = acquire_row_lock(app, name, owner, ttl)
        try:
            yield holder is None
        finally:
            if holder is None:
                release_row_lock(app, name, owner)
        return
    conn = app.engine.connect()
    try:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                conn.commit()
    finally:
        conn.close()
