"""Discovery: which recordings an organiser has, via `getAllRecordings(…)/delta`.

The first request carries `startDateTime` only — the documented template. Graph encodes the
initial request's parameters into the state token of every link it returns, and `endDateTime`
"filters items created before the given end date": an end in the first request would freeze
the window, and no later round would ever return a newer recording. Later polls replay the
stored `@odata.deltaLink` verbatim, so only what is new comes back. Delta can repeat a
recording it already sent, so results are de-duplicated by recording id here and idempotent
downstream.

A stored link is dropped and a new round started (from `graph.lookback_days`) when Graph
rejects it (410 Gone, an expired or invalid sync state: 400/404), when it points at another host
than `graph.base_url`, or when it was built under another configuration (`link_fingerprint`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from meeting_governance.errors import GraphError
from meeting_governance.graph.client import GraphClient, odata_string, quote_segment

# Bump when the initial request changes shape: links built by the old one are then restarted.
REQUEST_TEMPLATE = "getAllRecordings/delta startDateTime-only v2"
_REJECTED = frozenset({400, 404, 410})


@dataclass(frozen=True, slots=True)
class RecordingRef:
    """One recording as Graph lists it: enough to fetch its meeting, people and content."""

    recording_id: str
    meeting_id: str
    organizer_id: str
    created: datetime | None = None
    end: datetime | None = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Discovery:
    recordings: tuple[RecordingRef, ...]
    delta_link: str | None  # persist per organiser; pass it back on the next poll
    restarted: str | None = None  # why a stored link was dropped (no personal data), if it was


def parse_graph_datetime(value: Any) -> datetime | None:
    """Graph date-times (`2023-12-02T06:59:34.7411768Z`: 7 fraction digits) as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # Python accepts at most 6 fraction digits
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{main}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _odata_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def all_recordings_url(client: GraphClient, organizer_id: str, *, start: datetime) -> str:
    """The first delta request, as Microsoft documents it: `meetingOrganizerUserId` (mandatory,
    or Graph refuses) and `startDateTime` — never an end, which would freeze the window."""
    function = (f"getAllRecordings(meetingOrganizerUserId={odata_string(organizer_id)},"
                f"startDateTime={_odata_datetime(start)})")
    return f"{client.base_url}/users/{quote_segment(organizer_id)}/onlineMeetings/{function}/delta"


def link_fingerprint(base_url: str, organizer_id: str, lookback_days: int) -> str:
    """What built a delta link: a stored link with another fingerprint is not replayed."""
    text = "|".join((REQUEST_TEMPLATE, base_url.rstrip("/").lower(), organizer_id,
                     str(lookback_days)))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def same_host(link: str, base_url: str) -> bool:
    """Does a stored link point at `graph.base_url`'s own scheme and host?"""
    a, b = urlsplit(link), urlsplit(base_url)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def as_object(value: Any) -> dict[str, Any]:
    """A nested JSON object, or {} when Graph sent something else there (a string, a list)."""
    return value if isinstance(value, dict) else {}


def shape_error(kind: str, exc: Exception) -> GraphError:
    """A body that parsed but has the wrong shape: as retryable as a malformed one."""
    return GraphError(f"Graph answered a {kind} call with JSON of an unexpected shape "
                      f"({exc.__class__.__name__}); nothing was used from it, retry later",
                      code="malformed_response", retryable=True)


def _recording_ref(item: dict[str, Any], organizer_id: str) -> RecordingRef:
    recording_id, meeting_id = item.get("id"), item.get("meetingId")
    if not isinstance(recording_id, str) or not recording_id or not isinstance(meeting_id, str) \
            or not meeting_id:
        raise GraphError("Graph listed a recording without an id or meeting id; the poll will "
                         "be retried", retryable=True)
    user = as_object(as_object(item.get("meetingOrganizer")).get("user"))
    call_id = item.get("callId")
    return RecordingRef(
        recording_id=recording_id,
        meeting_id=meeting_id,
        organizer_id=str(user.get("id") or organizer_id),
        created=parse_graph_datetime(item.get("createdDateTime")),
        end=parse_graph_datetime(item.get("endDateTime")),
        call_id=call_id if isinstance(call_id, str) and call_id else None,
    )


def discover(client: GraphClient, organizer_id: str, *, delta_link: str | None,
             start: datetime, restart_reason: str | None = None) -> Discovery:
    """New recordings of one organiser since `delta_link` (or created since `start` the first
    time, and whenever the stored link is dropped: see the module docstring).

    Any other failure raises before a delta link is returned, so the caller keeps the old one
    and the next poll asks again: nothing is skipped.
    """
    restarted = restart_reason
    items: list[dict[str, Any]] | None = None
    new_delta: str | None = None
    if delta_link and not same_host(delta_link, client.base_url):
        restarted, delta_link = "the stored delta link points at another host than " \
                                "graph.base_url", None
    if delta_link:
        try:
            items, new_delta = client.get_all(delta_link, kind="discovery")
        except GraphError as exc:
            if exc.status not in _REJECTED:
                raise
            restarted = (f"Graph rejected the stored delta link (HTTP {exc.status}"
                         f"{' ' + exc.code if exc.code else ''})")
            delta_link = None
    if items is None:
        url = all_recordings_url(client, organizer_id, start=start)
        items, new_delta = client.get_all(url, kind="discovery")
    seen: dict[str, RecordingRef] = {}
    try:
        for item in items:
            ref = _recording_ref(item, organizer_id)
            seen.setdefault(ref.recording_id, ref)
    except (AttributeError, TypeError) as exc:
        raise shape_error("discovery", exc) from None
    return Discovery(recordings=tuple(seen.values()), delta_link=new_delta or delta_link,
                     restarted=restarted)


def group_organizers(client: GraphClient, group_id: str) -> tuple[str, ...]:
    """The user members (nested groups included) of a group: the organisers in scope.

    Needs the application permission GroupMember.Read.All.
    """
    url = (f"{client.base_url}/groups/{quote_segment(group_id)}/transitiveMembers/"
           "microsoft.graph.user?$select=id")
    items, _ = client.get_all(url, kind="group_members")
    members: dict[str, None] = {}
    for item in items:
        kind = item.get("@odata.type", "#microsoft.graph.user")
        if kind == "#microsoft.graph.user" and isinstance(item.get("id"), str) and item["id"]:
            members.setdefault(item["id"], None)
    return tuple(members)
