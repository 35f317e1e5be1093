"""`matching`, what the gate calls: identity × scope × coverage, never by display name."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.optouts import MeetingRef, matching, revoke_optout

from .helpers import JOIN_URL, OID, THREAD, add, at, once, person

MEETING = MeetingRef("MSoxMjM0KjAqKjE5Om1lZXRpbmdfb3RoZXJAdGhyZWFkLnYy", JOIN_URL, at(10), at(10, 11))
OTHER = MeetingRef("other-meeting-id", None, at(20), at(20, 11))
DB_EXAMPLES = settings(max_examples=30, deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


def ids(app: AppContext, participants: list[Participant], meeting: MeetingRef = MEETING,
        purpose: str = "transcription") -> set[str]:
    with app.session() as session:
        return {v.id for v in matching(app, session, participants, meeting, purpose=purpose)}


def test_all_meetings_by_email_and_object_id(app: AppContext) -> None:
    by_mail = add(app, email="ada@example.com")
    by_oid = add(app, object_id=OID)
    assert ids(app, [person(email="ADA@Example.com")]) == {by_mail.id}
    assert ids(app, [person(object_id=OID.upper())]) == {by_oid.id}
    assert ids(app, [person(email="ada@example.com", object_id=OID)], OTHER) == {by_mail.id, by_oid.id}
    assert ids(app, [person(email="bob@example.com")]) == set()
    assert ids(app, []) == set()


def test_one_meeting_scope(app: AppContext) -> None:
    by_link = add(app, email="ada@example.com", meeting=unquote(JOIN_URL).upper())
    by_id = add(app, email="ada@example.com", meeting=" other-meeting-id ")
    ada = [person(email="ada@example.com")]
    assert ids(app, ada, MEETING) == {by_link.id}
    assert ids(app, ada, OTHER) == {by_id.id}
    # the gate may know a meeting only by its Graph id, which encodes the thread
    mid = base64.b64encode(f"1*{OID}*0**{THREAD}".encode()).decode()
    assert ids(app, ada, MeetingRef(mid, None, at(10), at(10, 11))) == {by_link.id}
    assert ids(app, ada, MeetingRef("unrelated", None, at(10), at(10, 11))) == set()


def test_date_range_scope(app: AppContext) -> None:
    march = add(app, email="ada@example.com", valid_from=at(5, 0), valid_until=at(15, 0))
    ada = [person(email="ada@example.com")]
    assert ids(app, ada, MEETING) == {march.id}
    assert ids(app, ada, OTHER) == set()
    # overlapping either edge counts
    assert ids(app, ada, MeetingRef("m", None, at(4, 23), at(5, 1))) == {march.id}
    assert ids(app, ada, MeetingRef("m", None, at(15, 0) - timedelta(minutes=1), at(15, 2))) == {march.id}
    assert ids(app, ada, MeetingRef("m", None, at(3), at(3, 11))) == set()
    # unknown times: fail closed, the range may cover it
    assert ids(app, ada, MeetingRef("m", None, None, None)) == {march.id}
    assert ids(app, ada, MeetingRef("m", None, at(20), None)) == set()
    assert ids(app, ada, MeetingRef("m", None, None, at(20))) == {march.id}


def test_open_ended_ranges(app: AppContext) -> None:
    onwards = add(app, email="ada@example.com", valid_from=at(15))
    until = add(app, email="bob@example.com", valid_until=at(5))
    assert ids(app, [person(email="ada@example.com")], OTHER) == {onwards.id}
    assert ids(app, [person(email="ada@example.com")], MEETING) == set()
    assert ids(app, [person(email="bob@example.com")], MeetingRef("m", None, at(1), at(1, 11))) == {until.id}
    assert ids(app, [person(email="bob@example.com")], MEETING) == set()


def test_purpose(app: AppContext) -> None:
    rec = add(app, email="ada@example.com", covers_transcription=False)
    tra = add(app, email="ada@example.com", covers_recording=False)
    both = add(app, email="ada@example.com")
    ada = [person(email="ada@example.com")]
    assert ids(app, ada, purpose="recording") == {rec.id, both.id}
    assert ids(app, ada, purpose="transcription") == {tra.id, both.id}
    with pytest.raises(InputError, match="purpose"):
        ids(app, ada, purpose="everything")


def test_revoked_never_match(app: AppContext) -> None:
    view = add(app, email="ada@example.com")
    with app.session() as session:
        revoke_optout(app, session, view.id, actor="dpo:eve")
    assert ids(app, [person(email="ada@example.com")]) == set()


def test_many_participants_are_chunked(app: AppContext) -> None:
    target = add(app, email="p1234@example.com")
    crowd = [person(email=f"p{i}@example.com", object_id=f"00000000-0000-0000-0000-{i:012d}")
             for i in range(1300)]
    assert ids(app, crowd) == {target.id}


@DB_EXAMPLES
@given(flips=st.lists(st.booleans(), max_size=40),
       pad=st.sampled_from(["", " ", "\t", "\n ", "  "]), mailto=st.booleans(),
       brackets=st.booleans())
def test_email_variants_always_match(app: AppContext, flips: list[bool], pad: str,
                                     mailto: bool, brackets: bool) -> None:
    ada = once(app, "ada", lambda: add(app, email="Ada.Lovelace@Example.org").id)
    email = "".join(c.swapcase() if f else c for c, f in
                    zip("ada.lovelace@example.org", flips + [False] * 40, strict=False))
    if mailto:
        email = "mailto:" + email
    if brackets:
        email = f"<{email}>"
    found = ids(app, [Participant.make(kind="user", email=pad + email + pad)])
    assert found == {ada}


@DB_EXAMPLES
@given(flips=st.lists(st.booleans(), max_size=300),
       encode=st.sampled_from(["as-is", "decoded", "encoded"]), pad=st.sampled_from(["", " ", "\n"]))
def test_join_link_variants_always_match(app: AppContext, flips: list[bool], encode: str,
                                         pad: str) -> None:
    link_optout = once(app, "link", lambda: add(app, email="ada@example.com", meeting=JOIN_URL).id)
    link = {"as-is": JOIN_URL, "decoded": unquote(JOIN_URL), "encoded": quote(JOIN_URL, safe="")}[encode]
    link = "".join(c.swapcase() if f else c for c, f in zip(link, flips + [False] * len(link),
                                                             strict=False))
    meeting = MeetingRef("graph-id", pad + link + pad, at(10), at(10, 11))
    assert ids(app, [person(email="ada@example.com")], meeting) == {link_optout}


@DB_EXAMPLES
@given(name=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
       .filter(lambda s: s.strip() and s.strip()[0] not in "=+@"))  # formula starts are refused
def test_display_names_never_match(app: AppContext, name: str) -> None:
    add(app, email="ada@example.com", name=name)
    participants = [
        Participant.make(kind=ParticipantKind.USER, display_name=name, email="someone@else.org"),
        Participant.make(kind=ParticipantKind.USER, display_name=name.upper(), object_id=OID),
        Participant.make(kind=ParticipantKind.GUEST, display_name=name),
        Participant.make(kind=ParticipantKind.ANONYMOUS, display_name=name),
        Participant.make(kind=ParticipantKind.USER, display_name="ada@example.com"),
    ]
    assert ids(app, participants) == set()


@DB_EXAMPLES
@given(scope=st.sampled_from(["all", "this meeting", "other meeting", "range"]),
       first_day=st.none() | st.integers(min_value=0, max_value=20),
       days=st.none() | st.integers(min_value=0, max_value=12),
       revoked=st.booleans(), covers=st.sampled_from(["recording", "transcription", "both"]),
       purpose=st.sampled_from(["recording", "transcription"]))
def test_blocks_exactly_when_active_covering_and_in_scope(
        app: AppContext, scope: str, first_day: int | None, days: int | None, revoked: bool,
        covers: str, purpose: str) -> None:
    """Revoked, out-of-scope or not-covering opt-outs never block; the others always do."""
    email = f"p{uuid.uuid4().hex[:12]}@example.com"  # a fresh person per example
    fields: dict[str, Any] = {"email": email, "covers_recording": covers != "transcription",
                                 "covers_transcription": covers != "recording"}
    in_scope = scope in ("all", "this meeting")
    if scope == "this meeting":
        fields["meeting"] = unquote(JOIN_URL)
    elif scope == "other meeting":
        fields["meeting"] = JOIN_URL.replace("NzQ5", "b3RoZ")
    elif scope == "range":
        valid_from = at(1) + timedelta(days=first_day) if first_day is not None else None
        valid_until = ((valid_from or at(1)) + timedelta(days=days)) if days is not None else None
        if valid_from is None and valid_until is None:
            valid_from = at(1)
        fields.update(valid_from=valid_from, valid_until=valid_until)
        assert MEETING.start is not None and MEETING.end is not None
        in_scope = ((valid_from is None or valid_from <= MEETING.end)
                    and (valid_until is None or valid_until >= MEETING.start))
    view = add(app, **fields)
    if revoked:
        with app.session() as session:
            revoke_optout(app, session, view.id, actor="dpo:eve")
    expected = not revoked and covers in (purpose, "both") and in_scope
    found = ids(app, [person(email=email)], MEETING, purpose=purpose)
    assert found == ({view.id} if expected else set())


def test_identity_query_uses_the_blind_index(sqlite_app: AppContext) -> None:
    """Guard against a planner regression: SQLite must search the blind index, not scan."""
    from sqlalchemy.dialects import sqlite

    from meeting_governance.optouts import identity_query

    for column in ("email_blind", "object_id_blind"):
        stmt = identity_query(column, ["a" * 64, "b" * 64]).compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
        with sqlite_app.engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}"))
        assert f"USING INDEX ix_optout_{column}" in plan, plan


_times = st.one_of(st.none(), st.integers(min_value=0, max_value=40).map(lambda d: at(1) + timedelta(days=d)))


@given(valid_from=_times, valid_until=_times, start=_times, end=_times)
def test_range_scope_is_interval_overlap(valid_from: datetime | None, valid_until: datetime | None,
                                         start: datetime | None, end: datetime | None) -> None:
    """`applies` on ranges: overlap of closed intervals, a missing bound being unbounded."""
    from meeting_governance.models import OptOut
    from meeting_governance.optouts import applies

    row = OptOut(id="x", scope="range", valid_from=valid_from, valid_until=valid_until)
    lo_row, hi_row = valid_from or at(1) - timedelta(days=999), valid_until or at(1) + timedelta(days=999)
    lo, hi = start or at(1) - timedelta(days=999), end or at(1) + timedelta(days=999)
    assert applies(row, keys=set(), start=start, end=end, purpose="transcription") == (
        lo_row <= hi and lo <= hi_row)
