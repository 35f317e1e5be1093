"""Discovery through getAllRecordings(…)/delta: paging, delta rounds, duplicates, odd ids, and
links Graph rejects (expired, reset, another host) that start a new round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from meeting_governance.errors import GraphError
from meeting_governance.graph import discover, group_organizers
from meeting_governance.graph.recordings import all_recordings_url
from mg_emulator import Recording

from .emulator_scenario import (
    GROUP,
    MEETING_FULL,
    ODD_MEETING,
    ODD_RECORDING,
    ORG_A,
    ORG_B,
    WINDOW,
)


def _discover(client, organizer=ORG_A, delta_link=None, start=WINDOW[0]):
    return discover(client, organizer, delta_link=delta_link, start=start)


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
    # Microsoft's documented template: no end, which Graph would freeze into every link.
    assert "endDateTime" not in unquote(first.path) and first.path.endswith(")/delta")
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


def test_start_of_the_window_is_passed_to_graph(client):
    found = _discover(client, start=datetime(2026, 11, 3, tzinfo=UTC))
    assert [r.recording_id for r in found.recordings] == [
        "VjIj-rec-2=", "VjIj-rec-3=", "VjIj-rec-4=", ODD_RECORDING]


def test_naive_datetimes_are_refused(client):
    with pytest.raises(ValueError, match="timezone-aware"):
        discover(client, ORG_A, delta_link=None, start=datetime(2026, 1, 1))


def test_recordings_created_after_the_first_poll_keep_arriving(emulator, client):
    """The day-one freeze: every later round must see recordings newer than the first poll."""
    first = _discover(client, organizer=ORG_B)
    link = first.delta_link
    for day in (1, 2, 30):
        created = datetime.now(UTC) + timedelta(days=day)  # later than anything polled so far
        emulator.add_recording(Recording(id=f"VjIj-later-{day}=", meeting="MSo-many#==",
                                         media="clip.mp4", created=created))
        found = _discover(client, organizer=ORG_B, delta_link=link)
        assert [r.recording_id for r in found.recordings] == [f"VjIj-later-{day}="]
        assert found.restarted is None
        link = found.delta_link


def test_an_end_date_in_the_first_request_would_freeze_the_window(emulator, client):
    """Why the first request has no end: Graph keeps it in the state token of every link
    (the emulator models what Microsoft documents for getAllRecordings delta)."""
    now = datetime.now(UTC)
    frozen = all_recordings_url(client, ORG_B, start=WINDOW[0]).replace(
        ")/delta", f",endDateTime={now:%Y-%m-%dT%H:%M:%SZ})/delta")
    _, link = client.get_all(frozen, kind="discovery")
    emulator.add_recording(Recording(id="VjIj-never=", meeting="MSo-many#==", media="clip.mp4",
                                     created=now + timedelta(hours=1)))
    items, _ = client.get_all(link, kind="discovery")
    assert items == []


@pytest.mark.parametrize("break_it", ["reset", "expire"])
def test_a_link_graph_rejects_starts_a_new_round(emulator, client, break_it):
    first = _discover(client)
    if break_it == "reset":
        emulator.reset_sync_state()  # 410 Gone, as after maintenance of the tenant
    else:
        emulator.expire_delta_tokens_after(0)  # 400 syncStateNotFound
    try:
        emulator.requests.clear()
        again = _discover(client, delta_link=first.delta_link)
    finally:
        emulator.expire_delta_tokens_after(None)
    assert again.restarted and "rejected the stored delta link" in again.restarted
    assert ("410" if break_it == "reset" else "syncStateNotFound") in again.restarted
    assert len(again.recordings) == 5  # the whole window again; rows are idempotent
    assert again.delta_link and again.delta_link != first.delta_link
    statuses = [r.status for r in emulator.requests.graph_requests()]
    assert statuses[0] in (400, 410) and set(statuses[1:]) == {200}


def test_a_link_to_another_host_is_never_followed(emulator, client):
    first = _discover(client)
    elsewhere = first.delta_link.replace(emulator.authority_host, "https://graph.example.net")
    emulator.requests.clear()
    again = _discover(client, delta_link=elsewhere)
    assert again.restarted and "another host" in again.restarted
    assert len(again.recordings) == 5
    first_call = emulator.requests.graph_requests()[0]
    assert first_call.path.startswith(f"/v1.0/users/{ORG_A}/onlineMeetings/getAllRecordings(")
    assert not first_call.query  # a new round, not the stored link replayed here


def test_a_server_error_keeps_the_stored_link(emulator, make_client):
    client = make_client(max_retries=0)
    first = _discover(client)
    emulator.faults.set(unavailable_count=1)
    with pytest.raises(GraphError) as info:
        _discover(client, delta_link=first.delta_link)
    assert info.value.retryable and info.value.status == 503


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
