"""The review step against Microsoft Graph (the emulator over loopback HTTPS, msal and requests
unpatched): whom an address reaches — a member by her alias, a guest, nobody, an address three
accounts share — and which meeting a long or short join link names, as a coordinator reads them
before saving; the save matching every identifier shown, without asking again; a directory that
is down, refuses, throttles or is slow gives "could not be checked" and saving still works."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from meeting_governance import optouts
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.models import OptOut
from mg_emulator import EmulatorServer, Meeting

from .browser import free_port
from .conftest import Web, graph_config, review_token_from
from .directory_scenario import (
    JOIN_ID,
    LEE_NAME,
    LEE_OWN,
    MARGARET,
    MARGARET_ALIAS,
    MARGARET_NAME,
    MARGARET_OTHER,
    MARGARET_PRIMARY,
    NOBODY,
    ORGANISER,
    ORGANISER_NAME,
    PAST_LINK,
    PAST_SUBJECT,
    PLANNING_ID,
    PLANNING_LINK,
    PLANNING_SHORT,
    SHARED,
    SUBJECT,
    UNKNOWN_LINK,
)
from .test_review import review_page, text_of

NOT_CHECKED = "could not be checked — the opt-out matches this address until the directory answers"


def save(client: TestClient, review: Any, **fields: str) -> Any:
    """Confirm a review the way its page does (its hidden fields, its token)."""
    data = {name: html.unescape(value) for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', review.text)}
    data.update(step="confirm", **fields)
    return client.post("/optouts", data=data)


def directory_calls(emulator: EmulatorServer) -> int:
    return len(emulator.requests.graph_requests())


def blocks(web: Web, participant: Participant,
           meeting: optouts.MeetingRef | None = None) -> list[str]:
    """Which opt-outs the gate would apply to a meeting with this one participant."""
    with web.ctx.session() as db:
        return [v.id for v in optouts.matching(web.ctx, db, [participant],
                                               meeting or optouts.MeetingRef("any-meeting"))]


def test_an_alias_shows_the_person_and_the_save_matches_every_identifier(
        graph_web: Web, graph_emulator: EmulatorServer) -> None:
    client = graph_web.as_role("coordinator")
    review = review_page(client, email="M.Hamilton@Contoso.example")
    text = text_of(review.text)
    assert review.status_code == 200
    assert f"Person {MARGARET_NAME}" in text and "Member of this organisation" in text
    assert "Every identifier the directory knows for them (4:" in text
    assert f"recognised by e-mail address {MARGARET_ALIAS} — and by every other identifier " \
           "the directory knows (4 in all), never by name" in text
    asked = directory_calls(graph_emulator)
    assert asked >= 1
    saved = save(client, review)
    assert saved.status_code == 303, saved.text
    # The save used the answer the coordinator saw: the directory was not asked again.
    assert directory_calls(graph_emulator) == asked
    optout_id = saved.headers["location"].split("/")[2].split("?")[0]
    # Teams may show her under any identifier: each one is blocked.
    for shown in (Participant.make(kind="user", object_id=MARGARET),
                  Participant.make(kind="user", email=MARGARET_PRIMARY),
                  Participant.make(kind="user", email=MARGARET_OTHER)):
        assert blocks(graph_web, shown) == [optout_id], shown
    with graph_web.ctx.session() as db:
        row = db.get(OptOut, optout_id)
        assert row is not None and row.resolution == "found" and row.resolved_at is not None


def test_a_guest_nobody_and_a_shared_address(graph_web: Web) -> None:
    client = graph_web.as_role("coordinator")
    guest = text_of(review_page(client, email=LEE_OWN).text)
    assert f"Person {LEE_NAME}" in guest and "Guest from northwind.example" in guest
    nobody = text_of(review_page(client, email=NOBODY).text)
    assert "Not found in the directory — matched by this address only" in nobody
    shared = review_page(client, email=SHARED)
    text = text_of(shared.text)
    assert "2 directory accounts use this address — the opt-out covers all of them" in text
    assert "enter that person's Entra object id instead" in text  # in "Before you save"
    by_id = text_of(review_page(client, object_id=MARGARET).text)
    assert f"Person {MARGARET_NAME}" in by_id
    # Saving a shared address blocks every account that has it (more, never less).
    assert save(client, shared).status_code == 303
    with graph_web.ctx.session() as db:
        assert [o.resolution for o in db.exec(select(OptOut)).all()] == ["ambiguous"]


def test_an_opt_out_under_an_alias_is_a_duplicate_of_the_primary_address(
        graph_web: Web) -> None:
    client = graph_web.as_role("coordinator")
    first = save(client, review_page(client, email=MARGARET_ALIAS))
    existing = first.headers["location"].split("/")[2].split("?")[0]
    again = review_page(client, email=MARGARET_PRIMARY)
    assert "This person already has an active opt-out that covers this" in text_of(again.text)
    assert f"/optouts/{existing}" in again.text


def test_a_long_link_names_the_meeting_subject_start_and_organiser(graph_web: Web,
                                                                   graph_emulator) -> None:
    client = graph_web.as_role("coordinator")
    text = text_of(review_page(client, email=MARGARET_PRIMARY, scope="meeting",
                               meeting=PLANNING_LINK).text)
    assert f"Subject {SUBJECT}" in text
    assert "Starts 2031-03-14 10:00 UTC" in text and "Ends 2031-03-14 11:00 UTC" in text
    assert f"Organiser {ORGANISER_NAME} (katherine.johnson@contoso.example)" in text
    assert "Organisation Yours" in text
    assert "already taken place" not in text and "could not be checked" not in text
    lookups = [r for r in graph_emulator.requests.graph_requests()
               if r.path.endswith("/onlineMeetings")]
    assert len(lookups) == 1 and ORGANISER in lookups[0].path and "JoinWebUrl" in lookups[0].query


def test_a_short_link_is_found_among_the_organisers_in_scope(graph_web: Web,
                                                             graph_emulator) -> None:
    text = text_of(review_page(graph_web.as_role("coordinator"), email=MARGARET_PRIMARY,
                               scope="meeting", meeting=PLANNING_SHORT).text)
    assert f"Subject {SUBJECT}" in text and f"Organiser {ORGANISER_NAME}" in text
    lookup = next(r for r in graph_emulator.requests.graph_requests()
                  if r.path.endswith("/onlineMeetings"))
    assert "joinMeetingIdSettings%2FjoinMeetingId" in lookup.query and JOIN_ID in lookup.query


def test_the_same_meeting_by_its_other_link_is_a_duplicate(graph_web: Web) -> None:
    client = graph_web.as_role("coordinator")
    first = save(client, review_page(client, email=MARGARET_PRIMARY, scope="meeting",
                                     meeting=PLANNING_LINK))
    existing = first.headers["location"].split("/")[2].split("?")[0]
    again = review_page(client, email=MARGARET_OTHER, scope="meeting", meeting=PLANNING_SHORT)
    assert "This person already has an active opt-out that covers this" in text_of(again.text)
    assert f"/optouts/{existing}" in again.text
    # Either link blocks the meeting as Graph describes it.
    meeting = optouts.MeetingRef(PLANNING_ID, PLANNING_LINK, join_meeting_id=JOIN_ID)
    with graph_web.ctx.session() as db:
        found = optouts.matching(graph_web.ctx, db, [Participant.make(
            kind=ParticipantKind.USER, object_id=MARGARET)], meeting)
    assert [v.id for v in found] == [existing]


def test_a_past_meeting_and_an_unknown_link_are_said_so(graph_web: Web) -> None:
    client = graph_web.as_role("coordinator")
    past = text_of(review_page(client, email=MARGARET_PRIMARY, scope="meeting",
                               meeting=PAST_LINK).text)
    assert f"Subject {PAST_SUBJECT}" in past
    assert "This meeting started 2024-01-10 15:00 UTC, according to Microsoft Graph: it has " \
           "already taken place" in past
    unknown = text_of(review_page(client, email=MARGARET_PRIMARY, scope="meeting",
                                  meeting=UNKNOWN_LINK).text)
    assert "Microsoft Graph does not know this meeting (no organiser in scope has it)" in unknown
    assert "Compare the link with the invitation" in unknown


def test_another_organisations_link_is_not_looked_up(graph_web: Web, graph_emulator) -> None:
    foreign = PLANNING_LINK.replace("0c1d2e3f", "9f8e7d6c")
    text = text_of(review_page(graph_web.as_role("coordinator"), email=MARGARET_PRIMARY,
                               scope="meeting", meeting=foreign).text)
    assert "This link belongs to another organisation's Teams" in text
    assert "whose meetings this server cannot see" in text
    assert not [r for r in graph_emulator.requests.graph_requests()
                if "onlineMeetings" in r.path]


def test_a_directory_that_refuses_or_throttles_could_not_be_checked_and_saving_works(
        graph_web: Web, graph_emulator: EmulatorServer) -> None:
    client = graph_web.as_role("coordinator")
    graph_emulator.faults.set(forbidden_count=10)
    refused = review_page(client, email=MARGARET_ALIAS)
    text = text_of(refused.text)
    assert "Microsoft Graph refused to answer (a permission or the Teams application access " \
           "policy is missing), so whom this address reaches " + NOT_CHECKED in text
    assert MARGARET_NAME not in text
    graph_emulator.faults.reset()
    graph_emulator.faults.set(throttle_count=10, throttle_retry_after="30")
    throttled = review_page(client, email=MARGARET_ALIAS, scope="meeting", meeting=PLANNING_LINK)
    text = text_of(throttled.text)
    assert "Microsoft Graph is busy and asked us to wait, so whom this address reaches " \
           + NOT_CHECKED in text
    assert "the meeting's subject, date and organiser could not be checked" in text
    assert SUBJECT not in text
    saved = save(client, throttled)
    assert saved.status_code == 303
    optout_id = saved.headers["location"].split("/")[2].split("?")[0]
    with graph_web.ctx.session() as db:
        row = db.get(OptOut, optout_id)
        assert row is not None and row.resolution == "pending" and row.resolved_at is None
    # Until then it matches the address given.
    assert blocks(graph_web, Participant.make(kind="user", email=MARGARET_ALIAS),
                  optouts.MeetingRef(PLANNING_ID, PLANNING_LINK)) == [optout_id]


def test_a_slow_graph_does_not_hold_the_page(make_web: Callable[..., Web],
                                             graph_emulator: EmulatorServer) -> None:
    # Each Graph request answers 1.5 s late; the meeting needs two (the meeting, then its
    # organiser's name): past the page's 2.5 s, though no single read is over the timeout.
    web = make_web(graph=graph_config(graph_emulator), web={"graph_timeout_s": 2.5})
    graph_emulator.faults.set(delay_s=1.5)
    page = review_page(web.as_role("coordinator"), email=MARGARET_PRIMARY, scope="meeting",
                       meeting=PLANNING_LINK)
    text = text_of(page.text)
    assert page.status_code == 200
    assert "Microsoft Graph did not answer within 2.5 seconds, so the meeting's subject, date " \
           "and organiser could not be checked" in text
    assert SUBJECT not in text


def test_an_unreachable_graph_could_not_be_checked(make_web: Callable[..., Web],
                                                   graph_emulator: EmulatorServer) -> None:
    closed = f"https://127.0.0.1:{free_port()}"
    web = make_web(graph=graph_config(graph_emulator, authority_host=closed,
                                      base_url=f"{closed}/v1.0"))
    text = text_of(review_page(web.as_role("coordinator"), email=MARGARET_PRIMARY,
                               scope="meeting", meeting=PLANNING_SHORT).text)
    assert "Microsoft Graph could not be reached, so whom this address reaches " \
           + NOT_CHECKED in text
    assert "Microsoft Graph could not be reached, so the meeting's subject" in text


def test_without_a_graph_credential_nothing_is_asked(web: Web) -> None:
    text = text_of(review_page(web.as_role("coordinator"), email=MARGARET_PRIMARY).text)
    assert "This server is not connected to Microsoft Graph, so whom this address reaches " \
           + NOT_CHECKED in text


def test_a_save_needs_the_review_of_exactly_these_details(graph_web: Web,
                                                          graph_emulator) -> None:
    client = graph_web.as_role("coordinator")
    review = review_page(client, email=MARGARET_ALIAS)
    # Another session's review, a changed detail, a forged token: the review is shown again.
    other = graph_web.as_role("coordinator")
    for attempt in (save(other, review, csrf_token=graph_web.token(other)),
                    save(client, review, email=NOBODY),
                    save(client, review, note="added after the review"),
                    save(client, review, review_token=review_token_from(review.text)[:-4] + "AAAA")):
        assert attempt.status_code == 409, attempt.text[:200]
        assert "Nothing was saved yet. Check it again" in text_of(attempt.text)
    # Without any token (a hand-made POST) the review is shown, not saved.
    bare = save(client, review, review_token="")
    assert bare.status_code == 200 and "Check the opt-out before saving" in bare.text
    with graph_web.ctx.session() as db:
        assert optouts.list_optouts(graph_web.ctx, db) == []
    assert save(client, review).status_code == 303


def test_one_graph_client_and_one_sign_in_serve_every_page(graph_web: Web,
                                                           graph_emulator: EmulatorServer) -> None:
    coordinator = graph_web.as_role("coordinator")
    for email in (MARGARET_ALIAS, NOBODY, SHARED):
        review_page(coordinator, email=email, scope="meeting", meeting=PLANNING_SHORT)
    dpo = graph_web.as_role("dpo")
    dpo.post("/dpo/person", data={"csrf_token": graph_web.token(dpo), "who": MARGARET_ALIAS})
    assert len(graph_emulator.requests.batched_requests()) >= 4
    assert len(graph_emulator.requests.openid_requests()) == 1
    assert len(graph_emulator.requests.token_requests()) == 1


def test_a_graph_meeting_id_is_looked_up_under_the_organiser_it_encodes(
        graph_web: Web, graph_emulator: EmulatorServer) -> None:
    meeting_id = base64.b64encode(
        f"1*{ORGANISER}*0**19:meeting_QnlJZA@thread.v2".encode()).decode()
    graph_emulator.add_meeting(Meeting(id=meeting_id, organizer=ORGANISER, subject="Board (by id)",
                                       start=datetime(2031, 5, 2, 8, tzinfo=UTC)))
    text = text_of(review_page(graph_web.as_role("coordinator"), email=MARGARET_PRIMARY,
                               scope="meeting", meeting=meeting_id).text)
    assert "Subject Board (by id)" in text and "Starts 2031-05-02 08:00 UTC" in text
    assert f"Organiser {ORGANISER_NAME}" in text
