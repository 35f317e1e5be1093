"""Which meeting a Teams join link names: for showing a coordinator what they are about to
register, never stored in clear.

Microsoft documents two lookups (`OnlineMeetings.Read.All`, within an application access
policy), both on an organiser's meetings: `GET /users/{id}/onlineMeetings?$filter=JoinWebUrl eq
'{joinWebUrl}'` for the long `…/l/meetup-join/…` link, and `…?$filter=joinMeetingIdSettings/
joinMeetingId eq '{id}'` for the short `…/meet/<id>?p=…` link. A long link names its organiser
(`context={"Oid":…}`); a short one does not, so the organisers in scope are asked in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from meeting_governance.errors import GraphError, InputError
from meeting_governance.graph.client import GraphClient
from meeting_governance.graph.recordings import parse_graph_datetime
from meeting_governance.meetingref import normalise_meeting_ref, organizer_in_link, unwrap_link


@dataclass(frozen=True, slots=True)
class MeetingMatch:
    """The meeting a link names, for display (subject, times, organiser)."""

    meeting_id: str
    organizer_id: str
    subject: str | None
    start: datetime | None
    end: datetime | None
    join_url: str | None
    join_meeting_id: str | None

    def describe(self) -> str:
        when = self.start.strftime("%Y-%m-%d %H:%M UTC") if self.start else "an unknown time"
        return f"“{self.subject or '(no subject)'}” on {when}, organised by {self.organizer_id}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _match(item: dict[str, Any], organizer_id: str) -> MeetingMatch | None:
    mid = item.get("id")
    if not isinstance(mid, str) or not mid:
        return None
    settings = item.get("joinMeetingIdSettings")
    join_id = settings.get("joinMeetingId") if isinstance(settings, dict) else None

    def text(key: str) -> str | None:
        value = item.get(key)
        return value if isinstance(value, str) and value else None

    return MeetingMatch(meeting_id=mid, organizer_id=organizer_id, subject=text("subject"),
                        start=parse_graph_datetime(item.get("startDateTime")),
                        end=parse_graph_datetime(item.get("endDateTime")),
                        join_url=text("joinWebUrl"),
                        join_meeting_id=join_id if isinstance(join_id, str) else None)


def find_meeting(client: GraphClient, link: str, organizers: Sequence[str]) -> MeetingMatch | None:
    """The meeting a long or short Teams link names, or None when no organiser asked has it.

    `InputError` when `link` is not a Teams join link; GraphError when every organiser asked
    failed (not merely "not found")."""
    key = normalise_meeting_ref(link)
    if key.startswith("meet:"):
        expression = f"joinMeetingIdSettings/joinMeetingId eq {_literal(key[5:])}"
    elif "@thread." in key:
        expression = f"JoinWebUrl eq {_literal(unwrap_link(link))}"
    else:
        raise InputError("meeting: give a Teams join link (…/l/meetup-join/… or …/meet/…) "
                         "to look a meeting up")
    owner = organizer_in_link(link)
    candidates = list(dict.fromkeys([*([owner] if owner else []), *organizers]))
    failures: list[GraphError] = []
    for organizer_id in candidates:
        url = (client.url("users", organizer_id, "onlineMeetings")
               + "?$filter=" + quote(expression, safe=""))
        try:
            body = client.get_json(url, kind="meeting_lookup")
        except GraphError as exc:
            if exc.status in (403, 404):  # not this organiser's (or outside the access policy)
                continue
            failures.append(exc)
            continue
        values = body.get("value")
        for item in values if isinstance(values, list) else []:
            if isinstance(item, dict) and (found := _match(item, organizer_id)):
                return found
    if failures and len(failures) == len(candidates):
        raise failures[0]
    return None


def get_meeting(client: GraphClient, organizer_id: str, meeting_id: str) -> MeetingMatch | None:
    """The meeting a Graph online-meeting id names (its organiser is known: a Graph id encodes
    it), or None when that organiser has no such meeting; GraphError when Graph cannot be asked."""
    try:
        body = client.get_json(client.url("users", organizer_id, "onlineMeetings", meeting_id),
                               kind="meeting_lookup")
    except GraphError as exc:
        if exc.status in (403, 404):
            return None
        raise
    return _match(body, organizer_id)


__all__ = ["MeetingMatch", "find_meeting", "get_meeting"]
