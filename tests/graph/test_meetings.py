"""Which meeting a Teams link names (for the coordinator to check, never stored in clear), and
short `…/meet/<id>?p=…` links matching their meeting through `joinMeetingIdSettings`."""

from __future__ import annotations

import pytest

from meeting_governance.errors import InputError
from meeting_governance.graph import resolve_participants
from meeting_governance.graph.meetings import find_meeting
from meeting_governance.optouts import MeetingRef, OptOutRequest, add_optout, matching

from .emulator_scenario import JANE, MEETING_ROOM, ORG_A, ORG_B, ORG_C, ROOM_LINK

SHORT = "https://teams.microsoft.com/meet/1234 5678 9012?p=Xy7Pq3"


def test_a_short_link_is_found_among_the_organisers_in_scope(emulator, client):
    found = find_meeting(client, SHORT, [ORG_A, ORG_B, ORG_C])
    assert found is not None and found.meeting_id == MEETING_ROOM
    assert found.organizer_id == ORG_C and found.subject == "Room"
    assert "“Room” on 2026-11-02 09:00 UTC" in found.describe()
    lookups = [r for r in emulator.requests.graph_requests() if r.path.endswith("/onlineMeetings")]
    assert len(lookups) == 3 and "joinMeetingIdSettings%2FjoinMeetingId" in lookups[-1].query


def test_a_long_link_asks_the_organiser_it_names_first(emulator, client):
    found = find_meeting(client, ROOM_LINK, [ORG_A, ORG_B])
    assert found is not None and found.meeting_id == MEETING_ROOM
    first = next(r for r in emulator.requests.graph_requests() if r.path.endswith("/onlineMeetings"))
    assert ORG_C in first.path and "JoinWebUrl" in first.query


def test_an_unknown_link_is_none_and_a_non_link_is_refused(client):
    assert find_meeting(client, "https://teams.microsoft.com/meet/999?p=1", [ORG_C]) is None
    with pytest.raises(InputError):
        find_meeting(client, "not a link at all", [ORG_C])


def test_an_opt_out_by_short_link_blocks_the_meeting_it_names(app, client):
    with app.session() as session:
        view = add_optout(app, session, OptOutRequest(object_id=JANE, meeting=SHORT),
                          actor="coordinator")
    info = resolve_participants(client, ORG_C, MEETING_ROOM)
    ref = MeetingRef(MEETING_ROOM, info.join_url, info.start, info.end, info.join_meeting_id)
    with app.session() as session:
        from meeting_governance.identity import Participant, ParticipantKind

        jane = [Participant.make(kind=ParticipantKind.USER, object_id=JANE)]
        assert [o.id for o in matching(app, session, jane, ref)] == [view.id]
        without = MeetingRef(MEETING_ROOM, info.join_url, info.start, info.end)
        assert matching(app, session, jane, without) == []
