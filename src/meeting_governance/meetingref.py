"""One meeting, one key: Teams join links and Graph meeting ids normalised for the opt-out registry.

A coordinator pastes whatever they have — a join link copied from an invitation (percent-encoded,
decoded, wrapped by Outlook Safe Links, broken over two lines), a bare thread id or a Graph
meeting id — and the gate later sees the meeting as Graph describes it (`id`, `joinWebUrl`).
Both sides go through `normalise_meeting_ref`, so every variant of the same link yields the
same key, and the key is stored only as a blind-index value.

Case: the whole thread key is case-folded. The `meeting_…` part is base64 and so, strictly,
case-sensitive, but folding can only make two different meetings share a key, which blocks
more, never less — the safe direction for an opt-out.

Pure functions, no I/O (`meeting_keys` only needs the vault's HMAC key).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from meeting_governance.errors import InputError
from meeting_governance.identity import check_visible, is_object_id, normalise_object_id

if TYPE_CHECKING:
    from meeting_governance.vault import Vault

MAX_REF_LENGTH = 4096
_BLIND_KIND = "meeting"

_WHITESPACE = re.compile(r"\s+")
# 19:meeting_…@thread.v2 (scheduled meetings), 19:…@thread.tacv2 / @thread.skype (channels)
_THREAD = re.compile(r"(19:[^/?#@\s]+@thread\.[a-z0-9]+)(?:/([^/?#\s]*))?", re.IGNORECASE)
_JOIN_PATH = re.compile(r"/l/meetup-join/(.+)$", re.IGNORECASE)
_SHORT_MEET = re.compile(r"/meet/([0-9][0-9 ]*[0-9])/?$", re.IGNORECASE)
_TEAMS_HOST = re.compile(
    r"(^|\.)(teams\.microsoft\.com|teams\.live\.com|teams\.microsoft\.us|gov\.teams\.microsoft\.us"
    r"|dod\.teams\.microsoft\.us|teams\.microsoftonline\.cn)$", re.IGNORECASE)
_SAFELINKS_HOST = re.compile(r"(^|\.)safelinks\.protection\.outlook\.com$", re.IGNORECASE)
_GRAPH_ID = re.compile(r"^[\x21-\x7e]+$")


def _fully_unquoted(text: str) -> str:
    """Percent-decode until stable: links are often encoded twice (once by Teams, once by mail)."""
    for _ in range(4):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _thread_key(thread_id: str, message_id: str | None) -> str:
    message = (message_id or "0").strip() or "0"
    return f"{thread_id}/{message}".casefold()


def _from_link(text: str) -> str | None:
    """The canonical key of a Teams link, or None if `text` is not one."""
    if "://" not in text and "://" in _fully_unquoted(text):  # the whole link was encoded
        text = _fully_unquoted(text)
    if text.lower().startswith("msteams:"):  # the desktop app's own scheme
        text = "https://teams.microsoft.com/" + text.split(":", 1)[1].lstrip("/")
    if "://" not in text and _TEAMS_HOST.search(text.split("/", 1)[0]):
        text = "https://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if _SAFELINKS_HOST.search(host):
        wrapped = parse_qs(parts.query).get("url")
        return _from_link(_fully_unquoted(wrapped[0]).strip()) if wrapped else None
    if not _TEAMS_HOST.search(host):
        return None
    path = _fully_unquoted(parts.path)
    join = _JOIN_PATH.search(path)
    if join:
        thread = _THREAD.match(join.group(1))
        return _thread_key(thread.group(1), thread.group(2)) if thread else None
    short = _SHORT_MEET.search(path)
    if short:  # the newer short link https://teams.microsoft.com/meet/<join meeting id>?p=…
        return "meet:" + short.group(1).replace(" ", "")
    return None


def normalise_meeting_ref(value: str) -> str:
    """The canonical key of a join link, thread id or Graph meeting id; `InputError` if it is none.

    A Teams link (any encoding, case, Safe Links wrapping or line break) → `19:…@thread.v2/<msg>`
    case-folded; a bare thread id the same; a Graph meeting id stays itself (trimmed).
    """
    text = _WHITESPACE.sub("", value or "").strip("<>\"'")
    if not text:
        raise InputError("meeting: give a meeting id or a Teams join link")
    if len(text) > MAX_REF_LENGTH:
        raise InputError(f"meeting: too long ({len(text)} characters; at most {MAX_REF_LENGTH})")
    decoded = _fully_unquoted(text)
    try:  # a zero-width space inside a link looks right and would never match
        check_visible(decoded, what="the meeting link")
    except InputError as exc:
        raise InputError(f"meeting: {exc}") from None
    lowered = decoded.lower()
    looks_like_link = ("://" in lowered or lowered.startswith(("msteams:", "teams.", "www."))
                       or "/l/meetup-join/" in lowered or "/meet/" in lowered)
    if looks_like_link:
        key = _from_link(text)
        if key is None:
            raise InputError("meeting: not a Teams join link (expected "
                             "https://teams.microsoft.com/l/meetup-join/… or a meeting id)")
        return key
    thread = _THREAD.fullmatch(decoded)
    if thread:
        return _thread_key(thread.group(1), thread.group(2))
    # An opaque id is compared exactly, so refuse what cannot be one rather than guess.
    if _WHITESPACE.search((value or "").strip().strip("<>\"'").strip()):
        raise InputError("meeting: a meeting id has no spaces; paste the id exactly, "
                         "or the Teams join link")
    if not _GRAPH_ID.match(text):
        raise InputError("meeting: not a meeting id (printable ASCII without spaces) "
                         "nor a Teams join link")
    return text


def thread_key_from_meeting_id(meeting_id: str) -> str | None:
    """The thread key a Graph online-meeting id encodes, if it is the usual kind.

    Graph's id is base64 of `1*<organiser oid>*<message id>**<thread id>`: decoding it lets an
    opt-out entered by join link match a meeting the gate only knows by id.
    """
    text = _WHITESPACE.sub("", meeting_id or "")
    if not text:
        return None
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        decoded = base64.b64decode(padded, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    fields = decoded.split("*")
    if len(fields) < 5:
        return None
    thread = _THREAD.fullmatch(fields[-1])
    if not thread:
        return None
    message = fields[2] if fields[2].isdigit() else "0"
    return _thread_key(thread.group(1), message)


def unwrap_link(value: str) -> str:
    """A pasted link without whitespace and Outlook Safe Links wrapping (as Teams wrote it)."""
    text = _WHITESPACE.sub("", value or "").strip("<>\"'")
    parts = urlsplit(text if "://" in text else _fully_unquoted(text))
    if _SAFELINKS_HOST.search((parts.hostname or "").lower()):
        wrapped = parse_qs(parts.query).get("url")
        if wrapped:
            return unwrap_link(_fully_unquoted(wrapped[0]))
    return text


def organizer_in_link(value: str) -> str | None:
    """The organiser's object id a long join link carries (`context={"Tid":…,"Oid":…}`)."""
    query = urlsplit(_fully_unquoted(unwrap_link(value))).query
    raw = query.split("context=", 1)[1] if "context=" in query else ""
    try:
        context = json.loads(raw.split("&", 1)[0]) if raw else None
    except ValueError:
        return None
    oid = context.get("Oid") if isinstance(context, dict) else None
    return normalise_object_id(oid) if isinstance(oid, str) and is_object_id(oid) else None


def meeting_keys(vault: Vault, meeting_id: str | None, join_url: str | None,
                 join_meeting_id: str | None = None) -> set[str]:
    """Every blind key an opt-out for this meeting may have been stored under: by Graph id, by
    join link, by the thread the id encodes, and by `joinMeetingIdSettings.joinMeetingId` (what
    Teams' short `…/meet/<id>?p=…` links carry).

    Unparseable parts are skipped rather than raised: the gate must still be able to match
    on whatever does parse (and an opt-out for "all meetings" does not need a key at all).
    """
    keys: set[str] = set()
    digits = "".join((join_meeting_id or "").split())
    if digits.isdigit():
        keys.add(blind_meeting(vault, "meet:" + digits))
    for candidate in (meeting_id, join_url):
        if not candidate:
            continue
        try:
            keys.add(blind_meeting(vault, normalise_meeting_ref(candidate)))
        except InputError:
            continue
    if meeting_id:
        thread = thread_key_from_meeting_id(meeting_id)
        if thread:
            keys.add(blind_meeting(vault, thread))
    return keys


def blind_meeting(vault: Vault, normalised: str) -> str:
    """The blind-index value of an already-normalised meeting key (what `optout.meeting_key` holds)."""
    return vault.blind(_BLIND_KIND, normalised)
