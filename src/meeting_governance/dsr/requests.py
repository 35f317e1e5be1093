"""The request log and finding what is held about a person (shared by access, erasure,
redaction and withdrawal).

A person is named by exactly one identity, an e-mail/UPN or an Entra object id, and found
through the blind index, never by a stored address — under every identifier the directory
knows for them (`people.person_identity`). The log keeps only the blind value of the identity
given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError, ShreddedError
from meeting_governance.holds import active_holds, held_filter
from meeting_governance.identity import validated_email, validated_object_id
from meeting_governance.models import (
    DsrDecision,
    DsrRequest,
    OptOut,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
)
from meeting_governance.people import PersonIdentity, who_is

KINDS = ("access", "erasure", "rectification", "withdrawal")
_NOT_ASKED = who_is((), 1, asked=False)
STATUSES = ("open", "completed", "closed")  # completed: fulfilled by this tool; closed: by hand
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # also a safe file name


# -- who ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """The person a request is about, as given (normalised), never stored in clear."""

    email: str | None = None
    object_id: str | None = None

    def given(self) -> dict[str, str]:
        """The identity searched, for the person's own copy (the export manifest)."""
        return {"email": self.email} if self.email else {"object_id": self.object_id or ""}


def subject(email: str | None = None, object_id: str | None = None) -> Subject:
    """Validate that exactly one identity was given, and normalise it."""
    email = (email or "").strip() or None
    object_id = (object_id or "").strip() or None
    if email and object_id:
        raise InputError("give either --email or --object-id, not both: a request is about "
                         "one identity (make a second request for the other)")
    if email:
        return Subject(email=validated_email(email))
    if object_id:
        return Subject(object_id=validated_object_id(object_id))
    raise InputError("say whose data: give --email ADDRESS or --object-id GUID")


def subject_blind(app: AppContext, who: Subject) -> str:
    if who.email:
        return app.vault.blind_email(who.email)
    assert who.object_id
    return app.vault.blind_object_id(who.object_id)


# -- the request log ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RequestView:
    """A logged request as the DPO sees it; `overdue` is judged at the clock's now."""

    reference: str
    kind: str
    subject_blind: str
    received_at: datetime
    due_at: datetime
    status: str
    closed_at: datetime | None
    handled_by: str
    overdue: bool
    days_left: int
    full_transcript: bool = False  # the DPO chose the full transcript (reason: `decisions`)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(row: DsrRequest, now: datetime, full: bool = False) -> RequestView:
    is_open = row.status == "open"
    return RequestView(reference=row.reference, kind=row.kind, subject_blind=row.subject_blind,
                       received_at=row.received_at, due_at=row.due_at, status=row.status,
                       closed_at=row.closed_at, handled_by=row.handled_by,
                       overdue=is_open and row.due_at < now,
                       days_left=(row.due_at - now).days if is_open else 0,
                       full_transcript=full)


def _next_reference(session: Session, year: int) -> str:
    prefix = f"DSR-{year}-"
    taken = session.exec(select(DsrRequest.reference).where(
        col(DsrRequest.reference).startswith(prefix))).all()
    numbers = [int(r[len(prefix):]) for r in taken if r[len(prefix):].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def check_reference(reference: str) -> str:
    """A reference as typed, checked: it goes into audit entries and file names."""
    ref = reference.strip()
    if not _REFERENCE.match(ref):
        raise InputError("a reference is 1-40 letters, digits, '.', '_' or '-' "
                         "(like DSR-2026-0001)")
    return ref


def open_request(app: AppContext, session: Session, kind: str, *, email: str | None = None,
                 object_id: str | None = None, reference: str | None = None,
                 received_at: datetime | None = None, actor: str | None = None) -> DsrRequest:
    """Log a request; due `dsr.due_days` after it was received (the legal deadline)."""
    return _open(app, session, kind, subject(email, object_id), reference=reference,
                 received_at=received_at, actor=actor)


def _open(app: AppContext, session: Session, kind: str, who: Subject, *,
          reference: str | None, received_at: datetime | None,
          actor: str | None) -> DsrRequest:
    if kind not in KINDS:
        raise InputError(f"unknown request kind {kind!r}; choose one of {', '.join(KINDS)}")
    now = app.clock.now()
    received = received_at or now
    if received.tzinfo is None:
        raise InputError("the received date needs a time zone (or give a bare date: UTC)")
    if received > now:
        raise InputError("a request cannot be received in the future")
    if reference:
        ref = check_reference(reference)
        if session.get(DsrRequest, ref) is not None:
            raise InputError(f"request {ref} is already in the log; see `dsr list`")
    else:
        ref = _next_reference(session, received.year)
    row = DsrRequest(reference=ref, kind=kind, subject_blind=subject_blind(app, who),
                     received_at=received,
                     due_at=received + timedelta(days=app.settings.dsr.due_days),
                     status="open", handled_by=actor or app.actor)
    session.add(row)
    session.flush()
    app.audit(session, "dsr.open", target_type="dsr_request", target_id=ref, actor=actor,
              kind=kind, subject_blind=row.subject_blind, due_at=row.due_at.isoformat())
    return row


def _request_for(app: AppContext, session: Session, kind: str, who: Subject,
                 reference: str | None, actor: str) -> DsrRequest:
    """The logged request this action fulfils: the one named (checked), or a new one."""
    if reference:
        row = session.get(DsrRequest, check_reference(reference))
        if row is not None:
            if row.subject_blind != subject_blind(app, who):
                raise InputError(f"request {row.reference} was logged for another identity; "
                                 "check the reference and the --email/--object-id")
            if row.kind != kind:
                raise InputError(f"request {row.reference} is a {row.kind} request, "
                                 f"not {kind}; log a new request for this")
            return row
    return _open(app, session, kind, who, reference=reference, received_at=None, actor=actor)


def _complete(app: AppContext, session: Session, row: DsrRequest, actor: str) -> None:
    if row.status == "open":
        row.status = "completed"
        row.closed_at = app.clock.now()
    row.handled_by = actor
    session.add(row)


def close_request(app: AppContext, session: Session, reference: str, *,
                  actor: str | None = None, status: str = "closed") -> DsrRequest:
    """Close a request by hand (answered outside this tool, rejected, withdrawn)."""
    if status not in ("completed", "closed"):
        raise InputError("a request is closed as completed or closed")
    row = session.get(DsrRequest, reference.strip())
    if row is None:
        raise NotFoundError(f"request {reference.strip()} is not in the log; see `dsr list`")
    if row.status != "open":
        raise InputError(f"request {row.reference} is already {row.status}")
    row.status = status
    row.closed_at = app.clock.now()
    row.handled_by = actor or app.actor
    session.add(row)
    app.audit(session, "dsr.close", target_type="dsr_request", target_id=row.reference,
              actor=actor, status=status)
    return row


def list_requests(app: AppContext, session: Session, *, open_only: bool = False,
                  overdue: bool = False, blind: str | None = None) -> list[RequestView]:
    """The log, oldest due date first; `overdue` implies open and past due."""
    now = app.clock.now()
    query = select(DsrRequest)
    if open_only or overdue:
        query = query.where(DsrRequest.status == "open")
    if overdue:
        query = query.where(col(DsrRequest.due_at) < now)
    if blind:
        query = query.where(DsrRequest.subject_blind == blind)
    rows = session.exec(query.order_by(col(DsrRequest.due_at), col(DsrRequest.reference))).all()
    full = set(session.exec(select(DsrDecision.reference).where(
        col(DsrDecision.full_transcript).is_(True))).all())
    return [_view(r, now, r.reference in full) for r in rows]


@dataclass(frozen=True)
class DecisionView:
    """A DPO's recorded choice for a request, with its reason (decrypted: audited)."""

    reference: str
    full_transcript: bool
    reason: str | None
    decided_by: str
    decided_at: datetime


def decisions(app: AppContext, reference: str, *, actor: str | None = None) -> list[DecisionView]:
    """The choices recorded against a request (the full-transcript choice and its reason)."""
    from meeting_governance.epochs import Owner

    ref = check_reference(reference)
    with app.session() as session:
        if session.get(DsrRequest, ref) is None:
            raise NotFoundError(f"request {ref} is not in the log; see `dsr list`")
        rows = session.exec(select(DsrDecision).where(DsrDecision.reference == ref)
                            .order_by(col(DsrDecision.decided_at))).all()
        out = []
        for row in rows:
            try:
                reason = (app.vault.open_text(session, row.reason_item,
                                              owner=Owner("dsr_decision", row.id, "reason"))
                          if row.reason_item else None)
            except ShreddedError:
                reason = None
            out.append(DecisionView(ref, row.full_transcript, reason, row.decided_by,
                                    row.decided_at))
        if rows:
            app.audit(session, "dsr.decision_read", target_type="dsr_request", target_id=ref,
                      actor=actor, decisions=len(rows))
        return out


# -- finding what is held ---------------------------------------------------------------------
def _live_transcripts(session: Session, blinds: Sequence[str], *,
                      lock: bool = False) -> list[Transcript]:
    """Unpurged transcripts of meetings the person attended: by the transcript's own index and,
    in case that is incomplete, by its recording's participant list (as holds do)."""
    by_transcript = select(TranscriptParticipant.transcript_id).where(
        col(TranscriptParticipant.blind).in_(list(blinds)))
    by_recording = select(RecordingParticipant.recording_id).where(
        col(RecordingParticipant.blind).in_(list(blinds)))
    query = select(Transcript).where(
        col(Transcript.purged_at).is_(None),
        or_(col(Transcript.id).in_(by_transcript), col(Transcript.recording_id).in_(by_recording)),
    ).order_by(col(Transcript.meeting_start), col(Transcript.id))
    if lock:
        query = query.with_for_update(of=Transcript)
    return list(session.exec(query).all())


def _held_ids(session: Session, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.exec(select(Transcript.id).where(
        col(Transcript.id).in_(list(ids)), held_filter(active_holds(session)))).all())


def _optouts_of(session: Session, blinds: Sequence[str]) -> list[OptOut]:
    return list(session.exec(select(OptOut).where(or_(
        col(OptOut.email_blind).in_(list(blinds)), col(OptOut.object_id_blind).in_(list(blinds))))
        .order_by(col(OptOut.created_at), col(OptOut.id))).all())


@dataclass(frozen=True)
class PersonSummary:
    """What is held about a person, in counts only (nothing decrypted): for the DPO's screen."""

    subject_blind: str
    transcripts: int
    held: int
    optouts: int
    active_optouts: int
    requests: tuple[RequestView, ...]


def _blinds(app: AppContext, who: Subject, identity: PersonIdentity | None) -> list[str]:
    """The identity given plus, when resolved, every other identifier of the person."""
    blinds = {subject_blind(app, who)}
    if identity is not None:
        blinds.update(identity.blinds)
    return sorted(blinds)


def find_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                email: str | None = None, object_id: str | None = None) -> PersonSummary:
    who = subject(email, object_id)
    blind = subject_blind(app, who)
    blinds = _blinds(app, who, identity)
    with app.session() as session:
        rows = _live_transcripts(session, blinds)
        opts = _optouts_of(session, blinds)
        return PersonSummary(
            subject_blind=blind, transcripts=len(rows),
            held=len(_held_ids(session, [r.id for r in rows])), optouts=len(opts),
            active_optouts=sum(1 for o in opts if o.revoked_at is None),
            requests=tuple(list_requests(app, session, blind=blind)))


