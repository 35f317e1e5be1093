"""Discovery through getAllRecordings(…)/delta: paging, delta rounds, duplicates, odd ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meeting_governance.errors import GraphError
from meeting_governance.graph import discover, group_organizers
from meeting_governance.graph.emulator import Recording

from .emulator_scenario import (
    GROUP,
    MEETING_FULL,
    ODD_MEETING,
    ODD_RECORDING,
    ORG_A,
    ORG_B,
    WINDOW,
)


def _discover(client, organizer=ORG_A, delta_link=None, window=WINDOW):
    return discover(client, organizer, delta_link=delta_link, start=window[0], end=window[1])


def test_first_poll_pages_through_every_next_link_verbatim(emulator, client):
    found = _discover(client)
    assert [r.recording_id for r in found.recordings] == [
        "VjIj-rec-1=", "VjIj-rec-2=", "VjIj-rec-3=", "VjIj-rec-4=", ODD_RECORDING]
    assert found.delta_link and "deltaToken=" in found.delta_link
    calls = emulator.requests.graph_requests()
    assert len(calls) == 3  # 5 recordings, page_size 2
    first, *rest = calls
    assert first.path.startswith(f"/v1.0/users/{ORG_A}/onlineMeetings/getAllRecordings(")
    assert "meetingOrganizerUserId=" in first.path and "startDateTime=" in first.path
    # The server's links use another form; the client followed them as given.
    assert all(r.path.startswith(f"/v1.0/users('{ORG_A}')/") for r in rest)
    assert all(r.query.startswith("skipToken=") for r in rest)
    assert client.calls["discovery"] == 3


def test_refs_carry_meeting_organizer_and_times(client):
    ref = _discover(client).recordings[0]
    assert ref.meeting_id == MEETING_FULL and ref.organizer_id == ORG_A
    assert ref.created == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert ref.end == datetime(2026, 11, 2, 9, 59, tzinfo=UTC)
    assert ref.call_id == "call-1"


def test_second_poll_with_the_delta_link_returns_nothing_new(emulator, client):
    first = _discover(client)
    emulator.requests.clear()
    second = _discover(client, delta_link=first.delta_link)
    assert second.recordings == ()
    assert second.delta_link
    (call,) = emulator.requests.graph_requests()
    assert call.query.startswith("deltaToken=")


def test_a_new_recording_shows_up_exactly_once(emulator, client):
    first = _discover(client, organizer=ORG_B)
    emulator.add_recording(Recording(id="VjIj-late=", meeting="MSo-many#==", media="clip.mp4",
                                     created=datetime(2026, 11, 20, tzinfo=UTC)))
    second = _discover(client, organizer=ORG_B, delta_link=first.delta_link)
    assert [r.recording_id for r in second.recordings] == ["VjIj-late="]
    third = _discover(client, organizer=ORG_B, delta_link=second.delta_link)
    assert third.recordings == ()


def test_duplicates_across_pages_are_removed(emulator, client):
    emulator.faults.set(duplicate_across_pages=True)
    found = _discover(client)
    ids = [r.recording_id for r in found.recordings]
    assert len(ids) == len(set(ids)) == 5


def test_time_window_is_passed_to_graph(client):
    window = (datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC))
    found = _discover(client, window=window)
    assert [r.recording_id for r in found.recordings] == ["VjIj-rec-2=", "VjIj-rec-3="]


def test_naive_datetimes_are_refused(client):
    with pytest.raises(ValueError, match="timezone-aware"):
        discover(client, ORG_A, delta_link=None, start=datetime(2026, 1, 1),
                 end=datetime(2027, 1, 1))


def test_odd_ids_round_trip(client):
    ref = next(r for r in _discover(client).recordings if r.recording_id == ODD_RECORDING)
    assert ref.meeting_id == ODD_MEETING


def test_throttled_page_is_retried_and_nothing_is_lost(emulator, client, sleeps):
    emulator.faults.set(throttle_count=1, throttle_retry_after="1", match=f"users('{ORG_A}')")
    assert len(_discover(client).recordings) == 5
    assert len(sleeps.waits) == 1


def test_a_storm_mid_poll_raises_and_the_old_delta_link_stays_valid(emulator, make_client):
    client = make_client(max_retries=1)
    first = _discover(client)
    emulator.add_recording(Recording(id="VjIj-storm=", meeting=MEETING_FULL, media="clip.mp4",
                                     created=datetime(2026, 11, 21, tzinfo=UTC)))
    emulator.faults.set(unavailable_count=10)
    with pytest.raises(GraphError) as info:
        _discover(client, delta_link=first.delta_link)
    assert info.value.retryable
    emulator.faults.reset()
    again = _discover(client, delta_link=first.delta_link)
    assert [r.recording_id for r in again.recordings] == ["VjIj-storm="]


def test_group_members_are_the_organisers_in_scope(emulator, client):
    assert group_organizers(client, GROUP) == (
        ORG_A, ORG_B, "a0000000-0000-4000-8000-000000000042")
    assert len(emulator.requests.graph_requests()) == 2  # page_size 2


def test_unknown_group_is_a_404(client):
    with pytest.raises(GraphError) as info:
        group_organizers(client, "no-such-group")
    assert info.value.status == 404
