"""Erasure (crypto-shredding through the purge's own `tombstone`) and withdrawal of consent.

Erasure goes through `purge.tombstone`, the very function the retention purge uses, so an erased
transcript is destroyed exactly as a purged one is; then every epoch that wrapped an erased item
is rotated, so the erased transcripts are unreadable in database backups taken before the
erasure too. Transcripts under legal hold are spared and reported with their hold reasons.
Opt-outs are kept on purpose: erasing one would let the person be transcribed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from meeting_governance import epochs
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint, is_sqlite
from meeting_governance.dsr.requests import (
    _blinds,
    _complete,
    _held_ids,
    _live_transcripts,
    _request_for,
    check_reference,
    subject,
    subject_blind,
)
from meeting_governance.errors import ShreddedError
from meeting_governance.holds import covered_by, hold_kind, reason_owner
from meeting_governance.models import (
    Hold,
    OptOut,
    RecordingParticipant,
    Transcript,
)
from meeting_governance.people import PersonIdentity, Registration

ERASURE_REASON = "erasure"

OPTOUTS_KEPT_NOTE = ("The person's opt-outs were kept: erasing an opt-out would let their next "
                     "meetings be recorded and transcribed again.")
HELD_NOTE = ("Transcripts under legal hold were not erased; they will be when the hold is "
             "released and the request is carried out again.")


# -- erasure ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HoldReason:
    hold_id: str  # "" for a transcript flagged as held without a hold record
    kind: str  # transcript | person | meeting | flag
    reason: str | None  # decrypted for the DPO's report only; None if it was shredded


@dataclass(frozen=True)
class HeldTranscript:
    transcript_id: str
    meeting_id: str
    meeting_start: datetime | None
    holds: tuple[HoldReason, ...]


@dataclass(frozen=True, kw_only=True)
class ErasureReport:
    reference: str | None  # None for a dry run without --reference
    dry_run: bool
    erased: tuple[str, ...]  # transcript ids (to be) crypto-shredded
    held: tuple[HeldTranscript, ...]
    recording_links_removed: int  # the person's blind values on recordings' participant lists
    optouts_kept: int
    notes: tuple[str, ...]
    keys_destroyed: tuple[str, ...] = ()  # epoch keys rotated away because of this erasure

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hold_reasons(app: AppContext, session: Session, held: Sequence[Transcript], *,
                  reference: str | None, actor: str, dry_run: bool) -> list[HeldTranscript]:
    if not held:
        return []
    ids = {r.id for r in held}
    reasons: dict[str, list[HoldReason]] = {i: [] for i in ids}
    opened: list[str] = []
    for hold in session.exec(select(Hold).where(col(Hold.released_at).is_(None))
                             .order_by(col(Hold.set_at))).all():
        covers = ids.intersection(covered_by(session, hold))
        if not covers:
            continue
        try:
            text = (app.vault.open_text(session, hold.reason_item, owner=reason_owner(hold.id))
                    if hold.reason_item else None)
        except ShreddedError:
            text = None
        opened.append(hold.id)
        for tid in covers:
            reasons[tid].append(HoldReason(hold.id, hold_kind(hold), text))
    if opened:
        app.audit(session, "hold.reasons_read", target_type="legal_hold", actor=actor,
                  holds=",".join(opened), reason="data-subject erasure report",
                  reference=reference, dry_run=dry_run)
    return [HeldTranscript(r.id, r.meeting_id, r.meeting_start,
                           tuple(reasons[r.id]) or (HoldReason("", "flag", None),))
            for r in held]


def erase_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                 email: str | None = None, object_id: str | None = None,
                 reference: str | None = None, actor: str | None = None,
                 dry_run: bool = False) -> ErasureReport:
    """Crypto-shred the transcripts of every meeting the person attended, except held ones.

    Also removes the person's blind values from recordings' participant lists (a held
    transcript keeps its own, so the hold still finds it). A dry run changes nothing; the hold
    reasons it shows are still audited, as every decryption is.
    """
    from meeting_governance.purge import tombstone

    who = subject(email, object_id)
    reference = check_reference(reference) if reference else None
    actor = actor or app.actor
    blind = subject_blind(app, who)
    blinds = _blinds(app, who, identity)
    with app.session() as session:
        req = None if dry_run else _request_for(app, session, "erasure", who, reference, actor)
        ref = req.reference if req is not None else (reference or None)
        rows = _live_transcripts(session, blinds, lock=not dry_run and not is_sqlite(app.engine))
        held_ids = _held_ids(session, [r.id for r in rows])
        held_rows = [r for r in rows if r.id in held_ids]
        doomed = [r for r in rows if r.id not in held_ids]
        held = _hold_reasons(app, session, held_rows, reference=ref, actor=actor,
                             dry_run=dry_run)
        kept_recordings = sorted({r.recording_id for r in held_rows if r.recording_id is not None})
        links = select(RecordingParticipant.id).where(col(RecordingParticipant.blind).in_(blinds))
        if kept_recordings:
            links = links.where(col(RecordingParticipant.recording_id).not_in(kept_recordings))
        link_ids = list(session.exec(links).all())
        kept_optouts = int(session.exec(select(func.count()).select_from(OptOut).where(or_(
            col(OptOut.email_blind).in_(blinds), col(OptOut.object_id_blind).in_(blinds)))).one())
        erased: list[str] = [r.id for r in doomed]
        if req is not None:
            erased = tombstone(app, session, doomed, reason=ERASURE_REASON, run_id=req.reference)
            if link_ids:
                session.exec(delete(RecordingParticipant).where(
                    col(RecordingParticipant.id).in_(link_ids)))
            app.audit(session, "dsr.erase", target_type="dsr_request", target_id=req.reference,
                      actor=actor, subject_blind=blind, identifiers=len(blinds),
                      erased=len(erased), held=len(held),
                      links_removed=len(link_ids), optouts_kept=kept_optouts)
            _complete(app, session, req, actor)
    destroyed: list[str] = []
    if req is not None:
        # Every epoch that wrapped an erased item is rotated: survivors re-wrapped under a new
        # key, the old key destroyed, so no copy of the database can show the erased items.
        destroyed = [d.key_id for d in epochs.settle(
            app, reason="erasure", retire=False, batch_size=app.settings.keys.rotate_batch_size)]
        checkpoint(app.engine)  # SQLite: no shredded key may linger in the WAL
    notes = [OPTOUTS_KEPT_NOTE] + ([HELD_NOTE] if held else [])
    return ErasureReport(reference=ref, dry_run=dry_run, erased=tuple(erased), held=tuple(held),
                         recording_links_removed=len(link_ids), optouts_kept=kept_optouts,
                         notes=tuple(notes), keys_destroyed=tuple(destroyed))


# -- withdrawal of consent --------------------------------------------------------------------
@dataclass(frozen=True)
class WithdrawalReport:
    reference: str
    optout_id: str


def withdraw_consent(app: AppContext, registration: Registration | None = None, /, *,
                     email: str | None = None, object_id: str | None = None,
                     name: str | None = None, reference: str | None = None,
                     actor: str | None = None) -> WithdrawalReport:
    """Withdrawal of consent is an opt-out from every meeting, recording and transcription,
    matching every identifier `registration` (the directory's answer) names."""
    from meeting_governance import optouts as registry

    who = subject(email, object_id)
    actor = actor or app.actor
    with app.session() as session:
        req = _request_for(app, session, "withdrawal", who, reference, actor)
        view = registry.add_optout(app, session, registry.OptOutRequest(
            email=who.email, object_id=who.object_id, name=name,
            note=f"withdrawal of consent, request {req.reference}"), actor=actor,
            registration=registration)
        app.audit(session, "dsr.withdraw", target_type="dsr_request", target_id=req.reference,
                  actor=actor, optout_id=view.id)
        _complete(app, session, req, actor)
        return WithdrawalReport(req.reference, view.id)


