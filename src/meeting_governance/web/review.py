"""What the review page tells a coordinator before an opt-out is saved, beyond the form itself:
which meeting a join link names (and whether it is this organisation's, or already over),
whether the person already has an opt-out that covers it, and whether the dates lie in the past.

Decided from the link itself, from our own registry (opt-outs and the recordings already seen)
and, through `check_meeting`'s `resolver` (the app's is `web.lookups.GraphMeetingResolver`,
which says "not connected" when no Graph credential is set), from Microsoft Graph: subject,
times and organiser. Nothing found here is stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import or_
from sqlmodel import col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError, InputError
from meeting_governance.meetingref import (
    blind_meeting,
    meeting_keys,
    normalise_meeting_ref,
    thread_key_from_meeting_id,
)
from meeting_governance.models import OptOut, OptOutIdentifier, Recording
from meeting_governance.optouts import OptOutRequest

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_SAFELINKS = re.compile(r"(^|\.)safelinks\.protection\.outlook\.com$", re.I)
_RECORDINGS_SCANNED = 2000  # one organiser's recordings; more are not looked at for a hint


@dataclass(frozen=True, slots=True)
class ResolvedMeeting:
    """What Microsoft Graph says about the meeting (shown to the coordinator, never stored).

    The ids let the page find recordings and opt-outs of the same meeting under its other
    names (a short `/meet/` link and the long link of one meeting are different texts)."""

    subject: str
    start: datetime | None
    organiser: str
    end: datetime | None = None
    meeting_id: str | None = None
    join_url: str | None = None
    join_meeting_id: str | None = None


class MeetingResolver(Protocol):
    """Looks a join link or meeting id up in Graph; None when Graph does not know it, and
    `GraphError` when Graph cannot be asked (or did not answer in time)."""

    def resolve(self, reference: str, *, tenant_id: str | None,
                organizer_id: str | None) -> ResolvedMeeting | None: ...


@dataclass(frozen=True, slots=True)
class MeetingFacts:
    """What the review page can say about the meeting an opt-out names."""

    link: str                    # the reference as people read it (decoded, without its query)
    tenant_id: str | None        # the tenant in the join link's context (`Tid`)
    organizer_id: str | None     # the organiser's object id in the link (`Oid`) or meeting id
    foreign_tenant: bool | None  # None: cannot tell (no Tid, or our tenant is set by name)
    resolved: ResolvedMeeting | None
    not_checked: str             # why subject, date and organiser are not shown ("" if they are)
    recordings_seen: int         # recordings of this meeting this installation already saw
    last_recording: datetime | None
    past: bool = False           # Graph says the meeting (its first occurrence) has ended
    keys: frozenset[str] = frozenset()  # blind keys of every name of this meeting (duplicates)


def graph_trouble(exc: GraphError) -> str:
    """Why Microsoft Graph gave no answer, in words for a page (from the status and code only:
    never from Graph's own message, which may quote what was asked)."""
    if exc.code in ("timeout", "not_configured"):
        return str(exc)  # written by web.lookups for the page
    if exc.status in (429, 503, 504):
        return "Microsoft Graph is busy and asked us to wait"
    if exc.status in (401, 403):
        return ("Microsoft Graph refused to answer (a permission or the Teams application "
                "access policy is missing)")
    return "Microsoft Graph could not be reached"


def readable_link(reference: str) -> str:
    """A join link as people read it: percent-decoded (twice-encoded links too), Safe Links
    unwrapped; the `context=` JSON stays as it is."""
    text = "".join((reference or "").split())
    for _ in range(4):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    parts = urlsplit(text)
    if _SAFELINKS.search(parts.hostname or ""):
        wrapped = parse_qs(parts.query).get("url")
        if wrapped:
            return readable_link(wrapped[0])
    return text


def short_link(reference: str) -> str:
    """The readable link without its query (`?context=…`, a passcode): what identifies the
    meeting, and what people compare with their invitation."""
    link = readable_link(reference)
    return link.split("?", 1)[0] if "://" in link else link


def _link_context(reference: str) -> dict[str, str]:
    """`Tid` and `Oid` from a join link's `context={"Tid":…,"Oid":…}`, keys case-folded."""
    text = readable_link(reference)
    query = urlsplit(text).query
    raw = parse_qs(query).get("context", [""])[0] if query else ""
    if not raw:
        match = re.search(r"context=(\{.*?\})", text)
        raw = match.group(1) if match else ""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k).casefold(): str(v) for k, v in data.items() if isinstance(v, str)}


def _meeting_id_organiser(meeting_id: str) -> str | None:
    """The organiser's object id inside a Graph online-meeting id (`1*<oid>*<msg>**<thread>`)."""
    text = "".join(meeting_id.split())
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        fields = base64.b64decode(padded, validate=False).decode("utf-8").split("*")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return fields[1] if len(fields) >= 5 and _GUID.match(fields[1]) else None


def _recordings(ctx: AppContext, key: str, organizer_id: str | None,
                reference: str, graph_id: str | None = None) -> tuple[int, datetime | None]:
    """How many recordings of this meeting were already seen, and the latest one's start
    (`graph_id`: the meeting's id as Graph gave it, which a short link does not contain)."""
    with ctx.session() as db:
        query = select(Recording.meeting_id, Recording.meeting_start)
        if organizer_id:
            query = query.where(col(Recording.organizer_id).in_(
                sorted({organizer_id, organizer_id.lower()})))
        else:
            query = query.where(col(Recording.meeting_id).in_(
                sorted({reference.strip(), graph_id or reference.strip()})))
        rows = db.exec(query.limit(_RECORDINGS_SCANNED)).all()
    starts: list[datetime | None] = []
    for meeting_id, start in rows:
        keys = {thread_key_from_meeting_id(meeting_id)}
        try:
            keys.add(normalise_meeting_ref(meeting_id))
        except InputError:
            pass
        if key in keys or (graph_id is not None and meeting_id == graph_id):
            starts.append(start)
    known = [s for s in starts if s is not None]
    return len(starts), (max(known) if known else None)


def check_meeting(ctx: AppContext, reference: str, *,
                  resolver: MeetingResolver | None = None) -> MeetingFacts:
    """The one function the review page calls about a meeting (the seam for Graph look-ups).

    Another organisation's link is not looked up (our app cannot see that tenant's meetings).
    Raises InputError when the reference is neither a join link nor a meeting id (the form
    has already said so by then)."""
    key = normalise_meeting_ref(reference)
    context = _link_context(reference)
    tenant = context.get("tid")
    organizer = context.get("oid") or _meeting_id_organiser(reference)
    ours = ctx.settings.graph.tenant_id
    foreign: bool | None = None
    if tenant and _GUID.match(tenant) and _GUID.match(ours):
        foreign = tenant.lower() != ours.lower()
    resolved: ResolvedMeeting | None = None
    if foreign:
        not_checked = ("The link belongs to another organisation, whose meetings this server "
                       "cannot see, so the meeting's subject, date and organiser could not be "
                       "checked.")
    elif resolver is None:
        not_checked = ("This server does not look meetings up in Microsoft Graph, so the "
                       "meeting's subject, date and organiser could not be checked.")
    else:
        try:
            resolved = resolver.resolve(reference, tenant_id=tenant, organizer_id=organizer)
            not_checked = "" if resolved else ("Microsoft Graph does not know this meeting "
                                               "(no organiser in scope has it), so its subject, "
                                               "date and organiser could not be checked.")
        except GraphError as exc:
            not_checked = (f"{graph_trouble(exc)}, so the meeting's subject, date and organiser "
                           "could not be checked.")
    graph_id = resolved.meeting_id if resolved else None
    seen, last = _recordings(ctx, key, organizer, reference, graph_id)
    keys = {blind_meeting(ctx.vault, key)}
    if resolved:
        keys |= meeting_keys(ctx.vault, resolved.meeting_id, resolved.join_url,
                             resolved.join_meeting_id)
    ended = (resolved.end or resolved.start) if resolved else None
    return MeetingFacts(link=short_link(reference), tenant_id=tenant, organizer_id=organizer,
                        foreign_tenant=foreign, resolved=resolved, not_checked=not_checked,
                        recordings_seen=seen, last_recording=last,
                        past=ended is not None and ended < ctx.clock.now(),
                        keys=frozenset(keys))


@dataclass(frozen=True, slots=True)
class Overlap:
    """An active opt-out of the same person that already covers some of the new one."""

    optout_id: str
    scope: str
    valid_from: datetime | None
    valid_until: datetime | None
    covers_recording: bool
    covers_transcription: bool
    complete: bool  # it already blocks everything the new one would


def overlaps(ctx: AppContext, req: OptOutRequest, *, identifiers: Iterable[str] = (),
             keys: Iterable[str] = ()) -> list[Overlap]:
    """Active opt-outs of the same person whose meetings overlap the new one's: the coordinator
    sees them before saving a duplicate. The person is found by the e-mail or object id typed
    and by `identifiers` (blind values of every identifier the directory knows for them, so an
    opt-out under an alias counts); one meeting by any of `keys` (its other link forms)."""
    vault = ctx.vault
    who = []
    if req.email:
        who.append(col(OptOut.email_blind) == vault.blind_email(req.email))
    if req.object_id:
        who.append(col(OptOut.object_id_blind) == vault.blind_object_id(req.object_id))
    blinds = sorted(set(identifiers))
    if blinds:
        who.append(col(OptOut.id).in_(select(OptOutIdentifier.optout_id).where(
            col(OptOutIdentifier.blind).in_(blinds))))
    if not who:
        return []
    new_keys = set(keys)
    if req.meeting:
        new_keys.add(blind_meeting(vault, normalise_meeting_ref(req.meeting)))
    with ctx.session() as db:
        rows: Sequence[OptOut] = db.exec(
            select(OptOut).where(or_(*who), col(OptOut.revoked_at).is_(None))
            .order_by(col(OptOut.created_at))).all()
    new_scope = "meeting" if req.meeting else (
        "range" if (req.valid_from or req.valid_until) else "all")
    found = []
    for row in rows:
        if row.scope == "all":
            whole = True
        elif row.scope == "meeting" and new_scope == "meeting" and row.meeting_key in new_keys:
            whole = True
        elif row.scope == "range" and new_scope == "range" and _ranges_meet(
                row.valid_from, row.valid_until, req.valid_from, req.valid_until):
            whole = _within(req.valid_from, req.valid_until, row.valid_from, row.valid_until)
        else:
            # Narrower than the new one, or (a range against one meeting) not decidable
            # without the meeting's date.
            continue
        covers = ((row.covers_recording or not req.covers_recording)
                  and (row.covers_transcription or not req.covers_transcription))
        found.append(Overlap(optout_id=row.id, scope=row.scope, valid_from=row.valid_from,
                             valid_until=row.valid_until, covers_recording=row.covers_recording,
                             covers_transcription=row.covers_transcription,
                             complete=covers and whole))
    return found


def _ranges_meet(a_from: datetime | None, a_until: datetime | None,
                 b_from: datetime | None, b_until: datetime | None) -> bool:
    return (a_until is None or b_from is None or b_from <= a_until) and \
           (b_until is None or a_from is None or a_from <= b_until)


def _within(inner_from: datetime | None, inner_until: datetime | None,
            outer_from: datetime | None, outer_until: datetime | None) -> bool:
    starts_inside = outer_from is None or (inner_from is not None and inner_from >= outer_from)
    ends_inside = outer_until is None or (inner_until is not None and inner_until <= outer_until)
    return starts_inside and ends_inside
