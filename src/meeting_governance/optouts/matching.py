"""The gate's question: which active opt-outs of these participants cover this meeting?

Matching is by every identifier of a person — Entra object id, mail, UPN, aliases, other
mails, a guest's own address (`optout_identifier`, filled from the directory by
`optout_identities`) — never by display name (anyone can be called "Alex Smith"), with indexed
`IN (…)` queries over the participants' blind values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.identity import Participant
from meeting_governance.meetingref import meeting_keys
from meeting_governance.models import OptOut, OptOutIdentifier
from meeting_governance.optouts.validation import PURPOSES, aware_utc
from meeting_governance.optouts.views import OptOutView, chunks, views_of


@dataclass(frozen=True)
class MeetingRef:
    """The meeting the gate is deciding on, as Graph describes it."""

    meeting_id: str
    join_url: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    join_meeting_id: str | None = None  # joinMeetingIdSettings.joinMeetingId (short links)


def applies(row: OptOut, *, keys: set[str], start: datetime | None, end: datetime | None,
            purpose: str) -> bool:
    """Does this (already identity-matched) opt-out block the meeting for `purpose`? Pure.

    Active (not revoked), covers the purpose, and its scope covers the meeting: all; this
    meeting by key; or a range overlapping start..end, an unknown start or end counting as
    unbounded on that side (fail closed: unknown means no).
    """
    if row.revoked_at is not None:
        return False
    if not (row.covers_recording if purpose == "recording" else row.covers_transcription):
        return False
    if row.scope == "all":
        return True
    if row.scope == "meeting":
        return row.meeting_key is not None and row.meeting_key in keys
    if row.scope == "range":
        starts_in_time = row.valid_from is None or end is None or row.valid_from <= end
        ends_in_time = row.valid_until is None or start is None or row.valid_until >= start
        return starts_in_time and ends_in_time
    return True  # an unknown scope written by a newer version: block rather than guess


def identity_query(column: str, blinds: Sequence[str]) -> SelectOfScalar[OptOut]:
    """Opt-outs whose `column` (email_blind | object_id_blind | identifier) is one of `blinds`.

    The only condition is the IN list, so every planner takes that column's index (SQLite
    without statistics would otherwise pick `ix_optout_revoked_at`, i.e. every active row).
    """
    if column == "identifier":
        ids = select(OptOutIdentifier.optout_id).where(
            col(OptOutIdentifier.blind).in_(list(blinds)))
        return select(OptOut).where(col(OptOut.id).in_(ids))
    target = {"email_blind": OptOut.email_blind, "object_id_blind": OptOut.object_id_blind}[column]
    return select(OptOut).where(col(target).in_(list(blinds)))


def matching(app: AppContext, session: Session, participants: Sequence[Participant],
             meeting: MeetingRef, *, purpose: str = "transcription",
             blinds: Iterable[str] = ()) -> list[OptOutView]:
    """Active opt-outs of these participants that cover this meeting for `purpose`.

    Matches the participants' own object ids and addresses plus `blinds` (every identifier the
    directory knows for them: `people.resolve_participants`) against every identifier of every
    opt-out; display names are never looked at. An empty list means no opt-out applies — it
    says nothing about unresolved participants, which the gate must treat as unknown.
    """
    if purpose not in PURPOSES:
        raise InputError(f"purpose: expected recording or transcription (got {purpose!r})")
    return views_of(app, session, matching_rows(app, session, participants, meeting,
                                              purpose=purpose, blinds=blinds))


def matching_rows(app: AppContext, session: Session, participants: Sequence[Participant],
                  meeting: MeetingRef, *, purpose: str, blinds: Iterable[str] = ()) -> list[OptOut]:
    """`matching` without decrypting anything (what the store's last check needs)."""
    vault = app.vault
    values = set(blinds)
    for p in participants:
        values.update(vault.blind_identities(email=p.email, object_id=p.object_id))
    if not values:
        return []
    start, end = aware_utc(meeting.start), aware_utc(meeting.end)
    if start and end and end < start:
        start, end = end, start
    keys = meeting_keys(vault, meeting.meeting_id, meeting.join_url, meeting.join_meeting_id)
    found: dict[str, OptOut] = {}
    ordered = sorted(values)
    # One query per chunk on each index (the identifier table; the registered columns too, so
    # a row written by any path matches); what a person's few opt-outs say about this meeting
    # is then decided in Python (`applies`).
    for column in ("identifier", "email_blind", "object_id_blind"):
        for chunk in chunks(ordered):
            for row in session.exec(identity_query(column, chunk)).all():
                if row.id not in found and applies(row, keys=keys, start=start, end=end,
                                                   purpose=purpose):
                    found[row.id] = row
    return sorted(found.values(), key=lambda r: (r.created_at, r.id))
