"""Who was in a meeting: organiser and invitees, merged with every attendance report.

Invitees (`participants.attendees`) are not the people who joined, so attendance reports are
the evidence; without one the list is incomplete and the gate must fail closed. Identities the
opt-out registry cannot match (anonymous visitors, phone lines, guests without an address)
are kept as what they are and named in `gaps`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from meeting_governance.graph.client import GraphClient, quote_segment
from meeting_governance.graph.recordings import parse_graph_datetime, shape_error
from meeting_governance.identity import (
    Participant,
    ParticipantKind,
    is_object_id,
)

_PHONE = re.compile(r"^(tel:)?\+?[0-9][0-9 ()\-]{5,20}$")
_ANONYMOUS_PREFIXES = ("teamsvisitor:", "8:teamsvisitor:", "anonymous:")

GAP_NO_ATTENDANCE = "no attendance report"
GAP_ANONYMOUS = "anonymous participant"
GAP_PHONE = "phone participant"
GAP_GUEST = "guest without address"
GAP_NO_IDENTITY = "participant without identity"


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    participants: tuple[Participant, ...]
    complete: bool  # every participant identifiable and attendance known
    gaps: tuple[str, ...]  # why it is not complete (no personal data in these)
    subject: str | None
    join_url: str | None
    start: datetime | None
    end: datetime | None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _is_anonymous(identity_id: str) -> bool:
    return identity_id.lower().startswith(_ANONYMOUS_PREFIXES)


def _is_phone(value: str) -> bool:
    return bool(_PHONE.match(value.strip())) and sum(c.isdigit() for c in value) >= 6


def _classify(identity_id: str, email: str, tenant: str, home_tenant: str) -> ParticipantKind:
    """One rule for invitees and attendance records alike."""
    if _is_anonymous(identity_id):
        return ParticipantKind.ANONYMOUS
    if identity_id and _is_phone(identity_id):
        return ParticipantKind.PHONE
    if identity_id and is_object_id(identity_id):
        if tenant and home_tenant and tenant.lower() != home_tenant.lower():
            return ParticipantKind.GUEST
        return ParticipantKind.USER
    if email:
        return ParticipantKind.GUEST
    return ParticipantKind.UNKNOWN


def _make(kind: ParticipantKind, identity_id: str, email: str, name: str, role: str,
          source: str) -> Participant:
    matchable_id = identity_id if is_object_id(identity_id) else None
    return Participant.make(kind=kind, object_id=matchable_id, email=email or None,
                            display_name=name or None, role=role.lower() or None, source=source)


def _from_invitee(entry: dict[str, Any], source: str, home_tenant: str) -> Participant:
    """An organiser or invitee: `upn` plus an identitySet (user, guest, phone, acsUser)."""
    identity = entry.get("identity") or {}
    upn = _text(entry.get("upn"))
    role = _text(entry.get("role"))
    phone, guest = identity.get("phone"), identity.get("guest")
    user = identity.get("user") or identity.get("acsUser")
    if isinstance(phone, dict):
        return _make(ParticipantKind.PHONE, "", "", _text(phone.get("displayName")), role, source)
    if isinstance(user, dict):
        identity_id = _text(user.get("id"))
        kind = _classify(identity_id, upn, _text(user.get("tenantId")), home_tenant)
        if kind == ParticipantKind.GUEST and not identity_id:
            kind = ParticipantKind.USER  # a UPN without id is still a directory account
        return _make(kind, identity_id, upn, _text(user.get("displayName")), role, source)
    if isinstance(guest, dict):
        identity_id = _text(guest.get("id"))
        kind = (ParticipantKind.ANONYMOUS if _is_anonymous(identity_id)
                else ParticipantKind.GUEST)
        return _make(kind, identity_id, upn, _text(guest.get("displayName")), role, source)
    kind = ParticipantKind.USER if upn else ParticipantKind.UNKNOWN
    return _make(kind, "", upn, "", role, source)


def _from_record(record: dict[str, Any], home_tenant: str) -> Participant:
    identity = record.get("identity") or {}
    identity_id = _text(identity.get("id"))
    email = _text(record.get("emailAddress"))
    name = _text(identity.get("displayName"))
    kind = _classify(identity_id, email, _text(identity.get("tenantId")), home_tenant)
    if kind == ParticipantKind.UNKNOWN and _is_phone(name):
        kind = ParticipantKind.PHONE
    return _make(kind, identity_id, email, name, _text(record.get("role")), "attendance")


def _gap(p: Participant) -> str | None:
    if p.identifiable:
        return None
    return {
        ParticipantKind.ANONYMOUS: GAP_ANONYMOUS,
        ParticipantKind.PHONE: GAP_PHONE,
        ParticipantKind.GUEST: GAP_GUEST,
    }.get(p.kind, GAP_NO_IDENTITY)


def merge_participants(candidates: list[Participant]) -> tuple[Participant, ...]:
    """One entry per person: same object id or same normalised e-mail is the same person.

    Earlier sources win for kind and role (organiser, then invitees, then attendance); later
    ones fill in what is missing. Unidentifiable entries are never merged with each other:
    two anonymous visitors are two people.
    """
    merged: list[Participant] = []
    for cand in candidates:
        same = [i for i, p in enumerate(merged) if (cand.object_id or cand.email) and (
            (cand.object_id and p.object_id == cand.object_id)
            or (cand.email and p.email == cand.email))]
        if not same:
            merged.append(cand)
            continue
        # A candidate may bridge two entries (one known by id, one by address): fold them all.
        combined = merged[same[0]]
        for other in [*(merged[i] for i in same[1:]), cand]:
            combined = _combine(combined, other)
        merged[same[0]] = combined
        for i in reversed(same[1:]):
            del merged[i]
    return tuple(merged)


def _combine(have: Participant, other: Participant) -> Participant:
    kind = other.kind if have.kind == ParticipantKind.UNKNOWN else have.kind
    return replace(
        have, kind=kind, object_id=have.object_id or other.object_id,
        email=have.email or other.email, display_name=have.display_name or other.display_name,
        role=have.role or other.role)


def _meeting_url(client: GraphClient, organizer_id: str, meeting_id: str) -> str:
    return client.url("users", organizer_id, "onlineMeetings", meeting_id)


def resolve_participants(client: GraphClient, organizer_id: str, meeting_id: str) -> MeetingInfo:
    """Organiser, invitees and every attendance record of one meeting, merged and classified.

    A body of the wrong shape (a string where an object belongs) is a retryable GraphError,
    never a crash: the gate then waits, as for any other Graph error."""
    try:
        return _resolve(client, organizer_id, meeting_id)
    except (AttributeError, TypeError) as exc:
        raise shape_error("participants", exc) from None


def _resolve(client: GraphClient, organizer_id: str, meeting_id: str) -> MeetingInfo:
    base = _meeting_url(client, organizer_id, meeting_id)
    meeting = client.get_json(base, kind="meeting")
    people = meeting.get("participants") or {}
    organizer = people.get("organizer") or {}
    home_tenant = _text(((organizer.get("identity") or {}).get("user") or {}).get("tenantId"))
    candidates: list[Participant] = []
    if organizer:
        org = _from_invitee(organizer, "organizer", home_tenant)
        candidates.append(replace(org, role="organizer"))
    for attendee in people.get("attendees") or []:
        if isinstance(attendee, dict):
            candidates.append(_from_invitee(attendee, "attendee", home_tenant))

    reports, _ = client.get_all(f"{base}/attendanceReports", kind="attendance_reports")
    for report in reports:
        report_id = _text(report.get("id"))
        if not report_id:
            continue
        records = report.get("attendanceRecords")
        if not isinstance(records, list):
            records, _ = client.get_all(
                f"{base}/attendanceReports/{quote_segment(report_id)}/attendanceRecords",
                kind="attendance_records")
        candidates.extend(_from_record(r, home_tenant) for r in records if isinstance(r, dict))

    participants = merge_participants(candidates)
    gaps: list[str] = [] if reports else [GAP_NO_ATTENDANCE]
    for p in participants:
        gap = _gap(p)
        if gap and gap not in gaps:
            gaps.append(gap)
    return MeetingInfo(
        participants=participants,
        complete=not gaps,
        gaps=tuple(gaps),
        subject=_text(meeting.get("subject")) or None,
        join_url=_text(meeting.get("joinWebUrl")) or None,
        start=parse_graph_datetime(meeting.get("startDateTime")),
        end=parse_graph_datetime(meeting.get("endDateTime")),
    )


__all__ = ["MeetingInfo", "merge_participants", "resolve_participants"]
