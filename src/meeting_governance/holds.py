"""Legal holds: "we may retain your personal data for longer in case of a complaint or litigation".

A hold names one transcript, one person (as blind-index values of every identifier the
directory knows for them — `hold_identifier` — so every transcript of a meeting they attended
under any address, including ones stored after the hold was set) or one meeting. The reason is
sealed in the vault because it may name people; the audit log records who, when and the hold
id, never the reason's text.

`Transcript.legal_hold` is kept as a cached flag (any active hold covers the row) for listings
and as the row-level guard the purge re-checks under its row lock; the purge itself always
evaluates the hold table too (`held_filter`), so a transcript stored after a person hold was set
is protected even though its flag was never raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, not_, or_
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner, standing
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.identity import validated_email, validated_object_id
from meeting_governance.ids import resolve_id
from meeting_governance.models import (
    Hold,
    HoldIdentifier,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
)
from meeting_governance.people import PersonIdentity

EPOCH = standing("legal_hold")  # hold reasons live as long as the hold register


def reason_owner(hold_id: str) -> Owner:
    return Owner("legal_hold", hold_id, "reason")


@dataclass(frozen=True)
class HoldInfo:
    """A hold as shown to the DPO (the reason only when asked for, and then audited)."""

    id: str
    kind: str  # transcript | person | meeting
    target: str  # transcript id, person blind value, or meeting id
    set_by: str
    set_at: datetime
    released_at: datetime | None
    released_by: str | None
    covered: int  # unpurged transcripts it covers now
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None


def hold_kind(hold: Hold) -> str:
    if hold.transcript_id:
        return "transcript"
    if hold.person_blind:
        return "person"
    return "meeting"


def _target(hold: Hold) -> str:
    return hold.transcript_id or hold.person_blind or hold.meeting_id or ""


# -- which holds cover what ---------------------------------------------------------------
def _active_at(as_of: datetime | None) -> Any:
    """A hold counts while unreleased, and (for time travel) when released after `as_of`:
    a released record is due again at its retain_until or the release, whichever is later."""
    if as_of is None:
        return col(Hold.released_at).is_(None)
    return or_(col(Hold.released_at).is_(None), col(Hold.released_at) > as_of)


@dataclass(frozen=True)
class ActiveHolds:
    """The targets of the holds in force: few rows, loaded once per purge batch."""

    transcript_ids: frozenset[str]
    person_blinds: frozenset[str]
    meeting_ids: frozenset[str]

    @property
    def empty(self) -> bool:
        return not (self.transcript_ids or self.person_blinds or self.meeting_ids)


def _identifiers(session: Session, hold_ids: Sequence[str]) -> set[str]:
    """Every identifier (blind) the person holds among `hold_ids` name."""
    if not hold_ids:
        return set()
    return set(session.exec(select(HoldIdentifier.blind).where(
        col(HoldIdentifier.hold_id).in_(list(hold_ids)))).all())


def active_holds(session: Session, as_of: datetime | None = None) -> ActiveHolds:
    rows = session.exec(select(Hold).where(_active_at(as_of))).all()
    people = [h for h in rows if h.person_blind]
    return ActiveHolds(
        transcript_ids=frozenset(h.transcript_id for h in rows if h.transcript_id),
        person_blinds=frozenset({h.person_blind for h in people if h.person_blind}
                                | _identifiers(session, [h.id for h in people])),
        meeting_ids=frozenset(h.meeting_id for h in rows if h.meeting_id),
    )


def _cover_clauses(holds: ActiveHolds) -> list[Any]:
    """SQL conditions on `Transcript`, one per kind of target in `holds`."""
    clauses: list[Any] = []
    if holds.transcript_ids:
        clauses.append(col(Transcript.id).in_(sorted(holds.transcript_ids)))
    if holds.meeting_ids:
        clauses.append(and_(col(Transcript.meeting_id) != "",
                            col(Transcript.meeting_id).in_(sorted(holds.meeting_ids))))
    if holds.person_blinds:
        blinds = sorted(holds.person_blinds)
        clauses.append(exists().where(col(TranscriptParticipant.transcript_id) == col(Transcript.id),
                                      col(TranscriptParticipant.blind).in_(blinds)))
        # The recording's participant list names the same people; checked too so that a
        # transcript whose own index is incomplete is still covered.
        clauses.append(exists().where(col(RecordingParticipant.recording_id) == col(Transcript.recording_id),
                                      col(RecordingParticipant.blind).in_(blinds)))
    return clauses


def held_filter(holds: ActiveHolds) -> Any:
    """SQL condition on `Transcript`: true when the flag or any hold in `holds` covers the row."""
    return or_(col(Transcript.legal_hold).is_(True), *_cover_clauses(holds))


def not_held_filter(holds: ActiveHolds) -> Any:
    return not_(held_filter(holds))


def covered_by(session: Session, hold: Hold) -> list[str]:
    """Ids of the unpurged transcripts one hold covers now."""
    person = ({hold.person_blind} | _identifiers(session, [hold.id])) if hold.person_blind \
        else set()
    one = ActiveHolds(
        transcript_ids=frozenset([hold.transcript_id] if hold.transcript_id else []),
        person_blinds=frozenset(person),
        meeting_ids=frozenset([hold.meeting_id] if hold.meeting_id else []),
    )
    return sorted(_direct_cover(session, one))


def _direct_cover(session: Session, holds: ActiveHolds) -> set[str]:
    """Unpurged transcripts a set of holds covers, ignoring the cached flag."""
    clauses = _cover_clauses(holds)
    if not clauses:
        return set()
    return set(session.exec(select(Transcript.id).where(col(Transcript.purged_at).is_(None),
                                                          or_(*clauses))).all())


def refresh_flags(session: Session, transcript_ids: Iterable[str]) -> None:
    """Set `legal_hold` on each given transcript to whether an active hold covers it."""
    ids = sorted(set(transcript_ids))
    if not ids:
        return
    held = _direct_cover(session, active_holds(session))
    for row in session.exec(select(Transcript).where(col(Transcript.id).in_(ids))).all():
        flag = row.id in held
        if row.legal_hold != flag:
            row.legal_hold = flag
            session.add(row)


def is_held(session: Session, transcript_id: str) -> bool:
    """Whether any active hold (or the flag) covers this transcript now."""
    row = session.get(Transcript, transcript_id)
    if row is None:
        return False
    return row.legal_hold or transcript_id in _direct_cover(session, active_holds(session))


# -- set, release, list --------------------------------------------------------------------
def _person_blind(app: AppContext, email: str | None, object_id: str | None) -> str:
    if email:
        return app.vault.blind_email(validated_email(email))
    assert object_id
    return app.vault.blind_object_id(validated_object_id(object_id))


def set_hold(app: AppContext, identity: PersonIdentity | None = None, /, *, reason: str,
             transcript_id: str | None = None, email: str | None = None,
             object_id: str | None = None, meeting_id: str | None = None,
             actor: str | None = None) -> HoldInfo:
    """Put one transcript, one person or one meeting under legal hold (exactly one target).

    A person hold covers the identity given and, with `identity` (the directory's answer:
    `people.person_identity`), every other identifier of that person."""
    targets = [t for t in (transcript_id, email, object_id, meeting_id) if t]
    if len(targets) != 1:
        raise InputError("a hold needs exactly one target: a transcript id, --email, "
                         "--object-id or --meeting")
    if not reason.strip():
        raise InputError("a hold needs a reason (--reason): it is kept sealed, for the DPO")
    actor = actor or app.actor
    with app.session() as session:
        if transcript_id:
            transcript_id = resolve_id(session, col(Transcript.id), transcript_id,
                                       kind="transcript", listing="transcript list")
            row = session.get(Transcript, transcript_id)
            if row is None:
                raise NotFoundError(f"transcript {transcript_id} does not exist")
            if row.purged_at is not None:
                raise InputError(f"transcript {transcript_id} was purged at "
                                 f"{row.purged_at.isoformat()}; there is nothing left to hold")
        hold = Hold(id=uuid.uuid4().hex, transcript_id=transcript_id or None,
                    person_blind=(_person_blind(app, email, object_id)
                                  if (email or object_id) else None),
                    meeting_id=meeting_id or None, set_by=actor, set_at=app.clock.now())
        hold.reason_item = app.vault.seal_text(session, reason, purpose="hold-reason",
                                               owner=reason_owner(hold.id), epoch=EPOCH)
        session.add(hold)
        session.flush()
        if hold.person_blind:
            for blind in sorted({hold.person_blind, *(identity.blinds if identity else ())}):
                session.add(HoldIdentifier(hold_id=hold.id, blind=blind))
            session.flush()
        covered = covered_by(session, hold)
        for row in session.exec(select(Transcript).where(col(Transcript.id).in_(covered))).all():
            if not row.legal_hold:
                row.legal_hold = True
                session.add(row)
        kind = hold_kind(hold)
        app.audit(session, "hold.set", target_type=kind, target_id=_target(hold), actor=actor,
                  hold_id=hold.id, covered=len(covered),
                  identifiers=len(identity.blinds) if identity else int(bool(hold.person_blind)))
        return _info(hold, len(covered))


def find_active(app: AppContext, *, hold_id: str | None = None, transcript_id: str | None = None,
                email: str | None = None, object_id: str | None = None,
                meeting_id: str | None = None) -> str:
    """The id of the one active hold matching a target; an error names the choices otherwise."""
    with app.session() as session:
        if hold_id:
            return resolve_id(session, col(Hold.id), hold_id, kind="hold", listing="hold list")
        query = select(Hold).where(col(Hold.released_at).is_(None))
        if transcript_id:
            transcript_id = resolve_id(session, col(Transcript.id), transcript_id,
                                       kind="transcript", listing="transcript list")
            query = query.where(Hold.transcript_id == transcript_id)
        elif email or object_id:
            blind = _person_blind(app, email, object_id)
            query = query.where(or_(col(Hold.person_blind) == blind, col(Hold.id).in_(
                select(HoldIdentifier.hold_id).where(col(HoldIdentifier.blind) == blind))))
        elif meeting_id:
            query = query.where(Hold.meeting_id == meeting_id)
        else:
            raise InputError("say which hold to release: a transcript id, --hold-id, --email, "
                             "--object-id or --meeting")
        rows = session.exec(query).all()
    if not rows:
        raise NotFoundError("no active hold matches; see `meeting-governance hold list`")
    if len(rows) > 1:
        raise InputError(f"{len(rows)} active holds match ({', '.join(r.id for r in rows)}); "
                         "choose one with --hold-id")
    return rows[0].id


def release_hold(app: AppContext, hold_id: str, *, reason: str,
                 actor: str | None = None) -> HoldInfo:
    """Release a hold; what it covered is due again at its retain_until or now, if later."""
    if not reason.strip():
        raise InputError("releasing a hold needs a reason (--reason)")
    actor = actor or app.actor
    with app.session() as session:
        hold = session.get(Hold, hold_id)
        if hold is None:
            raise NotFoundError(f"hold {hold_id} does not exist; see `meeting-governance hold list`")
        if hold.released_at is not None:
            raise InputError(f"hold {hold_id} was already released at "
                             f"{hold.released_at.isoformat()}")
        covered = covered_by(session, hold)
        hold.released_at = app.clock.now()
        hold.released_by = actor
        hold.release_reason_item = app.vault.seal_text(
            session, reason, purpose="hold-release-reason", epoch=EPOCH,
            owner=Owner("legal_hold", hold.id, "release_reason"))
        session.add(hold)
        session.flush()
        refresh_flags(session, covered)
        app.audit(session, "hold.released", target_type=hold_kind(hold), target_id=_target(hold),
                  actor=actor, hold_id=hold.id, covered=len(covered))
        return _info(hold, len(covered))


def list_holds(app: AppContext, *, include_released: bool = False,
               with_reasons: bool = False) -> list[HoldInfo]:
    """Holds, newest first. Opening the sealed reasons is a decryption, so it is audited."""
    with app.session() as session:
        query = select(Hold)
        if not include_released:
            query = query.where(col(Hold.released_at).is_(None))
        rows: Sequence[Hold] = session.exec(query.order_by(col(Hold.set_at).desc())).all()
        result = []
        for hold in rows:
            covered = len(covered_by(session, hold)) if hold.released_at is None else 0
            reason = (app.vault.open_text(session, hold.reason_item, owner=reason_owner(hold.id))
                      if with_reasons and hold.reason_item else None)
            result.append(_info(hold, covered, reason))
        if with_reasons and rows:
            app.audit(session, "hold.reasons_read", target_type="legal_hold",
                      holds=",".join(h.id for h in rows))
        return result


def _info(hold: Hold, covered: int, reason: str | None = None) -> HoldInfo:
    return HoldInfo(id=hold.id, kind=hold_kind(hold), target=_target(hold), set_by=hold.set_by,
                    set_at=hold.set_at, released_at=hold.released_at,
                    released_by=hold.released_by, covered=covered, reason=reason)
