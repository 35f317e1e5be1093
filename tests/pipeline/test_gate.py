"""The gate's one rule, checked over generated meetings: an opt-out always blocks, unknown
always waits then blocks, and only a meeting whose every participant the directory resolved,
with this recording's settled attendance and no opt-out, is allowed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.gate import Verdict, decide
from meeting_governance.identity import Participant, ParticipantKind

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

identified = st.builds(
    lambda oid, mail: replace(Participant.make(kind=ParticipantKind.USER, object_id=oid,
                                               email=mail), resolved=True),
    st.uuids().map(str), st.emails())
# Has an address or id, but the directory did not name them (unreachable, not found): unknown.
unresolved = st.builds(
    lambda oid, mail: Participant.make(kind=ParticipantKind.USER, object_id=oid, email=mail),
    st.one_of(st.none(), st.uuids().map(str)), st.emails())
unidentified = st.sampled_from([
    Participant.make(kind=ParticipantKind.ANONYMOUS, display_name="Visitor"),
    Participant.make(kind=ParticipantKind.PHONE, display_name="+4930123456"),
    Participant.make(kind=ParticipantKind.GUEST, display_name="Guest without address"),
    Participant.make(kind=ParticipantKind.ROOM, display_name="Board Room"),
    Participant.make(kind=ParticipantKind.UNKNOWN),
])
people = st.lists(st.one_of(identified, unresolved, unidentified), max_size=12)


@given(people, st.booleans(), st.lists(st.uuids().map(str), min_size=1, max_size=3),
       st.booleans(), st.booleans())
def test_any_matching_optout_blocks_whatever_else_is_known(participants, attendance, optouts,
                                                             allow_anon, past_deadline):
    decision = decide(participants=participants, attendance_known=attendance,
                      matched_optout_ids=optouts, allow_anonymous=allow_anon, now=NOW,
                      deadline=NOW - timedelta(hours=1) if past_deadline else NOW + timedelta(hours=1))
    assert decision.verdict is Verdict.BLOCK
    assert decision.reason.startswith("opted out")
    assert set(decision.optout_ids) == set(optouts)


@given(people, st.booleans(), st.booleans())
def test_allowed_only_when_everyone_is_identified_and_attendance_known(participants, attendance,
                                                                         past_deadline):
    decision = decide(participants=participants, attendance_known=attendance,
                      matched_optout_ids=[], allow_anonymous=False, now=NOW,
                      deadline=NOW - timedelta(hours=1) if past_deadline else NOW + timedelta(hours=1))
    fully_known = attendance and participants and all(p.known for p in participants)
    if fully_known:
        assert decision.verdict is Verdict.ALLOW
    elif past_deadline:
        assert decision.verdict is Verdict.BLOCK
        assert decision.reason.startswith("participants unknown")
    else:
        assert decision.verdict is Verdict.WAIT


@given(st.lists(identified, min_size=1, max_size=5),
       st.lists(st.one_of(unidentified, unresolved), min_size=1, max_size=3),
       st.booleans(), st.booleans())
def test_settings_let_only_anonymous_phone_and_rooms_through(known, unknown, anonymous, rooms):
    decision = decide(participants=known + unknown, attendance_known=True, matched_optout_ids=[],
                      allow_anonymous=anonymous, allow_rooms=rooms, now=NOW,
                      deadline=NOW + timedelta(hours=1))
    excused = {ParticipantKind.ANONYMOUS, ParticipantKind.PHONE} if anonymous else set()
    excused |= {ParticipantKind.ROOM} if rooms else set()
    still_unknown = [p for p in unknown if p.kind not in excused]
    assert (decision.verdict is Verdict.ALLOW) == (not still_unknown)


@given(st.lists(unresolved, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_a_participant_the_directory_did_not_resolve_is_never_cleared(missing, anonymous, rooms):
    decision = decide(participants=missing, attendance_known=True, matched_optout_ids=[],
                      allow_anonymous=anonymous, allow_rooms=rooms, now=NOW,
                      deadline=NOW + timedelta(hours=1))
    assert decision.verdict is Verdict.WAIT
    assert "not resolved in the directory" in decision.reason


@given(st.lists(identified, min_size=1, max_size=5), st.integers(min_value=-120, max_value=120))
def test_attendance_is_trusted_only_after_it_settles(known, minutes):
    settles = NOW + timedelta(minutes=minutes)
    decision = decide(participants=known, attendance_known=True, matched_optout_ids=[],
                      allow_anonymous=False, now=NOW, deadline=NOW + timedelta(days=1),
                      attendance_settles_at=settles)
    assert (decision.verdict is Verdict.ALLOW) == (NOW >= settles)
    if decision.verdict is Verdict.WAIT:
        assert "may still change" in decision.reason


def test_attendance_detail_names_why_there_is_no_report_for_this_recording():
    decision = decide(participants=[], attendance_known=False, matched_optout_ids=[],
                      allow_anonymous=False, now=NOW, deadline=NOW + timedelta(hours=1),
                      attendance_detail="no attendance report for this recording's time")
    assert "no attendance report for this recording's time" in decision.reason


def test_graph_error_waits_then_blocks():
    kwargs = dict(participants=[], attendance_known=False, matched_optout_ids=[],
                  allow_anonymous=True, lookup_failed="participants could not be read")
    assert decide(now=NOW, deadline=NOW + timedelta(minutes=1), **kwargs).verdict is Verdict.WAIT
    blocked = decide(now=NOW, deadline=NOW, **kwargs)
    assert blocked.verdict is Verdict.BLOCK
    assert "could not be read" in blocked.reason


def test_empty_participant_list_is_never_allowed():
    decision = decide(participants=[], attendance_known=True, matched_optout_ids=[],
                      allow_anonymous=True, now=NOW, deadline=NOW + timedelta(days=1))
    assert decision.verdict is Verdict.WAIT
