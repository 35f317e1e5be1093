"""Discovery: which recordings exist. One pass over the organisers (configured, plus the members
of `graph.organizer_group_id`) follows each one's delta link, and stores the new recordings as
rows together with the new link, so a crash never skips a recording.

May import Graph (`graph`), the models, metrics and `health.classify`; never the model
(`transcribe`), the gate, the store, or the other pipeline modules: finding recordings needs
none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import col, select

from meeting_governance.context import AppContext, worker_identity
from meeting_governance.errors import DatabaseError, GraphError
from meeting_governance.graph import Discovery, GraphClient, discover
from meeting_governance.graph.recordings import group_organizers, link_fingerprint
from meeting_governance.health import classify
from meeting_governance.models import DeltaLink, Recording
from meeting_governance.observability import METRICS

# One logger for the whole pipeline package, as before the split: log lines keep their
# `"logger": "meeting_governance.pipeline"` field, which operators may filter on.
log = logging.getLogger(__package__)
MAX_ID = 1024  # the width of recording.graph_recording_id and recording.meeting_id


@dataclass(frozen=True)
class PollReport:
    organizers: int
    new: int
    seen: int
    errors: tuple[str, ...]
    restarted: tuple[str, ...] = ()  # organisers whose discovery started a new round
    causes: tuple[str, ...] = ()  # the errors' causes (health.classify), for the metrics


def _discovery_start(app: AppContext, stored: DeltaLink | None, now: datetime) -> datetime:
    """Where a new round starts: `lookback_days` ago, or earlier if the last successful poll
    was (an outage longer than the look-back must not lose the recordings made during it)."""
    start = now - timedelta(days=app.settings.graph.lookback_days)
    if stored is not None and stored.updated_at < start:
        return stored.updated_at - timedelta(hours=1)
    return start


def poll(app: AppContext, graph: GraphClient, *, organizers: Sequence[str] | None = None,
         progress: Callable[[int, int], None] | None = None,
         restart: bool = False) -> PollReport:
    """One discovery pass: new recordings become rows (idempotent on the Graph id).

    Per organiser, the new rows and the new delta link commit together: a crash never stores a
    delta link whose recordings were not stored, so nothing is skipped. A stored link built
    under another configuration (or every link, with `restart`) is not replayed: a new round
    starts, with a log line, a metric and an audit entry.
    """
    new = seen = 0
    errors: list[str] = []
    causes: list[str] = []
    restarted: list[str] = []
    scope = list(organizers if organizers is not None else app.settings.graph.organizers)
    group_id = app.settings.graph.organizer_group_id
    if organizers is None and group_id:
        try:
            scope.extend(m for m in group_organizers(graph, group_id) if m not in scope)
        except GraphError as exc:
            errors.append(f"organiser group {group_id}: {exc}")
            causes.append(classify(exc)[0])
    now = app.clock.now()
    settings = app.settings.graph
    for index, organizer_id in enumerate(scope, start=1):
        fingerprint = link_fingerprint(settings.base_url, organizer_id, settings.lookback_days)
        with app.session() as session:
            stored = session.get(DeltaLink, organizer_id)
        link, reason = (stored.link if stored else None), None
        if stored is not None and restart:
            link, reason = None, "restart requested (poll --restart)"
        elif stored is not None and stored.fingerprint != fingerprint:
            link, reason = None, ("the stored delta link was built under another configuration "
                                  "(graph.base_url, graph.lookback_days or the request template)")
        try:
            found = discover(graph, organizer_id, delta_link=link, restart_reason=reason,
                             start=_discovery_start(app, stored, now))
        except GraphError as exc:
            errors.append(f"organiser {organizer_id}: {exc}")
            causes.append(classify(exc)[0])
            log.warning("discovery failed", extra={"organizer": organizer_id, "code": exc.code,
                                                    "status": exc.status})
            METRICS.errors.labels(kind="discovery").inc()
            continue
        if found.restarted:
            restarted.append(organizer_id)
            log.warning("discovery restarted", extra={"organizer": organizer_id,
                                                      "reason": found.restarted})
            METRICS.discovery_restarts.inc()
        try:
            new, seen = _store_discovery(app, organizer_id, found, now, errors, new, seen,
                                         fingerprint)
        except DatabaseError as exc:
            errors.append(f"organiser {organizer_id}: {exc}")
            causes.append("database")
            log.warning("storing discovered recordings failed", extra={"organizer": organizer_id})
            continue
        if progress:
            progress(index, len(scope))
    log.info("poll done", extra={"organizers": len(scope), "new": new, "seen": seen,
                                 "errors": len(errors), "restarted": len(restarted)})
    return PollReport(len(scope), new, seen, tuple(errors), tuple(restarted), tuple(causes))


def _store_discovery(app: AppContext, organizer_id: str, found: Discovery, now: datetime,
                     errors: list[str], new: int, seen: int,
                     fingerprint: str | None = None) -> tuple[int, int]:
    """One organiser's new rows and its new delta link, in one transaction."""
    with app.session() as session:
        existing = set(session.exec(select(Recording.graph_recording_id).where(
            col(Recording.graph_recording_id).in_([r.recording_id for r in found.recordings]))
        ).all()) if found.recordings else set()
        for ref in found.recordings:
            seen += 1
            if ref.recording_id in existing:
                continue
            if len(ref.recording_id) > MAX_ID or len(ref.meeting_id) > MAX_ID:
                # No real Graph id is this long; storing it would fail on PostgreSQL and
                # stop discovery for the organiser for good. Skip it, loudly.
                errors.append(f"organiser {organizer_id}: skipped a recording whose id is "
                              f"longer than {MAX_ID} characters")
                log.warning("recording id too long", extra={"organizer": organizer_id})
                continue
            call_id = ref.call_id if ref.call_id and len(ref.call_id) <= 200 else None
            rec = Recording(graph_recording_id=ref.recording_id, meeting_id=ref.meeting_id,
                            organizer_id=organizer_id, call_id=call_id,
                            recorded_at=ref.created, recording_end=ref.end, meeting_end=ref.end,
                            first_seen_at=now, updated_at=now)
            try:
                with session.begin_nested():
                    session.add(rec)
                    session.flush()
            except SAIntegrityError:
                continue  # another poller stored it first: idempotent
            existing.add(ref.recording_id)
            new += 1
            app.audit(session, "recording.discovered", target_type="recording",
                      target_id=str(rec.id), actor=f"worker:{worker_identity()}")
        if found.restarted:
            app.audit(session, "discovery.restarted", target_type="organizer",
                      target_id=organizer_id, actor=f"worker:{worker_identity()}",
                      reason=found.restarted)
        if found.delta_link:
            if stored := session.get(DeltaLink, organizer_id):
                stored.link = found.delta_link
                stored.updated_at = now
                stored.fingerprint = fingerprint
                session.add(stored)
            else:
                session.add(DeltaLink(organizer_id=organizer_id, link=found.delta_link,
                                      updated_at=now, fingerprint=fingerprint))
    return new, seen


__all__ = ["MAX_ID", "PollReport", "poll"]
