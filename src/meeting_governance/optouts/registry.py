"""The registry: add, revoke, find and list opt-outs, each change sealed, audited and bumping
the registry version that the store of a transcript waits on."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.ids import resolve_id
from meeting_governance.meetingref import blind_meeting
from meeting_governance.models import AuditEntry, OptOut
from meeting_governance.optout_identities import bump_registry, record_registration
from meeting_governance.optouts.validation import (
    MAX_REASON,
    Clean,
    OptOutRequest,
    blind_name,
    clean_request,
)
from meeting_governance.optouts.views import EPOCH, OptOutView, views_of
from meeting_governance.people import Registration

TARGET = "optout"  # the audit log's target_type


def insert_row(app: AppContext, session: Session, clean: Clean, req: OptOutRequest, *,
               actor: str, registration: Registration | None = None) -> OptOut:
    """Seal and add one validated opt-out (no flush, no audit: the caller does both)."""
    vault = app.vault
    identity = {"name": clean.name, "email": clean.email, "object_id": clean.object_id,
                "meeting": clean.meeting}
    oid = uuid.uuid4().hex
    row = OptOut(
        id=oid,
        email_blind=vault.blind_email(clean.email) if clean.email else None,
        object_id_blind=vault.blind_object_id(clean.object_id) if clean.object_id else None,
        name_blind=blind_name(vault, clean.name) if clean.name else None,
        identity_item=vault.seal_json(session, identity, purpose="optout-identity",
                                      owner=Owner("optout", oid, "identity"), epoch=EPOCH),
        scope=clean.scope,
        meeting_key=blind_meeting(vault, clean.meeting_key) if clean.meeting_key else None,
        valid_from=clean.valid_from, valid_until=clean.valid_until,
        covers_recording=req.covers_recording, covers_transcription=req.covers_transcription,
        note_item=vault.seal_text(session, clean.note, purpose="optout-note", epoch=EPOCH,
                                  owner=Owner("optout", oid, "note")) if clean.note else None,
        created_by=actor, created_at=app.clock.now(),
    )
    if registration is not None:
        row.resolution, row.resolved_at = registration.status, app.clock.now()
    session.add(row)
    return row


def audit_details(row: OptOut) -> dict[str, Any]:
    """What the audit log may say about an opt-out: blind values and its shape, nothing personal."""
    covers = "both" if row.covers_recording and row.covers_transcription else (
        "recording" if row.covers_recording else "transcription")
    return {"scope": row.scope, "covers": covers, "email_blind": row.email_blind,
            "object_id_blind": row.object_id_blind, "meeting_key": row.meeting_key}


def add_optout(app: AppContext, session: Session, req: OptOutRequest, *,
               actor: str, registration: Registration | None = None) -> OptOutView:
    """Validate, seal and store one opt-out in the caller's transaction, and audit it.

    `registration` is the directory's answer for its identity (`people.resolve_registration`,
    asked before the transaction); without one the opt-out matches the identifier registered
    until the daemon's refresh resolves it."""
    clean, errors = clean_request(req)
    if clean is None:
        raise InputError("; ".join(str(e) for e in errors))
    row = insert_row(app, session, clean, req, actor=actor, registration=registration)
    session.flush()
    record_registration(app, session, row, registration)
    bump_registry(session, app.clock.now())
    app.audit(session, "optout.add", target_type=TARGET, target_id=row.id, actor=actor,
              resolution=row.resolution, **audit_details(row))
    return views_of(app, session, [row])[0]


def _get_row(session: Session, optout_id: str, *, for_update: bool = False) -> OptOut:
    found = resolve_id(session, col(OptOut.id), optout_id, kind="opt-out", listing="optout list")
    query = select(OptOut).where(OptOut.id == found)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise NotFoundError(f"opt-out {optout_id.strip()} does not exist "
                            "(see `meeting-governance optout list`)")
    return row


def get_optout(app: AppContext, session: Session, optout_id: str) -> OptOutView:
    """One opt-out, decrypted; `NotFoundError` if there is none with this id."""
    return views_of(app, session, [_get_row(session, optout_id)])[0]


def revoke_optout(app: AppContext, session: Session, optout_id: str, *, actor: str,
                  reason: str | None = None) -> OptOutView:
    """Mark an opt-out revoked (the row stays for the history); revoking twice is an error."""
    row = _get_row(session, optout_id, for_update=True)
    if row.revoked_at is not None:
        raise InputError(f"opt-out {row.id} was already revoked on "
                         f"{row.revoked_at.isoformat(timespec='seconds')} by {row.revoked_by}")
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise InputError(f"reason: too long ({len(reason)} characters; at most {MAX_REASON})")
    row.revoked_at = app.clock.now()
    row.revoked_by = actor
    if reason:
        row.revoke_reason_item = app.vault.seal_text(
            session, reason, purpose="optout-reason", epoch=EPOCH,
            owner=Owner("optout", row.id, "revoke_reason"))
    session.add(row)
    bump_registry(session, row.revoked_at)
    app.audit(session, "optout.revoke", target_type=TARGET, target_id=row.id, actor=actor,
              reason_given=bool(reason))
    return views_of(app, session, [row])[0]


def list_optouts(app: AppContext, session: Session, *, search: str | None = None,
                 include_revoked: bool = True, limit: int = 200,
                 offset: int = 0) -> list[OptOutView]:
    """Newest first. `search` is an exact e-mail, object id, name (any case/spacing) or opt-out id,
    looked up through the blind index: the registry cannot do substring search by design."""
    query = select(OptOut)
    if search and search.strip():
        vault, text = app.vault, search.strip()
        query = query.where(or_(
            col(OptOut.email_blind) == vault.blind_email(text),
            col(OptOut.object_id_blind) == vault.blind_object_id(text),
            col(OptOut.name_blind) == blind_name(vault, text),
            col(OptOut.id) == text.lower(),
        ))
    if not include_revoked:
        query = query.where(col(OptOut.revoked_at).is_(None))
    query = query.order_by(col(OptOut.created_at).desc(), col(OptOut.id)).offset(max(offset, 0))
    rows = session.exec(query.limit(max(min(limit, 10_000), 0))).all()
    return views_of(app, session, rows)


def history(app: AppContext, session: Session, optout_id: str) -> list[AuditEntry]:
    """The audit trail of one opt-out, oldest first (ids and blind values only)."""
    _get_row(session, optout_id)
    return list(session.exec(
        select(AuditEntry).where(AuditEntry.target_type == TARGET,
                                 AuditEntry.target_id == optout_id.strip())
        .order_by(col(AuditEntry.seq))).all())
