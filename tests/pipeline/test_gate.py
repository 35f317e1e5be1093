"""The gate's one rule, checked over generated meetings: an opt-out always blocks, unknown
always waits then blocks, and only a fully identified meeting with no opt-out is allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.gate import Verdict, decide
from meeting_governance.identity import Participant, ParticipantKind

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

identified = st.builds(
    lambda oid, mail: Participant.make(kind=ParticipantKind.USER, object_id=oid, email=mail),
    st.uuids().map(str), st.emails())
unidentified = st.sampled_from([
    Participant.make(kind=ParticipantKind.ANONYMOUS, display_name="Visitor"),
    Participant.make(kind=ParticipantKind.PHONE, display_name="+4930123456"),
    Participant.make(kind=ParticipantKind.GUEST, display_name="Guest without address"),
    Participant.make(kind=ParticipantKind.UNKNOWN),
])
people = st.lists(st.one_of(identified, unidentified), max_size=12)


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
    fully_known = attendance and participants and all(p.identifiable for p in participants)
    if fully_known:
        assert decision.verdict is Verdict.ALLOW
    elif past_deadline:
        assert decision.verdict is Verdict.BLOCK
        assert decision.reason.startswith("participants unknown")
    else:
        assert decision.verdict is Verdict.WAIT


@given(st.lists(identified, min_size=1, max_size=5), st.lists(unidentified, min_size=1, max_size=3))
def test_allow_anonymous_setting_lets_only_anonymous_and_phone_through(known, unknown):
    decision = decide(participants=known + unknown, attendance_known=True, matched_optout_ids=[],
                      allow_anonymous=True, now=NOW, deadline=NOW + timedelta(hours=1))
    still_unknown = [p for p in unknown
                     if p.kind not in (ParticipantKind.ANONYMOUS, ParticipantKind.PHONE)]
    assert (decision.verdict is Verdict.ALLOW) == (not still_unknown)


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
