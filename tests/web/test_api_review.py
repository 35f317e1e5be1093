"""The API's review step against Microsoft Graph (the emulator): `POST /api/optouts/review`
says whom an address reaches and which meeting a link names, with the warnings the page shows;
`POST /api/optouts` with its `review_token` saves exactly that, without one it asks the
directory itself, and a token that does not fit is refused naming the field."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from meeting_governance import optouts
from meeting_governance.identity import Participant
from mg_emulator import EmulatorServer

from .conftest import Web
from .directory_scenario import (
    LEE,
    LEE_NAME,
    LEE_OWN,
    MARGARET,
    MARGARET_ALIAS,
    MARGARET_NAME,
    MARGARET_PRIMARY,
    ORGANISER_NAME,
    PAST_LINK,
    PLANNING_SHORT,
    SHARED,
    SUBJECT,
)


def _api(web: Web) -> tuple[TestClient, dict[str, str]]:
    client = web.as_role("coordinator")
    return client, {"X-CSRF-Token": web.token(client)}


def _blocked(web: Web, participant: Participant) -> list[str]:
    with web.ctx.session() as db:
        return [v.id for v in optouts.matching(web.ctx, db, [participant],
                                               optouts.MeetingRef("any"))]


def test_review_names_the_person_and_the_meeting(graph_web: Web) -> None:
    client, headers = _api(graph_web)
    answer = client.post("/api/optouts/review", headers=headers,
                         json={"email": MARGARET_ALIAS, "meeting": PLANNING_SHORT})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["person"] == {"checked": True, "kind": "member", "display_name": MARGARET_NAME,
                              "description": "member of this organisation", "identifiers": 4,
                              "problem": None}
    meeting = body["meeting"]
    assert meeting["checked"] and meeting["subject"] == SUBJECT
    assert meeting["start"].startswith("2031-03-14T10:00") and not meeting["past"]
    assert meeting["organiser"].startswith(ORGANISER_NAME)
    assert body["warnings"] == [] and body["overlaps"] == []
    guest = client.post("/api/optouts/review", headers=headers, json={"email": LEE_OWN}).json()
    assert guest["person"]["kind"] == "guest" and guest["person"]["display_name"] == LEE_NAME
    assert guest["person"]["description"] == "guest from northwind.example"
    shared = client.post("/api/optouts/review", headers=headers, json={"email": SHARED}).json()
    assert [w["code"] for w in shared["warnings"]] == ["ambiguous_person"]
    past = client.post("/api/optouts/review", headers=headers,
                       json={"email": MARGARET_PRIMARY, "meeting": PAST_LINK}).json()
    assert past["meeting"]["past"] and "past_meeting" in [w["code"] for w in past["warnings"]]


def test_saving_with_the_review_token_saves_what_was_reviewed(
        graph_web: Web, graph_emulator: EmulatorServer) -> None:
    client, headers = _api(graph_web)
    body = {"email": MARGARET_ALIAS, "name": "Margaret"}
    token = client.post("/api/optouts/review", headers=headers, json=body).json()["review_token"]
    asked = len(graph_emulator.requests.graph_requests())
    saved = client.post("/api/optouts", headers=headers, json={**body, "review_token": token})
    assert saved.status_code == 201, saved.text
    assert len(graph_emulator.requests.graph_requests()) == asked  # not asked again
    assert _blocked(graph_web, Participant.make(kind="user", object_id=MARGARET)) == \
        [saved.json()["id"]]
    duplicate = client.post("/api/optouts/review", headers=headers,
                            json={"email": MARGARET_PRIMARY}).json()
    assert [w["code"] for w in duplicate["warnings"]] == ["duplicate"]
    assert duplicate["overlaps"][0]["optout_id"] == saved.json()["id"]


def test_saving_without_a_token_asks_the_directory_itself(
        graph_web: Web, graph_emulator: EmulatorServer) -> None:
    client, headers = _api(graph_web)
    saved = client.post("/api/optouts", headers=headers, json={"email": LEE_OWN})
    assert saved.status_code == 201
    assert graph_emulator.requests.batched_requests()  # the directory was asked at the save
    assert _blocked(graph_web, Participant.make(kind="guest", object_id=LEE)) == \
        [saved.json()["id"]]


def test_a_token_that_does_not_fit_is_refused_naming_the_field(graph_web: Web) -> None:
    client, headers = _api(graph_web)
    token = client.post("/api/optouts/review", headers=headers,
                        json={"email": MARGARET_ALIAS}).json()["review_token"]
    for body in ({"email": MARGARET_PRIMARY, "review_token": token},
                 {"email": MARGARET_ALIAS, "note": "changed", "review_token": token},
                 {"email": MARGARET_ALIAS, "review_token": "not-a-token"}):
        refused = client.post("/api/optouts", headers=headers, json=body)
        assert refused.status_code == 422
        assert [p["field"] for p in refused.json()["detail"]] == ["review_token"]
    other, other_headers = _api(graph_web)
    refused = other.post("/api/optouts", headers=other_headers,
                         json={"email": MARGARET_ALIAS, "review_token": token})
    assert refused.status_code == 422
    with graph_web.ctx.session() as db:
        assert optouts.list_optouts(graph_web.ctx, db) == []


def test_a_throttled_graph_is_reported_not_checked(graph_web: Web,
                                                   graph_emulator: EmulatorServer) -> None:
    client, headers = _api(graph_web)
    graph_emulator.faults.set(throttle_count=20, throttle_retry_after="10")
    body = client.post("/api/optouts/review", headers=headers,
                       json={"email": MARGARET_ALIAS, "meeting": PLANNING_SHORT}).json()
    assert body["person"]["checked"] is False and body["person"]["display_name"] is None
    assert body["person"]["problem"] == "Microsoft Graph is busy and asked us to wait"
    assert body["meeting"]["checked"] is False and body["meeting"]["subject"] is None
    assert [w["code"] for w in body["warnings"]] == ["person_not_checked", "meeting_not_checked"]
    saved = client.post("/api/optouts", headers=headers,
                        json={"email": MARGARET_ALIAS, "meeting": PLANNING_SHORT,
                              "review_token": body["review_token"]})
    assert saved.status_code == 201  # saving never waits for the directory
