"""The scenario the graph tests run against: odd ids, paging, every kind of participant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meeting_governance.graph.emulator import (
    AttendanceRecord,
    AttendanceReport,
    Attendee,
    Group,
    Meeting,
    Organizer,
    Recording,
    Scenario,
)

ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"
TENANT = "test-tenant"

# Graph ids are opaque base64-ish strings: every character a client must quote.
ODD_MEETING = "MSo=/a+b#c@d*e'f g%h"
ODD_RECORDING = "VjIj=/x+y#z@w*v"
MEETING_FULL = "MSo-full=="
MEETING_MIXED = "MSo-mixed/=="
MEETING_NO_REPORT = "MSo-noreport+=="
MEETING_MANY = "MSo-many#=="
MEETING_WRONG_TYPE = "MSo-html=="

GROUP = "grp/organisers=="
MEDIA_SIZE = 300_000
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def _user(n: int) -> str:
    return f"a0000000-0000-4000-8000-{n:012d}"


def _rec(n: int, meeting: str, day: int, media: str = "clip.mp4",
         content_type: str = "video/mp4", rid: str | None = None) -> Recording:
    return Recording(id=rid or f"VjIj-rec-{n}=", meeting=meeting, media=media,
                     content_type=content_type,
                     created=datetime(2026, 11, day, 10, tzinfo=UTC),
                     end=datetime(2026, 11, day, 9, 59, tzinfo=UTC), call_id=f"call-{n}")


def build_scenario() -> Scenario:
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    end = datetime(2026, 11, 2, 10, tzinfo=UTC)

    def meeting(mid: str, org: str, **kw: Any) -> Meeting:
        return Meeting(id=mid, organizer=org, subject="Subject " + mid[:6], start=start,
                       end=end, join_url=f"https://teams.example/l/meetup-join/{len(mid)}", **kw)

    full_report = AttendanceReport(id="rep-full", records=(
        AttendanceRecord(id="r1", email="owner.a@contoso.example", identity_id=ORG_A,
                         role="Organizer", seconds=3600, tenant_id=TENANT),
        AttendanceRecord(id="r2", email="Member.One@Contoso.example", identity_id=_user(1),
                         seconds=3000, tenant_id=TENANT),
    ))
    mixed_report = AttendanceReport(id="rep-mixed", records=(
        AttendanceRecord(id="m1", identity_id="teamsvisitor:0af1b2c3", display_name="Guest",
                         seconds=100),
        AttendanceRecord(id="m2", identity_id="+4930123456789", display_name="+49 30 1234",
                         seconds=100),
        AttendanceRecord(id="m3", email="", identity_id="", display_name="Someone",
                         seconds=100),
        AttendanceRecord(id="m4", email="ext@fabrikam.example", identity_id=_user(9),
                         tenant_id="other-tenant", seconds=100),
    ))
    many_report = AttendanceReport(id="rep/many=", records=tuple(
        AttendanceRecord(id=f"x{i}", email=f"person{i}@contoso.example", identity_id=_user(i),
                         seconds=60, tenant_id=TENANT) for i in range(10, 15)))
    meetings = (
        meeting(MEETING_FULL, ORG_A, attendees=(
            Attendee(upn="member.one@contoso.example", object_id=_user(1), display_name="M1",
                     tenant_id=TENANT),), attendance_reports=(full_report,)),
        meeting(MEETING_MIXED, ORG_B, attendees=(
            Attendee(upn="", display_name="Guest without address", kind="guest"),),
            attendance_reports=(mixed_report,)),
        meeting(MEETING_NO_REPORT, ORG_B, attendees=(
            Attendee(upn="member.one@contoso.example", object_id=_user(1), tenant_id=TENANT),)),
        meeting(MEETING_MANY, ORG_B, attendance_reports=(many_report,)),
        meeting(ODD_MEETING, ORG_A, attendance_reports=(full_report,)),
        meeting(MEETING_WRONG_TYPE, ORG_B),
    )
    recordings = (
        _rec(1, MEETING_FULL, 2), _rec(2, MEETING_FULL, 3), _rec(3, MEETING_FULL, 4),
        _rec(4, MEETING_FULL, 5), _rec(5, ODD_MEETING, 6, rid=ODD_RECORDING),
        _rec(6, MEETING_MIXED, 7), _rec(7, MEETING_WRONG_TYPE, 8, media="page.html",
                                        content_type="text/html"),
    )
    return Scenario(
        tenant_id=TENANT, client_id="test-client", client_secret="test-secret", page_size=2,
        organizers=(Organizer(id=ORG_A, upn="owner.a@contoso.example", display_name="Owner A"),
                    Organizer(id=ORG_B, upn="owner.b@contoso.example", display_name="Owner B")),
        meetings=meetings, recordings=recordings,
        groups=(Group(id=GROUP, members=(ORG_A, ORG_B, _user(42))),),
    )
