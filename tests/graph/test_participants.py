"""Participants: organiser, invitees and attendance merged; unknown identities fail closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.graph import resolve_participants
from meeting_governance.graph.participants import (
    GAP_ANONYMOUS,
    GAP_EMPTY_REPORT,
    GAP_GUEST,
    GAP_NO_ATTENDANCE,
    GAP_NO_IDENTITY,
    GAP_NO_TIMES,
    GAP_OTHER_OCCURRENCE,
    GAP_PHONE,
    GAP_ROOM,
    merge_participants,
)
from meeting_governance.identity import Participant, ParticipantKind

from .emulator_scenario import (
    JANE,
    MEETING_EMPTY_REPORT,
    MEETING_FULL,
    MEETING_MANY,
    MEETING_MIXED,
    MEETING_NO_REPORT,
    MEETING_RECURRING,
    MEETING_ROOM,
    OCCURRENCES,
    ODD_MEETING,
    ORG_A,
    ORG_B,
    ORG_C,
)


def test_complete_meeting_is_merged_and_normalised(client):
    info = resolve_participants(client, ORG_A, MEETING_FULL)
    assert info.complete and info.gaps == ()
    assert [(p.kind, p.email, p.source) for p in info.participants] == [
        (ParticipantKind.USER, "owner.a@contoso.example", "organizer"),
        (ParticipantKind.USER, "member.one@contoso.example", "attendee"),
    ]
    assert info.participants[0].role == "organizer"
    assert info.participants[1].object_id == "a0000000-0000-4000-8000-000000000001"
    assert info.subject and info.join_url and info.start and info.end


def test_anonymous_phone_and_unknown_are_kept_and_make_it_incomplete(client):
    info = resolve_participants(client, ORG_B, MEETING_MIXED)
    kinds = [p.kind for p in info.participants]
    assert ParticipantKind.ANONYMOUS in kinds
    assert ParticipantKind.PHONE in kinds
    assert ParticipantKind.UNKNOWN in kinds
    # Another tenant's object id: a person to look up, not yet resolved (tenantId is not read:
    # the directory decides who is a member or a guest).
    external = next(p for p in info.participants if p.email == "ext@fabrikam.example")
    assert external.kind == ParticipantKind.USER and external.identifiable
    assert not external.resolved
    assert not info.complete
    assert set(info.gaps) == {GAP_ANONYMOUS, GAP_PHONE, GAP_NO_IDENTITY, GAP_GUEST}
    assert not any(p.identifiable for p in info.participants
                   if p.kind in (ParticipantKind.ANONYMOUS, ParticipantKind.PHONE))


def test_meeting_without_attendance_report_is_incomplete(client):
    info = resolve_participants(client, ORG_B, MEETING_NO_REPORT)
    assert not info.complete
    assert info.gaps == (GAP_NO_ATTENDANCE,)
    assert {p.source for p in info.participants} == {"organizer", "attendee"}


def test_missing_attendance_report_fault(emulator, client):
    emulator.faults.set(missing_attendance={MEETING_FULL})
    info = resolve_participants(client, ORG_A, MEETING_FULL)
    assert not info.complete and GAP_NO_ATTENDANCE in info.gaps
    emulator.faults.reset()
    assert resolve_participants(client, ORG_A, MEETING_FULL).complete


def test_attendance_records_are_paged(emulator, client):
    info = resolve_participants(client, ORG_B, MEETING_MANY)
    emails = {p.email for p in info.participants if p.source == "attendance"}
    assert emails == {f"person{i}@contoso.example" for i in range(10, 15)}
    record_calls = [r for r in emulator.requests.graph_requests()
                    if r.path.endswith("/attendanceRecords")]
    assert len(record_calls) == 3  # 5 records, page_size 2
    assert "%2F" in record_calls[0].path  # the report id "rep/many=" stayed one segment


def test_odd_meeting_id(client):
    assert resolve_participants(client, ORG_A, ODD_MEETING).complete


def test_a_recurring_meeting_is_judged_by_this_occurrence_report_only(emulator, client):
    """One onlineMeeting id, three occurrences: the recording of the 9th sees Jane (who came
    on the 9th), not Lee (who came on the 2nd and the 16th)."""
    start, end = OCCURRENCES[1]
    info = resolve_participants(client, ORG_C, MEETING_RECURRING, window=(start, end))
    attendees = {p.object_id for p in info.participants if p.source == "attendance"}
    assert attendees == {JANE}
    assert info.attendance_known and (info.reports_used, info.reports_total) == (1, 3)
    assert (info.attendance_start, info.attendance_end) == OCCURRENCES[1]
    # Only the matching report's records were fetched.
    fetched = [r.path for r in emulator.requests.graph_requests()
               if r.path.endswith("/attendanceRecords")]
    assert len(fetched) == 1 and "rep-weekly-1" in fetched[0]


def test_a_recording_with_only_other_occurrences_reports_waits(client):
    """Graph lists last week's report and the week before's: neither is this recording's."""
    later = (datetime(2026, 11, 23, 9, 5, tzinfo=UTC), datetime(2026, 11, 23, 9, 55, tzinfo=UTC))
    info = resolve_participants(client, ORG_C, MEETING_RECURRING, window=later)
    assert not info.attendance_known
    assert GAP_OTHER_OCCURRENCE in info.gaps
    assert not [p for p in info.participants if p.source == "attendance"]


def test_a_recording_without_times_cannot_pick_a_report(client):
    info = resolve_participants(client, ORG_C, MEETING_RECURRING, window=(None, None))
    assert GAP_NO_TIMES in info.gaps and not info.attendance_known


def test_an_empty_report_is_no_report(client):
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    info = resolve_participants(client, ORG_C, MEETING_EMPTY_REPORT,
                                window=(start, start + timedelta(minutes=30)))
    assert GAP_EMPTY_REPORT in info.gaps and not info.attendance_known


def test_rooms_bots_and_acs_users_count_as_decided(client):
    """A Teams Room (applicationInstance) is not a person and hides who sat in the room: a gap.
    A bot (application) is not counted at all. An ACS user has no identity: anonymous."""
    info = resolve_participants(client, ORG_C, MEETING_ROOM)
    kinds = sorted(p.kind.value for p in info.participants)
    assert kinds == ["anonymous", "room", "user"]
    assert GAP_ROOM in info.gaps and GAP_ANONYMOUS in info.gaps
    room = next(p for p in info.participants if p.kind is ParticipantKind.ROOM)
    assert not room.identifiable and room.object_id is None
    assert info.join_meeting_id == "123456789012"


def test_no_personal_data_in_gaps(client):
    info = resolve_participants(client, ORG_B, MEETING_MIXED)
    assert not any("@" in gap or "+49" in gap for gap in info.gaps)


_identities = st.builds(
    lambda kind, oid, mail: Participant.make(kind=kind, object_id=oid, email=mail),
    st.sampled_from([ParticipantKind.USER, ParticipantKind.GUEST, ParticipantKind.ANONYMOUS]),
    st.sampled_from([None, "A0000000-0000-4000-8000-000000000001",
                     "a0000000-0000-4000-8000-000000000002"]),
    st.sampled_from([None, "x@contoso.example", "X@Contoso.Example ", "y@contoso.example"]),
)


@given(st.lists(_identities, max_size=8))
def test_merge_leaves_no_two_entries_with_the_same_identity(candidates):
    merged = merge_participants(candidates)
    for i, a in enumerate(merged):
        for b in merged[i + 1:]:
            assert not (a.object_id and a.object_id == b.object_id)
            assert not (a.email and a.email == b.email)
    assert merge_participants(list(merged)) == merged  # idempotent
    assert len(merged) <= len(candidates)
