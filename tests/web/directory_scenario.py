"""The Graph emulator as the web pages meet it: a tenant with a GUID id, a directory with a
member who has an alias and another address, a B2B guest, an address three accounts share, and
an organiser with an upcoming meeting (long and short join link) and a past one."""

from __future__ import annotations

from datetime import UTC, datetime

from mg_emulator import Meeting, Organizer, Person, Scenario

TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
ORGANISER = "5a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
ORGANISER_NAME = "Katherine Johnson"
MARGARET = "c1000000-0000-4000-8000-00000000000a"
MARGARET_NAME = "Margaret Hamilton"
MARGARET_PRIMARY = "margaret.hamilton@contoso.example"
MARGARET_ALIAS = "m.hamilton@contoso.example"
MARGARET_OTHER = "maggie@home.example"
LEE = "c1000000-0000-4000-8000-00000000000b"
LEE_NAME = "Lee Northwind"
LEE_OWN = "lee@northwind.example"
SHARED = "team@contoso.example"
SHARED_BY = [f"c1000000-0000-4000-8000-0000000000{n:02d}" for n in (21, 22)]
NOBODY = "nobody@contoso.example"

SUBJECT = "Quarterly planning: Project Osprey"
PAST_SUBJECT = "Retrospective on the Osprey tender"
PLANNING_ID = "MSo-planning=="
PAST_ID = "MSo-retro=="
JOIN_ID = "314159265358"
_CONTEXT = f"%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{ORGANISER}%22%7d"
PLANNING_LINK = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_T3NwcmV5UGxhbm5pbmc"
                 f"%40thread.v2/0?context={_CONTEXT}")
PLANNING_SHORT = f"https://teams.microsoft.com/meet/{JOIN_ID}?p=Osprey7"
PAST_LINK = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_T3NwcmV5UmV0cm8"
             f"%40thread.v2/0?context={_CONTEXT}")
UNKNOWN_LINK = "https://teams.microsoft.com/meet/999888777666?p=Nope"

PEOPLE = (
    Person(id=MARGARET, display_name=MARGARET_NAME, upn=MARGARET_PRIMARY, mail=MARGARET_PRIMARY,
           proxy_addresses=(f"SMTP:{MARGARET_PRIMARY}", f"smtp:{MARGARET_ALIAS}"),
           other_mails=(MARGARET_OTHER,)),
    Person(id=LEE, display_name=LEE_NAME, upn=f"lee_northwind.example#EXT#@{TENANT}.example",
           mail=LEE_OWN, user_type="Guest"),
    *(Person(id=oid, display_name=f"Team member {n}", upn=f"member{n}@contoso.example",
             mail=f"member{n}@contoso.example", other_mails=(SHARED,))
      for n, oid in enumerate(SHARED_BY)),
)


def build_scenario() -> Scenario:
    return Scenario(
        tenant_id=TENANT, client_id="web-test-client", client_secret="web-test-secret",
        organizers=(Organizer(id=ORGANISER, upn="katherine.johnson@contoso.example",
                              display_name=ORGANISER_NAME),),
        people=PEOPLE,
        meetings=(
            Meeting(id=PLANNING_ID, organizer=ORGANISER, subject=SUBJECT,
                    start=datetime(2031, 3, 14, 10, tzinfo=UTC),
                    end=datetime(2031, 3, 14, 11, tzinfo=UTC),
                    join_url=PLANNING_LINK, join_meeting_id=JOIN_ID),
            Meeting(id=PAST_ID, organizer=ORGANISER, subject=PAST_SUBJECT,
                    start=datetime(2024, 1, 10, 15, tzinfo=UTC),
                    end=datetime(2024, 1, 10, 16, tzinfo=UTC), join_url=PAST_LINK),
        ),
    )
