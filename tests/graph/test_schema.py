"""Microsoft's schema as the oracle, not our emulator: every property the client reads and every
property the emulator writes exists on its type in the v1.0 schema (`tests/data/graph-spec/`),
for the worldwide service; and the client reads nothing the US Government slice lacks.

Reads are observed, not listed by hand: a client whose JSON objects record each key the code
looks up runs discovery, participants (every kind of invitee and record, a recurring meeting),
the directory and the join-link lookup against the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from meeting_governance.config import GraphSettings
from meeting_governance.graph import GraphClient, discover, group_organizers, resolve_participants
from meeting_governance.graph.directory import lookup
from meeting_governance.graph.meetings import find_meeting
from meeting_governance.graph.transcripts import speaker_timelines

from .emulator_scenario import (
    GROUP,
    JANE,
    LEE,
    LEE_UPN,
    MEETING_EMPTY_REPORT,
    MEETING_FULL,
    MEETING_MANY,
    MEETING_MIXED,
    MEETING_NO_REPORT,
    MEETING_RECURRING,
    MEETING_ROOM,
    OCCURRENCES,
    ODD_MEETING,
    ORG_A,
    ORG_B,
    ORG_C,
    ROOM_LINK,
    WINDOW,
)
from .graph_schema import FAIRFAX, PROD, Schema, check, check_collection

PROD_SCHEMA = Schema.load(PROD)
FAIRFAX_SCHEMA = Schema.load(FAIRFAX)
# What each kind of call answers (the client's `kind` label → the item type of the answer).
COLLECTIONS = {"discovery": "callRecording", "attendance_reports": "meetingAttendanceReport",
               "attendance_records": "attendanceRecord", "directory": "user",
               "meeting_lookup": "onlineMeeting", "group_members": "user",
               "transcripts": "callTranscript"}
ENTITIES = {"meeting": "onlineMeeting"}


class Seen(dict):  # type: ignore[type-arg]
    """A JSON object that records every key the code looks up, with the object's type."""

    def __init__(self, data: Mapping[str, Any], type_name: str, reads: set[tuple[str, str]]):
        super().__init__()
        claimed = data.get("@odata.type")
        actual = (claimed.removeprefix("#microsoft.graph.") if isinstance(claimed, str)
                  else type_name)
        self.type_name, self._reads = actual, reads
        for key, value in data.items():
            inner = None if key.startswith("@odata.") else \
                PROD_SCHEMA.property_type(actual, key)[0]
            super().__setitem__(key, _wrap(value, inner, reads))

    def _note(self, key: object) -> None:
        if isinstance(key, str) and not key.startswith("@odata."):
            self._reads.add((self.type_name, key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


class Envelope(dict):  # type: ignore[type-arg]
    """A collection answer or a batch envelope: `value`/`responses` hold typed items."""


def _wrap(value: Any, type_name: str | None, reads: set[tuple[str, str]]) -> Any:
    if type_name is None:
        return value
    if isinstance(value, list):
        return [_wrap(v, type_name, reads) for v in value]
    if isinstance(value, dict):
        return Seen(value, type_name, reads)
    return value


def _collection(body: dict[str, Any], item: str, reads: set[tuple[str, str]]) -> Envelope:
    out = Envelope(body)
    out["value"] = _wrap(body.get("value"), item, reads)
    return out


class ReadingClient(GraphClient):
    """The real client (msal, requests, the emulator over HTTPS) whose answers record reads."""

    reads: set[tuple[str, str]]

    def get_json(self, url: str, *, kind: str = "other",
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        body = super().get_json(url, kind=kind, headers=headers)
        if kind in COLLECTIONS:
            return _collection(body, COLLECTIONS[kind], self.reads)
        return Seen(body, ENTITIES[kind], self.reads) if kind in ENTITIES else body

    def post_json(self, url: str, payload: Any, *, kind: str = "other") -> dict[str, Any]:
        body = super().post_json(url, payload, kind=kind)
        if kind != "directory":
            return body
        envelope = Envelope(body)
        answers = []
        for item in body.get("responses", []):
            inner = item.get("body") or {}
            typed = inner if "error" in inner else (
                _collection(inner, "user", self.reads) if "value" in inner
                else Seen(inner, "user", self.reads))
            answers.append({**item, "body": typed})
        envelope["responses"] = answers
        return envelope


@pytest.fixture(scope="module")
def reads(emulator_session: Any) -> set[tuple[str, str]]:
    """Everything the client reads while doing all it does against the emulator."""
    client = ReadingClient(GraphSettings(**emulator_session.client_config()), sleep=lambda s: None)
    client.reads = set()
    with client:
        for organizer in (ORG_A, ORG_B):
            discover(client, organizer, delta_link=None, start=WINDOW[0])
        for organizer, meeting in [(ORG_A, MEETING_FULL), (ORG_B, MEETING_MIXED),
                                   (ORG_B, MEETING_NO_REPORT), (ORG_B, MEETING_MANY),
                                   (ORG_A, ODD_MEETING), (ORG_C, MEETING_EMPTY_REPORT),
                                   (ORG_C, MEETING_ROOM)]:
            resolve_participants(client, organizer, meeting, window=WINDOW)
        resolve_participants(client, ORG_C, MEETING_RECURRING, window=OCCURRENCES[1])
        assert speaker_timelines(client, ORG_A, MEETING_FULL, WINDOW)
        lookup(client, object_ids=[JANE, LEE], addresses=["team@contoso.example", LEE_UPN,
                                                          "nobody@contoso.example"])
        group_organizers(client, GROUP)
        assert find_meeting(client, "https://teams.microsoft.com/meet/1234 5678 9012?p=x",
                            [ORG_C]) is not None
        assert find_meeting(client, ROOM_LINK, [ORG_C]) is not None
    return client.reads


def test_every_property_the_client_reads_is_in_the_worldwide_schema(reads):
    missing = sorted(f"{t}.{p}" for t, p in reads if p not in PROD_SCHEMA.properties(t))
    assert missing == []
    # Not vacuous: the reads span every area, rooms and short links included.
    for expected in [("callRecording", "meetingId"), ("onlineMeeting", "joinMeetingIdSettings"),
                     ("joinMeetingIdSettings", "joinMeetingId"),
                     ("communicationsIdentitySet", "applicationInstance"),
                     ("communicationsIdentitySet", "azureCommunicationServicesUser"),
                     ("meetingAttendanceReport", "meetingStartDateTime"),
                     ("attendanceRecord", "emailAddress"), ("user", "proxyAddresses"),
                     ("attendanceRecord", "attendanceIntervals"),
                     ("attendanceInterval", "joinDateTime"), ("callTranscript", "endDateTime"),
                     ("user", "otherMails")]:
        assert expected in reads


def test_the_client_reads_nothing_the_us_government_schema_lacks(reads):
    """No `tenantId` (communicationsUserIdentity does not exist there): the directory decides
    who is a member or a guest, so the same decisions hold in both clouds."""
    assert not any(p == "tenantId" for _, p in reads)

    def in_fairfax(type_name: str, prop: str) -> bool:
        # A type US Government lacks arrives there as its nearest base type that it has.
        current: str | None = type_name
        while current and not FAIRFAX_SCHEMA.exists(current):
            current = PROD_SCHEMA.types.get(current, (None, {}))[0]
        return current is not None and prop in FAIRFAX_SCHEMA.properties(current)

    assert sorted(f"{t}.{p}" for t, p in reads if not in_fairfax(t, p)) == []


def _get(client: GraphClient, path: str, **headers: str) -> dict[str, Any]:
    return client.get_json(client.base_url + path, headers=headers)


def test_every_property_the_emulator_writes_is_in_the_worldwide_schema(emulator, client):
    problems: list[str] = []
    meeting = f"/users/{ORG_C}/onlineMeetings/{MEETING_ROOM.replace('=', '%3D')}"
    check(PROD_SCHEMA, _get(client, meeting), "onlineMeeting", "meeting", problems)
    full = f"/users/{ORG_A}/onlineMeetings/{MEETING_FULL.replace('=', '%3D')}"
    check(PROD_SCHEMA, _get(client, full), "onlineMeeting", "meeting", problems)
    reports = _get(client, full + "/attendanceReports?$expand=attendanceRecords")
    check_collection(PROD_SCHEMA, reports, "meetingAttendanceReport", "reports", problems)
    mixed = f"/users/{ORG_B}/onlineMeetings/{MEETING_MIXED.replace('/', '%2F').replace('=', '%3D')}"
    check(PROD_SCHEMA, _get(client, mixed), "onlineMeeting", "mixed", problems)
    check_collection(PROD_SCHEMA, _get(client, mixed + "/attendanceReports?$expand=attendanceRecords"),
                     "meetingAttendanceReport", "mixed.reports", problems)
    items, _ = client.get_all(discover_url(client), kind="discovery")
    check(PROD_SCHEMA, items, "callRecording", "recordings", problems)
    every = "id,displayName,mail,userPrincipalName,proxyAddresses,otherMails,userType"
    check(PROD_SCHEMA, _get(client, f"/users/{JANE}?$select={every}"), "user", "user", problems)
    search = _get(client, "/users?$filter=otherMails/any(o:o%20eq%20'team@contoso.example')"
                          f"&$select={every}&$count=true", ConsistencyLevel="eventual")
    check_collection(PROD_SCHEMA, search, "user", "users", problems)
    found = _get(client, f"/users/{ORG_C}/onlineMeetings?$filter=joinMeetingIdSettings/"
                         "joinMeetingId%20eq%20'123456789012'")
    check_collection(PROD_SCHEMA, found, "onlineMeeting", "lookup", problems)
    transcripts = _get(client, full + "/transcripts")
    check_collection(PROD_SCHEMA, transcripts, "callTranscript", "transcripts", problems)
    assert transcripts["value"], "the oracle must see a transcript"
    check(PROD_SCHEMA, _get(client, full + "/transcripts/tr-full"), "callTranscript",
          "transcript", problems)
    assert problems == []


def discover_url(client: GraphClient) -> str:
    from meeting_governance.graph.recordings import all_recordings_url

    return all_recordings_url(client, ORG_A, start=WINDOW[0])


def test_the_oracle_catches_what_the_emulator_used_to_write():
    """`acsUser` is not Graph's name (azureCommunicationServicesUser is), `tenantId` is not on
    teamworkUserIdentity, `identityProvider` is on no participant identity."""
    problems: list[str] = []
    check(PROD_SCHEMA, {"participants": {"attendees": [{"identity": {
        "acsUser": {"id": "8:acs:1"},
        "user": {"id": "x", "identityProvider": "AAD"}}}]}}, "onlineMeeting", "m", problems)
    check(PROD_SCHEMA, {"meetingOrganizer": {"user": {
        "@odata.type": "#microsoft.graph.teamworkUserIdentity", "id": "x", "tenantId": "t"}}},
        "callRecording", "r", problems)
    assert sorted(problems) == [
        "m.participants.attendees[0].identity.acsUser: no such property on "
        "communicationsIdentitySet",
        "m.participants.attendees[0].identity.user.identityProvider: no such property on identity",
        "r.meetingOrganizer.user.tenantId: no such property on teamworkUserIdentity"]
