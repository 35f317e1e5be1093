"""Who was in a meeting: organiser and invitees, merged with the attendance of *this* recording.

Invitees (`participants.attendees`) are not the people who joined, so attendance reports are
the evidence; without one the list is incomplete and the gate must fail closed. A recurring
meeting keeps one onlineMeeting id for every occurrence, each with its own report: only reports
whose `meetingStartDateTime`–`meetingEndDateTime` overlaps the recording's own window count,
and an empty one counts as none. Identities the opt-out registry cannot match (anonymous
visitors, Azure Communication Services users, phone lines, rooms) are kept as what they are and
named in `gaps`.

How identities count (Microsoft's `communicationsIdentitySet`): `user` is a person (resolved
through the directory later); `guest`, `azureCommunicationServicesUser` and `teamsvisitor:` ids
are anonymous; `phone` is a phone line; `applicationInstance` and `device` are Teams Rooms and
other devices — not people, but the people in the room are not listed, so they make the meeting
unknown unless `gate.allow_rooms`; `application` is a bot: not a person, and not counted.
`tenantId` is not read: the directory decides who is a member or a guest (and the US Government
cloud has no `communicationsUserIdentity`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
_ANONYMOUS_PREFIXES = ("teamsvisitor:", "8:teamsvisitor:", "anonymous:", "8:acs:", "acs:")

GAP_NO_ATTENDANCE = "no attendance report"
GAP_OTHER_OCCURRENCE = "no attendance report for this recording's time (only other occurrences)"
GAP_EMPTY_REPORT = "the attendance report is empty"
GAP_NO_TIMES = "the recording's time is unknown, so no attendance report can be matched to it"
GAP_ANONYMOUS = "anonymous participant"
GAP_PHONE = "phone participant"
GAP_GUEST = "guest without address"
GAP_ROOM = "meeting room or device (the people in it are not listed)"
GAP_NO_IDENTITY = "participant without identity"
ATTENDANCE_GAPS = frozenset({GAP_NO_ATTENDANCE, GAP_OTHER_OCCURRENCE, GAP_EMPTY_REPORT,
                             GAP_NO_TIMES})


@dataclass(frozen=True, slots=True)
class Presence:
    """When one attendance record's person was in the meeting (`attendanceIntervals`), kept in
    memory only: speaker naming reads it (`speakers.name_by_attendance`)."""

    object_id: str | None
    email: str | None
    intervals: tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    participants: tuple[Participant, ...]
    complete: bool  # every participant identifiable and attendance known
    gaps: tuple[str, ...]  # why it is not complete (no personal data in these)
    subject: str | None
    join_url: str | None
    start: datetime | None
    end: datetime | None
    join_meeting_id: str | None = None  # joinMeetingIdSettings: what a short /meet/ link holds
    # This occurrence's session, from the reports used (a recurring meeting's onlineMeeting
    # times are the series'): earliest start and latest end.
    attendance_start: datetime | None = None
    attendance_end: datetime | None = None
    reports_used: int = 0
    reports_total: int = 0
    presence: tuple[Presence, ...] = ()  # join/leave of each attendance record used

    @property
    def attendance_known(self) -> bool:
        return not ATTENDANCE_GAPS.intersection(self.gaps)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _is_anonymous(identity_id: str) -> bool:
    return identity_id.lower().startswith(_ANONYMOUS_PREFIXES)


def _is_phone(value: str) -> bool:
    return bool(_PHONE.match(value.strip())) and sum(c.isdigit() for c in value) >= 6


def _classify(identity_id: str, email: str) -> ParticipantKind:
    """One rule for invitees and attendance records alike."""
    if _is_anonymous(identity_id):
        return ParticipantKind.ANONYMOUS
    if identity_id and _is_phone(identity_id):
        return ParticipantKind.PHONE
    if identity_id and is_object_id(identity_id):
        return ParticipantKind.USER
    if email:
        return ParticipantKind.GUEST
    return ParticipantKind.UNKNOWN


def _make(kind: ParticipantKind, identity_id: str, email: str, name: str, role: str,
          source: str) -> Participant:
    matchable_id = identity_id if is_object_id(identity_id) else None
    return Participant.make(kind=kind, object_id=matchable_id, email=email or None,
                            display_name=name or None, role=role.lower() or None, source=source)


def _from_invitee(entry: dict[str, Any], source: str) -> Participant | None:
    """An organiser or invitee: `upn` plus a communicationsIdentitySet; None for a bot."""
    identity = entry.get("identity") or {}
    upn = _text(entry.get("upn"))
    role = _text(entry.get("role"))
    user, guest = identity.get("user"), identity.get("guest")
    room = identity.get("applicationInstance") or identity.get("device")
    if isinstance(identity.get("phone"), dict):
        return _make(ParticipantKind.PHONE, "", "", _text(identity["phone"].get("displayName")),
                     role, source)
    if isinstance(room, dict):
        return _make(ParticipantKind.ROOM, "", "", _text(room.get("displayName")), role, source)
    if isinstance(identity.get("azureCommunicationServicesUser"), dict):
        acs = identity["azureCommunicationServicesUser"]
        return _make(ParticipantKind.ANONYMOUS, "", "", _text(acs.get("displayName")), role,
                     source)
    if isinstance(user, dict):
        identity_id = _text(user.get("id"))
        kind = _classify(identity_id, upn)
        if kind == ParticipantKind.GUEST and not identity_id:
            kind = ParticipantKind.USER  # a UPN without id is still a directory account
        return _make(kind, identity_id, upn, _text(user.get("displayName")), role, source)
    if isinstance(guest, dict):
        identity_id = _text(guest.get("id"))
        kind = (ParticipantKind.ANONYMOUS if _is_anonymous(identity_id)
                else ParticipantKind.GUEST)
        return _make(kind, identity_id, upn, _text(guest.get("displayName")), role, source)
    if isinstance(identity.get("application"), dict) and not upn:
        return None  # a bot: not a person, hears no one who is not listed
    kind = ParticipantKind.USER if upn else ParticipantKind.UNKNOWN
    return _make(kind, "", upn, "", role, source)


def _from_record(record: dict[str, Any]) -> Participant:
    identity = record.get("identity") or {}
    identity_id = _text(identity.get("id"))
    email = _text(record.get("emailAddress"))
    name = _text(identity.get("displayName"))
    kind = _classify(identity_id, email)
    if kind == ParticipantKind.UNKNOWN and _is_phone(name):
        kind = ParticipantKind.PHONE
    return _make(kind, identity_id, email, name, _text(record.get("role")), "attendance")


def gap_of(p: Participant) -> str | None:
    """Why this one participant keeps the meeting from being known (no personal data)."""
    if p.identifiable:
        return None
    return {
        ParticipantKind.ANONYMOUS: GAP_ANONYMOUS,
        ParticipantKind.PHONE: GAP_PHONE,
        ParticipantKind.GUEST: GAP_GUEST,
        ParticipantKind.ROOM: GAP_ROOM,
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
        role=have.role or other.role, resolved=have.resolved and other.resolved)


def _meeting_url(client: GraphClient, organizer_id: str, meeting_id: str) -> str:
    return client.url("users", organizer_id, "onlineMeetings", meeting_id)


def _overlaps(report: dict[str, Any], window: tuple[datetime, datetime]) -> bool:
    start = parse_graph_datetime(report.get("meetingStartDateTime"))
    end = parse_graph_datetime(report.get("meetingEndDateTime"))
    if start is None or end is None:
        return False  # a report we cannot place in time may be another occurrence's
    return start <= window[1] and end >= window[0]


def resolve_participants(client: GraphClient, organizer_id: str, meeting_id: str, *,
                         window: Sequence[datetime | None] | None = None) -> MeetingInfo:
    """Organiser, invitees and the attendance records of the reports that overlap `window`
    (the recording's start and end), merged and classified. `window=None` uses every report
    (only for callers that judge no particular recording).

    A body of the wrong shape (a string where an object belongs) is a retryable GraphError,
    never a crash: the gate then waits, as for any other Graph error."""
    try:
        return _resolve(client, organizer_id, meeting_id, window)
    except (AttributeError, TypeError) as exc:
        raise shape_error("participants", exc) from None


def _resolve(client: GraphClient, organizer_id: str, meeting_id: str,
             window: Sequence[datetime | None] | None) -> MeetingInfo:
    base = _meeting_url(client, organizer_id, meeting_id)
    meeting = client.get_json(base, kind="meeting")
    people = meeting.get("participants") or {}
    organizer = people.get("organizer") or {}
    candidates: list[Participant] = []
    if organizer:
        org = _from_invitee(organizer, "organizer")
        if org is not None:
            candidates.append(replace(org, role="organizer"))
    for attendee in people.get("attendees") or []:
        if isinstance(attendee, dict) and (invitee := _from_invitee(attendee, "attendee")):
            candidates.append(invitee)

    reports, _ = client.get_all(f"{base}/attendanceReports", kind="attendance_reports")
    reports = [r for r in reports if _text(r.get("id"))]
    gaps: list[str] = []
    if window is None:
        used = reports
    else:
        times = [t for t in window if t is not None]
        span = (min(times), max(times)) if len(times) == 2 else None
        used = [r for r in reports if span and _overlaps(r, span)]
        if reports and span is None:
            gaps.append(GAP_NO_TIMES)
        elif reports and not used:
            gaps.append(GAP_OTHER_OCCURRENCE)
    if not reports:
        gaps.append(GAP_NO_ATTENDANCE)
    records_seen = 0
    presence: list[Presence] = []
    for report in used:
        records = report.get("attendanceRecords")
        if not isinstance(records, list):
            records, _ = client.get_all(
                f"{base}/attendanceReports/{quote_segment(_text(report['id']))}/attendanceRecords",
                kind="attendance_records")
        rows = [r for r in records if isinstance(r, dict)]
        records_seen += len(rows)
        for row in rows:
            person = _from_record(row)
            candidates.append(person)
            presence.append(Presence(person.object_id, person.email, _intervals(row)))
    if used and not records_seen:
        gaps.append(GAP_EMPTY_REPORT)

    participants = merge_participants(candidates)
    for p in participants:
        gap = gap_of(p)
        if gap and gap not in gaps:
            gaps.append(gap)
    ends = [e for e in (parse_graph_datetime(r.get("meetingEndDateTime")) for r in used) if e]
    starts = [t for t in (parse_graph_datetime(r.get("meetingStartDateTime")) for r in used) if t]
    settings = meeting.get("joinMeetingIdSettings")
    join_id = _text(settings.get("joinMeetingId")) if isinstance(settings, dict) else ""
    return MeetingInfo(
        participants=participants,
        complete=not gaps,
        gaps=tuple(gaps),
        subject=_text(meeting.get("subject")) or None,
        join_url=_text(meeting.get("joinWebUrl")) or None,
        start=parse_graph_datetime(meeting.get("startDateTime")),
        end=parse_graph_datetime(meeting.get("endDateTime")),
        join_meeting_id=join_id.replace(" ", "") or None,
        attendance_start=min(starts, default=None),
        attendance_end=max(ends, default=None),
        reports_used=len(used),
        reports_total=len(reports),
        presence=tuple(presence),
    )


def _intervals(record: dict[str, Any]) -> tuple[tuple[datetime, datetime], ...]:
    """The record's (join, leave) intervals; one we cannot place in time is left out."""
    out = []
    for item in record.get("attendanceIntervals") or []:
        if not isinstance(item, dict):
            continue
        join = parse_graph_datetime(item.get("joinDateTime"))
        leave = parse_graph_datetime(item.get("leaveDateTime"))
        if join is not None and leave is not None and leave > join:
            out.append((join, leave))
    return tuple(out)


__all__ = ["ATTENDANCE_GAPS", "MeetingInfo", "Presence", "gap_of", "merge_participants",
           "resolve_participants"]
