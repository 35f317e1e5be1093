"""What is due: `retain_until <= as_of`, not purged, and no hold in force (transcript,
person or meeting; see `holds`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from meeting_governance.holds import ActiveHolds, active_holds, held_filter, not_held_filter
from meeting_governance.models import Transcript

MAX_BATCH = 5000  # 4 ids per transcript stay far below SQLite's bound-parameter limit


def due_filter(as_of: datetime, holds: ActiveHolds) -> Any:
    """The WHERE clause of a due transcript."""
    return and_(col(Transcript.purged_at).is_(None), col(Transcript.retain_until).is_not(None),
                col(Transcript.retain_until) <= as_of, not_held_filter(holds))


@dataclass(frozen=True)
class DueSummary:
    """Counts at `as_of`: due now, due but held, never due (no `retain_until`)."""

    due: int
    held: int
    skipped: int


def summarise(session: Session, as_of: datetime) -> DueSummary:
    """How many are due, held back by a hold, or have no `retain_until` at all."""
    holds = active_holds(session, as_of)
    by_date = and_(col(Transcript.purged_at).is_(None), col(Transcript.retain_until).is_not(None),
                   col(Transcript.retain_until) <= as_of)
    count = select(func.count()).select_from(Transcript)
    due = session.exec(count.where(by_date, not_held_filter(holds))).one()
    held = session.exec(count.where(by_date, held_filter(holds))).one()
    skipped = session.exec(count.where(col(Transcript.purged_at).is_(None),
                                       col(Transcript.retain_until).is_(None))).one()
    return DueSummary(int(due), int(held), int(skipped))


def select_batch(session: Session, as_of: datetime, limit: int, exclude: set[str],
                  lock_rows: bool, only: str | None = None) -> list[Transcript]:
    """The next due transcripts, oldest `retain_until` first.

    Read straight off `ix_transcript_due` (purged_at, retain_until): purged rows leave that
    range, so each batch starts at the first one still due and the run stays linear however
    many tombstones exist. `exclude` holds this run's failures, so they are not retried.
    """
    holds = active_holds(session, as_of)
    query = select(Transcript).where(due_filter(as_of, holds))
    if exclude:
        query = query.where(col(Transcript.id).not_in(sorted(exclude)))
    if only is not None:
        query = query.where(col(Transcript.id) == only)
    query = query.order_by(col(Transcript.retain_until)).limit(limit)
    if lock_rows:
        # Row locks make PostgreSQL re-check `legal_hold` on rows a concurrent hold just raised.
        query = query.with_for_update(of=Transcript)
    return list(session.exec(query).all())
