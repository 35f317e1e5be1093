"""The scenario the graph tests run against: odd ids, paging, every kind of participant, a
directory with aliases, guests and shared addresses, a recurring meeting with one report per
occurrence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    Attendee,
    Group,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
)
from mg_emulator.scenario import CallTranscript, TranscriptCue

# What Teams' own transcript heard in MEETING_FULL: our code must never keep it.
TEAMS_SAID = "teams transcribed quokka semaphore"
ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"
ORG_C = "33333333-3333-4333-8333-333333333333"  # recurring, empty-report and room meetings
TENANT = "test-tenant"

# Graph ids are opaque base64-ish strings: every character a client must quote.
ODD_MEETING = "MSo=/a+b#c@d*e'f g%h"
ODD_RECORDING = "VjIj=/x+y#z@w*v"
MEETING_FULL = "MSo-full=="
MEETING_MIXED = "MSo-mixed/=="
MEETING_NO_REPORT = "MSo-noreport+=="
MEETING_MANY = "MSo-many#=="
MEETING_WRONG_TYPE = "MSo-html=="
MEETING_RECURRING = "MSo-weekly=="
MEETING_EMPTY_REPORT = "MSo-empty=="
MEETING_ROOM = "MSo-room=="
ROOM_LINK = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_room%40thread.v2/0"
             f"?context=%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{ORG_C}%22%7d")
# The recurring meeting's occurrences: one report each, a week apart.
OCCURRENCES = [(datetime(2026, 11, d, 9, tzinfo=UTC), datetime(2026, 11, d, 10, tzinfo=UTC))
               for d in (2, 9, 16)]

# The directory: Jane has an alias and another address; Lee is a B2B guest; three accounts
# share one "other mail" (more than a page).
JANE = "c0000000-0000-4000-8000-00000000000a"
LEE = "c0000000-0000-4000-8000-00000000000b"
SHARED_BY = [f"c0000000-0000-4000-8000-0000000000{n:02d}" for n in (21, 22, 23)]
LEE_UPN = f"lee_northwind.example#EXT#@{TENANT}.onmicrosoft.com"
PEOPLE = (
    Person(id=JANE, display_name="Jane Smith", upn="jane.smith@contoso.example",
           mail="Jane.Smith@contoso.example",
           proxy_addresses=("SMTP:Jane.Smith@contoso.example", "smtp:j.smith@contoso.example",
                            "SIP:jane.smith@contoso.example", "X500:/o=Contoso/cn=jane"),
           other_mails=("jane@home.example",)),
    Person(id=LEE, display_name="Lee Northwind", upn=LEE_UPN, mail="lee@northwind.example",
           user_type="Guest"),
    *(Person(id=oid, display_name=f"Shared {n}", upn=f"shared{n}@contoso.example",
             mail=f"shared{n}@contoso.example", other_mails=("team@contoso.example",))
      for n, oid in enumerate(SHARED_BY)),
    Person(id="a0000000-0000-4000-8000-000000000001", display_name="Member One",
           upn="member.one@contoso.example", mail="member.one@contoso.example"),
)

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
    weekly = tuple(AttendanceReport(
        id=f"rep-weekly-{n}", start=a, end=b, records=(
            AttendanceRecord(id=f"w{n}", email="", identity_id=JANE if n == 1 else LEE,
                             display_name="Someone", seconds=600),))
        for n, (a, b) in enumerate(OCCURRENCES))
    meetings = (
        Meeting(id=MEETING_RECURRING, organizer=ORG_C, subject="Weekly", start=OCCURRENCES[0][0],
                end=OCCURRENCES[0][1], attendance_reports=weekly),
        Meeting(id=MEETING_EMPTY_REPORT, organizer=ORG_C, subject="Empty", start=start, end=end,
                attendance_reports=(AttendanceReport(id="rep-empty"),)),
        Meeting(id=MEETING_ROOM, organizer=ORG_C, subject="Room", start=start, end=end,
                join_meeting_id="123456789012",
                join_url=ROOM_LINK,
                attendees=(Attendee(display_name="Board Room", kind="room",
                                    object_id="d0000000-0000-4000-8000-000000000001"),
                           Attendee(display_name="Notes bot", kind="application",
                                    object_id="d0000000-0000-4000-8000-000000000002"),
                           Attendee(display_name="App user", kind="acs",
                                    object_id="8:acs:abc_def")),
                attendance_reports=(AttendanceReport(id="rep-room", records=(
                    AttendanceRecord(id="o1", identity_id=ORG_C, seconds=60),)),)),
        meeting(MEETING_FULL, ORG_A, attendees=(
            Attendee(upn="member.one@contoso.example", object_id=_user(1), display_name="M1",
                     tenant_id=TENANT),), attendance_reports=(full_report,),
            transcripts=(CallTranscript(id="tr-full", created=start, end=end, cues=(
                TranscriptCue(1.5, 4.0, "Owner A", TEAMS_SAID),
                TranscriptCue(4.0, 9.25, "M1", TEAMS_SAID))),)),
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
                    Organizer(id=ORG_B, upn="owner.b@contoso.example", display_name="Owner B"),
                    Organizer(id=ORG_C, upn="owner.c@contoso.example", display_name="Owner C")),
        meetings=meetings, recordings=recordings, people=PEOPLE,
        groups=(Group(id=GROUP, members=(ORG_A, ORG_B, _user(42))),),
    )
