"""The Graph half of the emulator: routes and JSON shapes as in Microsoft's API reference.

Pure functions of (state, path, query) → (status, JSON); the server does the transport,
faults and downloads. Paths arrive percent-encoded and are split *before* decoding, so an
id holding `%2F` stays one segment. Every property written exists on its type in Microsoft's
v1.0 schema (`tests/graph/test_schema.py` checks it against `tests/data/graph-spec/`).

Delta windows behave as documented for `getAllRecordings(…)/delta`: the initial request's
parameters (`startDateTime`, and `endDateTime` if given, which then freezes the window) are
encoded into every link's state token; a sync reset answers 410 Gone, an expired token 400
`syncStateNotFound`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from mg_emulator.directory_api import Directory, DirectoryError, directory_key
from mg_emulator.scenario import (
    AttendanceRecord,
    AttendanceReport,
    Attendee,
    CallTranscript,
    Meeting,
    Person,
    Recording,
    Scenario,
)

_USERS_FN = re.compile(r"^users\((.*)\)$")
_FN_CALL = re.compile(r"^getAllRecordings\((.*)\)$")
_FN_ARG = re.compile(r"(\w+)=('(?:[^']|'')*'|[^,]*)")
_MEETING_FILTER = re.compile(
    r"^(joinweburl|joinmeetingidsettings/joinmeetingid)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_TYPE = "#microsoft.graph."


class ApiError(Exception):
    """A Graph error answer: status, code and message go into Graph's error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if value else None


def _literal(raw: str) -> str:
    """Decode one OData literal (`'a''b'` or a bare value) from the raw path."""
    text = unquote(raw)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _parse_dt(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "BadRequest", "Invalid date-time in function parameters.") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _encode_state(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_state(token: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise ApiError(400, "BadRequest", "The skip or delta token is invalid.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "BadRequest", "The skip or delta token is invalid.")
    return value


@dataclass(frozen=True, slots=True)
class Route:
    organizer: str
    rest: tuple[str, ...]  # raw (still encoded) segments after the user


def parse_route(raw_path: str) -> Route:
    """`/v1.0/users/{id}/…` or `/v1.0/users('{id}')/…` → organizer id and the raw rest."""
    segments = raw_path.split("/")[2:]  # drop "" and "v1.0"
    if not segments:
        raise ApiError(400, "BadRequest", "Resource not found for the segment ''.")
    head = segments[0]
    match = _USERS_FN.match(head)
    if match:
        return Route(_literal(match.group(1)), tuple(segments[1:]))
    if head == "users" and len(segments) >= 2:
        return Route(unquote(segments[1]), tuple(segments[2:]))
    raise ApiError(400, "BadRequest", f"Resource not found for the segment '{unquote(head)}'.")


class GraphState:
    """Scenario data plus recordings added at runtime, each with an increasing sequence.

    `reset_sync_state()` makes every delta and skip token issued so far answer 410 Gone (what
    Graph does after internal maintenance); `delta_token_ttl_s` makes older tokens expire.
    """

    def __init__(self, scenario: Scenario, base_url: str) -> None:
        self.scenario = scenario
        self.base_url = base_url
        self._lock = threading.Lock()
        self._recordings: list[tuple[int, Recording]] = [
            (i + 1, r) for i, r in enumerate(scenario.recordings)
        ]
        self.extra_meetings: dict[str, Meeting] = {}
        self.sync_generation = 1
        self.delta_token_ttl_s: float | None = None
        self._people: tuple[Person, ...] | None = None  # the directory, once changed at runtime

    def reset_directory(self) -> None:
        with self._lock:
            self._people = None

    def set_person(self, person: Person | None, *, remove: str | None = None) -> None:
        """Add or replace a user (by id), or remove one: people gain and lose addresses."""
        with self._lock:
            people = [p for p in (self._people if self._people is not None
                                  else self.scenario.directory())
                      if p.id not in ({person.id} if person else set()) | {remove}]
            self._people = tuple(people + ([person] if person else []))

    def reset_sync_state(self) -> None:
        with self._lock:
            self.sync_generation += 1

    @property
    def directory(self) -> Directory:
        with self._lock:
            people = self._people if self._people is not None else self.scenario.directory()
        return Directory(people, self.base_url, self.scenario.page_size)

    def add_recording(self, recording: Recording) -> None:
        with self._lock:
            seq = self._recordings[-1][0] + 1 if self._recordings else 1
            self._recordings.append((seq, recording))

    def add_meeting(self, meeting: Meeting) -> None:
        with self._lock:
            self.extra_meetings[meeting.id] = meeting

    def recordings(self) -> list[tuple[int, Recording]]:
        with self._lock:
            return list(self._recordings)

    def meeting(self, meeting_id: str) -> Meeting | None:
        with self._lock:
            extra = self.extra_meetings.get(meeting_id)
        return extra or self.scenario.meeting(meeting_id)

    def recording(self, meeting_id: str, recording_id: str) -> Recording | None:
        return next((r for _, r in self.recordings()
                     if r.id == recording_id and r.meeting == meeting_id), None)

    # -- JSON shapes -------------------------------------------------------------------------
    def _user_identity(self, user_id: str, display_name: str | None = None,
                       tenant: str | None = None) -> dict[str, Any]:
        """A participant's user identity: `tenantId` lives on communicationsUserIdentity."""
        return {"@odata.type": f"{_TYPE}communicationsUserIdentity", "id": user_id or None,
                "displayName": display_name, "tenantId": tenant or self.scenario.tenant_id}

    def recording_json(self, organizer: str, rec: Recording) -> dict[str, Any]:
        content = (f"{self.base_url}/users/{quote(organizer, safe='')}/onlineMeetings/"
                   f"{quote(rec.meeting, safe='')}/recordings/{quote(rec.id, safe='')}/content")
        return {
            "@odata.type": "#microsoft.graph.callRecording",
            "id": rec.id,
            "meetingId": rec.meeting,
            "callId": rec.call_id or None,
            "contentCorrelationId": hashlib.sha256(rec.id.encode()).hexdigest()[:32],
            "createdDateTime": iso(rec.created),
            "endDateTime": iso(rec.end),
            "recordingContentUrl": content,
            "meetingOrganizer": {
                "application": None, "device": None,
                "user": {"@odata.type": f"{_TYPE}teamworkUserIdentity", "id": organizer,
                         "displayName": None, "userIdentityType": "aadUser"},
            },
        }

    def _attendee_json(self, a: Attendee) -> dict[str, Any]:
        identity: dict[str, Any] = {"@odata.type": f"{_TYPE}communicationsIdentitySet",
                                    "application": None, "device": None, "user": None}
        plain = {"id": a.object_id or None, "displayName": a.display_name or None}
        member = {"guest": "guest", "anonymous": "guest", "phone": "phone",
                  "acs": "azureCommunicationServicesUser", "room": "applicationInstance",
                  "application": "application"}.get(a.kind)
        if member:
            identity[member] = plain
        else:
            identity["user"] = self._user_identity(a.object_id, a.display_name, a.tenant_id)
        return {"upn": a.upn or None, "role": a.role, "identity": identity}

    def meeting_json(self, m: Meeting) -> dict[str, Any]:
        org = self.scenario.organizer(m.organizer)
        organizer = {
            "upn": org.upn if org else None, "role": "presenter",
            "identity": {"@odata.type": f"{_TYPE}communicationsIdentitySet",
                         "application": None, "device": None,
                         "user": self._user_identity(m.organizer,
                                                     org.display_name if org else None)},
        }
        join_settings = ({"joinMeetingId": m.join_meeting_id, "isPasscodeRequired": True,
                          "passcode": None} if m.join_meeting_id else None)
        return {
            "@odata.context": f"{self.base_url}/$metadata#users('{m.organizer}')/onlineMeetings"
                              "/$entity",
            "id": m.id,
            "creationDateTime": iso(m.start),
            "startDateTime": iso(m.start),
            "endDateTime": iso(m.end),
            "joinWebUrl": m.join_url or None,
            "joinMeetingIdSettings": join_settings,
            "subject": m.subject or None,
            "participants": {"organizer": organizer,
                             "attendees": [self._attendee_json(a) for a in m.attendees]},
        }

    def record_json(self, m: Meeting, r: AttendanceRecord,
                    report: AttendanceReport | None = None) -> dict[str, Any]:
        start = (report.start if report else None) or m.start or datetime.now(UTC)
        identity: dict[str, Any] = {"id": r.identity_id or None,
                                    "displayName": r.display_name or None}
        if r.tenant_id:  # a Teams user: communicationsUserIdentity carries the tenant
            identity = {"@odata.type": f"{_TYPE}communicationsUserIdentity", **identity,
                        "tenantId": r.tenant_id}
        spans = r.intervals or ((0.0, float(r.seconds)),)
        intervals = [{
            "joinDateTime": iso(datetime.fromtimestamp(start.timestamp() + join, UTC)),
            "leaveDateTime": iso(datetime.fromtimestamp(start.timestamp() + left, UTC)),
            "durationInSeconds": round(left - join),
        } for join, left in spans]
        return {
            "id": r.id,
            "emailAddress": r.email or None,
            "totalAttendanceInSeconds": (sum(round(b - a) for a, b in r.intervals)
                                         if r.intervals else r.seconds),
            "role": r.role,
            "identity": identity,
            "attendanceIntervals": intervals,
        }

    def transcript_json(self, organizer: str, m: Meeting, t: CallTranscript) -> dict[str, Any]:
        """A `callTranscript` as Graph v1.0 returns it (List/Get transcripts)."""
        base = (f"{self.base_url}/users/{organizer}/onlineMeetings/{quote(m.id, safe='')}"
                f"/transcripts/{quote(t.id, safe='')}")
        return {
            "id": t.id, "meetingId": m.id, "callId": None, "contentCorrelationId": None,
            "createdDateTime": iso(t.created or m.start),
            "endDateTime": iso(t.end or m.end),
            "transcriptContentUrl": f"{base}/content",
            "meetingOrganizer": {"application": None, "device": None,
                                 "user": {"id": organizer, "displayName": None}},
        }

    def transcript_metadata(self, meeting_id: str, transcript_id: str) -> str | None:
        """`metadataContent`: WebVTT whose cue payloads are JSON objects (start and end as
        date-times, speakerName, spokenText, spokenLanguage), as Microsoft documents it."""
        meeting = self.meeting(meeting_id)
        t = next((x for x in meeting.transcripts if x.id == transcript_id), None) \
            if meeting else None
        if meeting is None or t is None:
            return None
        origin = (t.created or meeting.start or datetime.now(UTC)).timestamp()
        lines = ["WEBVTT", ""]
        for cue in t.cues:
            start = datetime.fromtimestamp(origin + cue.start, UTC)
            end = datetime.fromtimestamp(origin + cue.end, UTC)
            lines += [f"{_vtt_clock(cue.start)} --> {_vtt_clock(cue.end)}",
                      json.dumps({"startDateTime": start.isoformat(),
                                  "endDateTime": end.isoformat(),
                                  "speakerName": cue.speaker, "spokenText": cue.text,
                                  "spokenLanguage": cue.language}), ""]
        return "\n".join(lines)

    # -- routes ------------------------------------------------------------------------------
    def handle(self, raw_path: str, raw_query: str, *, attendance_missing: bool = False,
               duplicate_across_pages: bool = False,
               headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Answer one GET on a JSON resource; raises ApiError for Graph-style errors."""
        query = {k.lstrip("$").lower(): v for k, v in parse_qsl(raw_query)}
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        segments = raw_path.split("/")[2:]
        if segments and segments[0] == "groups":
            return self._group_members(segments[1:], query)
        try:
            if segments == ["users"]:
                return self.directory.search(query, lowered)
            if len(segments) == 2 and segments[0] == "users":
                return self.directory.get(directory_key(segments[1]), query)
            if len(segments) == 1 and _USERS_FN.match(segments[0]):
                return self.directory.get(parse_route(raw_path).organizer, query)
        except DirectoryError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        route = parse_route(raw_path)
        rest = route.rest
        if self.scenario.organizer(route.organizer) is None:
            raise ApiError(404, "NotFound", "The user was not found or has no online meetings.")
        if rest == ("onlineMeetings",):
            return self._find_meetings(route.organizer, query)
        if len(rest) >= 2 and rest[0] == "onlineMeetings" and _FN_CALL.match(rest[1]):
            delta = rest[2:] == ("delta",)
            if rest[2:] not in ((), ("delta",)):
                raise ApiError(400, "BadRequest", "Resource not found for the segment.")
            return self._recordings_page(route.organizer, rest[1], query, delta=delta,
                                         duplicate=duplicate_across_pages)
        if len(rest) < 2 or rest[0] != "onlineMeetings":
            raise ApiError(400, "BadRequest", "Resource not found for the segment.")
        meeting = self.meeting(unquote(rest[1]))
        if meeting is None or meeting.organizer != route.organizer:
            raise ApiError(404, "NotFound", "The online meeting was not found.")
        tail = rest[2:]
        if tail == ():
            return self.meeting_json(meeting)
        if tail[0] == "attendanceReports":
            reports = () if attendance_missing else meeting.attendance_reports
            return self._attendance(route.organizer, meeting, reports, tail[1:], query)
        if tail[0] == "transcripts":
            if len(tail) == 1:
                return {"@odata.context": f"{self.base_url}/$metadata#users('{route.organizer}')"
                                          f"/onlineMeetings('{meeting.id}')/transcripts",
                        "value": [self.transcript_json(route.organizer, meeting, t)
                                  for t in meeting.transcripts]}
            found = next((t for t in meeting.transcripts if t.id == unquote(tail[1])), None)
            if found is None or len(tail) > 2:
                raise ApiError(404, "NotFound", "The transcript was not found.")
            return self.transcript_json(route.organizer, meeting, found)
        if tail[0] == "recordings":
            recs = [r for _, r in self.recordings() if r.meeting == meeting.id]
            if len(tail) == 1:
                return {"value": [self.recording_json(route.organizer, r) for r in recs]}
            rec = next((r for r in recs if r.id == unquote(tail[1])), None)
            if rec is None or len(tail) > 2:
                raise ApiError(404, "NotFound", "The recording was not found.")
            return self.recording_json(route.organizer, rec)
        raise ApiError(400, "BadRequest", "Resource not found for the segment.")

    def _find_meetings(self, organizer: str, query: dict[str, str]) -> dict[str, Any]:
        """`onlineMeetings?$filter=JoinWebUrl eq '…'` or `joinMeetingIdSettings/joinMeetingId
        eq '…'`: a collection holding the one meeting, or none."""
        found = _MEETING_FILTER.match(query.get("filter", "").strip())
        if not found:
            raise ApiError(400, "BadRequest", "Filter is required: JoinWebUrl or "
                           "joinMeetingIdSettings/joinMeetingId.")
        field, value = found.group(1).lower(), found.group(2).replace("''", "'")
        meetings = [m for m in (*self.scenario.meetings, *self.extra_meetings.values())
                    if m.organizer == organizer and (
                        (field == "joinweburl" and m.join_url and m.join_url == value)
                        or (field != "joinweburl" and m.join_meeting_id
                            and m.join_meeting_id == value.replace(" ", "")))]
        return {"@odata.context": f"{self.base_url}/$metadata#users('{organizer}')/onlineMeetings",
                "value": [self.meeting_json(m) for m in meetings[:1]]}

    def _group_members(self, rest: list[str], query: dict[str, str]) -> dict[str, Any]:
        """`/groups/{id}/members` or `/transitiveMembers`, optionally cast to users only."""
        if len(rest) < 2 or rest[1] not in ("members", "transitiveMembers") or rest[2:] not in (
                [], ["microsoft.graph.user"]):
            raise ApiError(400, "BadRequest", "Resource not found for the segment.")
        group = next((g for g in self.scenario.groups if g.id == unquote(rest[0])), None)
        if group is None:
            raise ApiError(404, "Request_ResourceNotFound", "The group does not exist.")
        offset = int(query.get("skiptoken", "0") or 0)
        size = self.scenario.page_size
        page = group.members[offset:offset + size]
        body: dict[str, Any] = {"value": [{"@odata.type": "#microsoft.graph.user", "id": member}
                                          for member in page]}
        if offset + size < len(group.members):
            body["@odata.nextLink"] = (f"{self.base_url}/groups/{quote(group.id, safe='')}/"
                                       f"{'/'.join(rest[1:])}?$skiptoken={offset + size}")
        return body

    def _attendance(self, organizer: str, meeting: Meeting, reports: Any,
                    tail: tuple[str, ...], query: dict[str, str]) -> dict[str, Any]:
        def report_json(rep: AttendanceReport, expand: bool) -> dict[str, Any]:
            body: dict[str, Any] = {
                "id": rep.id, "totalParticipantCount": len(rep.records),
                "meetingStartDateTime": iso(rep.start or meeting.start),
                "meetingEndDateTime": iso(rep.end or meeting.end)}
            if expand:
                body["attendanceRecords"] = [self.record_json(meeting, r, rep)
                                             for r in rep.records]
            return body

        expand = query.get("expand", "") == "attendanceRecords"
        if not tail:
            return {"value": [report_json(r, expand) for r in reports]}
        report = next((r for r in reports if r.id == unquote(tail[0])), None)
        if report is None:
            raise ApiError(404, "NotFound", "The attendance report was not found.")
        if len(tail) == 1:
            return report_json(report, expand)
        if tail[1:] != ("attendanceRecords",):
            raise ApiError(400, "BadRequest", "Resource not found for the segment.")
        offset = int(query.get("skiptoken", "0") or 0)
        size = self.scenario.page_size
        page = report.records[offset:offset + size]
        body: dict[str, Any] = {"value": [self.record_json(meeting, r, report) for r in page]}
        if offset + size < len(report.records):
            body["@odata.nextLink"] = (
                f"{self.base_url}/users('{quote(organizer, safe='')}')/onlineMeetings/"
                f"{quote(meeting.id, safe='')}/attendanceReports/{quote(report.id, safe='')}"
                f"/attendanceRecords?$skiptoken={offset + size}")
        return body

    def _recordings_page(self, organizer: str, fn_segment: str, query: dict[str, str], *,
                         delta: bool, duplicate: bool) -> dict[str, Any]:
        fn = _FN_CALL.match(fn_segment)
        args = {k: _literal(v) for k, v in _FN_ARG.findall(fn.group(1) if fn else "")}
        if not args.get("meetingOrganizerUserId"):
            raise ApiError(400, "BadRequest",
                           "meetingOrganizerUserId is required for getAllRecordings.")
        if args["meetingOrganizerUserId"] != organizer:
            raise ApiError(403, "Forbidden", "The organizer in the path and the filter differ.")
        token = query.get("skiptoken") or query.get("deltatoken")
        if token:
            state = _decode_state(token)
            if state.get("o") != organizer:
                raise ApiError(400, "BadRequest", "The token belongs to another user.")
            if state.get("g") != self.sync_generation:
                raise ApiError(410, "resyncRequired", "The sync state is no longer valid; "
                               "start a new round of synchronization.")
            ttl = self.delta_token_ttl_s
            if (ttl is not None and query.get("deltatoken")
                    and time.time() - float(state.get("t", 0)) > ttl):
                raise ApiError(400, "syncStateNotFound", "The sync state generation is not "
                               "found. The delta token is expired and data must be "
                               "synchronized again.")
        else:
            all_seqs = [s for s, _ in self.recordings()]
            state = {"o": organizer, "s": args.get("startDateTime"),
                     "e": args.get("endDateTime"), "after": 0,
                     "upto": max(all_seqs, default=0), "off": 0,
                     "g": self.sync_generation, "t": time.time()}
        if "upto" not in state:  # a delta token: a new round over what arrived since
            state = {**state, "upto": max((s for s, _ in self.recordings()), default=0), "off": 0}
        start, end = _parse_dt(state.get("s")), _parse_dt(state.get("e"))
        items = [r for seq, r in self.recordings()
                 if state["after"] < seq <= state["upto"]
                 and (m := self.meeting(r.meeting)) is not None and m.organizer == organizer
                 and (start is None or (r.created or m.start or start) >= start)
                 and (end is None or (r.created or m.start or end) <= end)]
        size = int(query.get("top", self.scenario.page_size) or self.scenario.page_size)
        off = int(state.get("off", 0))
        page = items[off:off + size]
        if duplicate and off > 0:
            page = [items[off - 1], *page]  # delta may hand back what it already sent
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/$metadata#Collection(callRecording)",
            "value": [self.recording_json(organizer, r) for r in page],
        }
        link = (f"{self.base_url}/users('{quote(organizer, safe='')}')/onlineMeetings/"
                f"getAllRecordings(meetingOrganizerUserId='{quote(organizer, safe='')}')"
                + ("/delta" if delta else ""))
        if off + size < len(items):
            body["@odata.nextLink"] = (
                f"{link}?skipToken={_encode_state({**state, 'off': off + size})}")
        elif delta:
            done = {"o": organizer, "s": state.get("s"), "e": state.get("e"),
                    "after": state["upto"], "g": state.get("g"), "t": time.time()}
            body["@odata.deltaLink"] = f"{link}?deltaToken={_encode_state(done)}"
        return body


def _vtt_clock(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    return (f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:"
            f"{millis // 1000 % 60:02d}.{millis % 1000:03d}")
