"""Claiming: which recordings this worker takes next, and whether it still holds one.

The leases themselves live in `locks`, with every other lock: `claim` takes due recordings
oldest first with `FOR UPDATE SKIP LOCKED` on PostgreSQL, `LeaseKeeper` renews a lease while a
long step runs, `release` hands back what a stopping worker has not started. Here: the worker's
name, how many it claims at a time, the re-read of a row that succeeds only for the lease holder
(`_load`; every later step goes through it, so a worker that lost its lease changes nothing),
and the records a worker's turn ends in (`Outcome`, `ProcessReport`).

May import `locks`, `context` and the models; never Graph, the model (`transcribe`), the gate or
the other pipeline modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from meeting_governance.context import AppContext, worker_identity
from meeting_governance.locks import LeaseKeeper, claim, release, renew_lease
from meeting_governance.models import Recording


@dataclass(frozen=True)
class Outcome:
    recording_id: int
    state: str
    reason: str
    transcript_id: str | None = None


@dataclass(frozen=True)
class ProcessReport:
    outcomes: tuple[Outcome, ...]

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


def worker_name(app: AppContext, worker: str | None) -> str:
    """The lease owner's name: given, configured (`daemon.worker_id`), or host and process."""
    return worker or app.settings.daemon.worker_id or worker_identity()


def next_batch(app: AppContext, worker: str, limit: int | None, done: int) -> list[int]:
    """Lease the next due recordings: `daemon.process_batch` of them, fewer if `limit` (of
    which `done` are done) leaves fewer. A worker leases only what it is about to work on, so
    with the default batch of 1 a second worker never waits behind claimed, unstarted items."""
    wanted = app.settings.daemon.process_batch
    return claim(app, worker, wanted if limit is None else min(wanted, limit - done))


def _load(session: Session, recording_id: int, worker: str) -> Recording | None:
    rec = session.exec(select(Recording).where(col(Recording.id) == recording_id)
                       .with_for_update()).one_or_none()
    if rec is None or rec.lease_owner != worker:
        return None  # lost our lease: another worker has it now
    return rec


__all__ = ["LeaseKeeper", "Outcome", "ProcessReport", "claim", "next_batch", "release",
           "renew_lease", "worker_name"]
