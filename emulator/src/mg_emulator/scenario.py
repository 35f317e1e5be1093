"""What the emulator knows: organisers, the directory, meetings, attendance and recordings,
read from TOML.

A scenario is plain frozen data so a test can build one in code or load
`mg_emulator/scenarios/*.toml`.
The directory (`people`) holds members with aliases and B2B guests; organisers are in it too.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ScenarioError(ValueError):
    """A scenario file or dict that cannot be served: the message names the key and the fix."""


@dataclass(frozen=True, slots=True)
class Organizer:
    id: str
    upn: str = ""
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Person:
    """A user in the directory (`/users`), with every property that can hold an address.

    `proxy_addresses` as Entra stores them (`SMTP:` primary, `smtp:` aliases); a B2B guest has
    `user_type = "Guest"` and a `…#EXT#@tenant` UPN.
    """

    id: str
    display_name: str = ""
    upn: str = ""
    mail: str = ""
    proxy_addresses: tuple[str, ...] = ()
    other_mails: tuple[str, ...] = ()
    user_type: str = "Member"


ATTENDEE_KINDS = ("user", "guest", "phone", "anonymous", "acs", "room", "application")


@dataclass(frozen=True, slots=True)
class Attendee:
    """An invitee as `participants.attendees` shows it. Kinds: user, guest, phone, anonymous,
    acs (an Azure Communication Services user), room (a Teams Room: `applicationInstance`),
    application (a bot)."""

    upn: str = ""
    object_id: str = ""
    display_name: str = ""
    kind: str = "user"
    role: str = "attendee"
    tenant_id: str = ""


@dataclass(frozen=True, slots=True)
class AttendanceRecord:
    """Someone who joined: `identity.id` may be a GUID, `teamsvisitor:…` or a phone number."""

    id: str
    email: str = ""
    identity_id: str = ""
    display_name: str = ""
    role: str = "Attendee"
    seconds: int = 0
    tenant_id: str = ""
    # (join, leave) in seconds after the report's start; empty: one interval of `seconds`
    # from the start (as before). Several: someone who left and came back.
    intervals: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class AttendanceReport:
    """One session's report. A recurring meeting has one per occurrence, each with its own
    `start`/`end` (default: the meeting's)."""

    id: str
    records: tuple[AttendanceRecord, ...] = ()
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class TranscriptCue:
    """One cue of Teams' own transcript: who spoke from `start` to `end` seconds after the
    transcript's `created` time, and what Teams heard (`text`, which our code must drop)."""

    start: float
    end: float
    speaker: str
    text: str = ""
    language: str = "en-us"


@dataclass(frozen=True, slots=True)
class CallTranscript:
    """A `callTranscript` of a meeting (the tenant has meeting transcription on)."""

    id: str
    created: datetime | None = None
    end: datetime | None = None
    cues: tuple[TranscriptCue, ...] = ()


@dataclass(frozen=True, slots=True)
class Meeting:
    id: str
    organizer: str
    subject: str = ""
    start: datetime | None = None
    end: datetime | None = None
    join_url: str = ""
    attendees: tuple[Attendee, ...] = ()
    attendance_reports: tuple[AttendanceReport, ...] = ()
    join_meeting_id: str = ""  # joinMeetingIdSettings.joinMeetingId: the short link's number
    transcripts: tuple[CallTranscript, ...] = ()  # Teams' own transcripts (none: not enabled)


@dataclass(frozen=True, slots=True)
class Recording:
    id: str
    meeting: str
    media: str
    content_type: str = "video/mp4"
    created: datetime | None = None
    end: datetime | None = None
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """A group whose (user) members are organisers in scope (`graph.organizer_group_id`)."""

    id: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignInUser:
    """Someone who can sign in interactively (`/authorize`): the web form's Entra users.

    `roles` are app-role values and `groups` group object ids, put in the id_token as the
    `roles` and `groups` claims. The password is a throwaway value for the emulator only.
    """

    id: str  # the Entra object id (`oid`)
    upn: str
    password: str = field(repr=False)
    display_name: str = ""
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


# The web form's callback on loopback: any port matches (see `Scenario.redirect_uris`).
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1/login/entra/callback",
                         "http://localhost/login/entra/callback")


@dataclass(frozen=True, slots=True)
class Scenario:
    tenant_id: str = "emulator-tenant"
    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"  # noqa: S105 - a throwaway value for the emulator
    page_size: int = 2
    token_lifetime_s: int = 3600
    organizers: tuple[Organizer, ...] = ()
    meetings: tuple[Meeting, ...] = ()
    recordings: tuple[Recording, ...] = field(default_factory=tuple)
    groups: tuple[Group, ...] = ()
    users: tuple[SignInUser, ...] = ()
    people: tuple[Person, ...] = ()  # the directory, besides the organisers
    # Redirect URIs registered for the app (`client_id`): matched exactly, except that the port
    # of an `http://127.0.0.1`, `http://localhost` or `http://[::1]` URI is ignored, as Entra
    # does for loopback redirect URIs.
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS

    def meeting(self, meeting_id: str) -> Meeting | None:
        return next((m for m in self.meetings if m.id == meeting_id), None)

    def organizer(self, organizer_id: str) -> Organizer | None:
        return next((o for o in self.organizers if o.id == organizer_id), None)

    def directory(self) -> tuple[Person, ...]:
        """Every user in the directory: `people`, plus each organiser not listed there."""
        listed = {p.id.lower() for p in self.people}
        extra = tuple(Person(id=o.id, display_name=o.display_name, upn=o.upn, mail=o.upn,
                             proxy_addresses=(f"SMTP:{o.upn}",) if o.upn else ())
                      for o in self.organizers if o.id.lower() not in listed)
        return self.people + extra

    def user(self, login: str) -> SignInUser | None:
        """The sign-in user by UPN (case-insensitive, as Entra compares them)."""
        wanted = login.strip().casefold()
        if not wanted:
            return None
        return next((u for u in self.users if u.upn.casefold() == wanted), None)


def _dt(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(f"{where}: not an ISO 8601 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ScenarioError(f"{where}: expected a date-time")


def _build(cls: type, data: dict[str, Any], where: str, **extra: Any) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(sorted(known))}")
    try:
        return cls(**{**data, **extra})
    except TypeError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def scenario_from_dict(data: dict[str, Any], *, source: str = "scenario") -> Scenario:
    """Validate a parsed TOML document into a `Scenario` (unknown keys are errors)."""
    organizers = tuple(
        _build(Organizer, o, f"{source}: organizers[{i}]")
        for i, o in enumerate(data.get("organizers", []))
    )
    meetings = []
    for i, m in enumerate(data.get("meetings", [])):
        where = f"{source}: meetings[{i}]"
        m = dict(m)
        attendees = tuple(_build(Attendee, a, f"{where}.attendees[{j}]")
                          for j, a in enumerate(m.pop("attendees", [])))
        reports = []
        for j, r in enumerate(m.pop("attendance_reports", [])):
            r = dict(r)
            records = tuple(_build(AttendanceRecord, {**rec, "intervals": tuple(
                                (float(a), float(b)) for a, b in rec.get("intervals", ()))},
                                   f"{where}.attendance_reports[{j}]")
                            for rec in r.pop("records", []))
            for key in ("start", "end"):
                r[key] = _dt(r.get(key), f"{where}.attendance_reports[{j}].{key}")
            reports.append(_build(AttendanceReport, r, f"{where}.attendance_reports[{j}]",
                                  records=records))
        for j, a in enumerate(attendees):
            if a.kind not in ATTENDEE_KINDS:
                raise ScenarioError(f"{where}.attendees[{j}].kind: {a.kind!r} is not one of "
                                  f"{', '.join(ATTENDEE_KINDS)}")
        m["start"] = _dt(m.get("start"), f"{where}.start")
        m["end"] = _dt(m.get("end"), f"{where}.end")
        transcripts = []
        for j, t in enumerate(m.pop("transcripts", [])):
            t = dict(t)
            cues = tuple(_build(TranscriptCue, c, f"{where}.transcripts[{j}].cues[{k}]")
                         for k, c in enumerate(t.pop("cues", [])))
            for key in ("created", "end"):
                t[key] = _dt(t.get(key), f"{where}.transcripts[{j}].{key}")
            transcripts.append(_build(CallTranscript, t, f"{where}.transcripts[{j}]",
                                      cues=cues))
        meetings.append(_build(Meeting, m, where, attendees=attendees,
                               attendance_reports=tuple(reports),
                               transcripts=tuple(transcripts)))
    recordings = []
    for i, r in enumerate(data.get("recordings", [])):
        where = f"{source}: recordings[{i}]"
        r = dict(r)
        r["created"] = _dt(r.get("created"), f"{where}.created")
        r["end"] = _dt(r.get("end"), f"{where}.end")
        recordings.append(_build(Recording, r, where))
    groups = tuple(
        _build(Group, {**g, "members": tuple(g.get("members", ()))}, f"{source}: groups[{i}]")
        for i, g in enumerate(data.get("groups", [])))
    sign_in_users = []
    for i, u in enumerate(data.get("users", [])):
        where = f"{source}: users[{i}]"
        u = dict(u)
        for key in ("roles", "groups"):
            value = u.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ScenarioError(f"{where}.{key}: expected a list of strings")
            u[key] = tuple(value)
        sign_in_users.append(_build(SignInUser, u, where))
    people = []
    for i, u in enumerate(data.get("people", [])):
        u = dict(u)
        for key in ("proxy_addresses", "other_mails"):
            value = u.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ScenarioError(f"{source}: people[{i}].{key}: expected a list of strings")
            u[key] = tuple(value)
        people.append(_build(Person, u, f"{source}: people[{i}]"))
    top = {k: v for k, v in data.items()
           if k not in ("organizers", "meetings", "recordings", "groups", "users", "people")}
    if "redirect_uris" in top:
        uris = top["redirect_uris"]
        if not isinstance(uris, list) or not all(isinstance(v, str) for v in uris):
            raise ScenarioError(f"{source}: redirect_uris: expected a list of strings")
        top["redirect_uris"] = tuple(uris)
    scenario: Scenario = _build(Scenario, top, source, organizers=organizers,
                                meetings=tuple(meetings), recordings=tuple(recordings),
                                groups=groups, users=tuple(sign_in_users), people=tuple(people))
    meeting_ids = {m.id for m in scenario.meetings}
    organizer_ids = {o.id for o in scenario.organizers}
    for m in scenario.meetings:
        if m.organizer not in organizer_ids:
            raise ScenarioError(f"{source}: meeting {m.id!r} names an organizer that is not listed")
    for r in scenario.recordings:
        if r.meeting not in meeting_ids:
            raise ScenarioError(f"{source}: recording {r.id!r} names a meeting that is not listed")
    if scenario.page_size < 1:
        raise ScenarioError(f"{source}: page_size must be at least 1")
    person_ids = [p.id.lower() for p in scenario.people]
    if len(person_ids) != len(set(person_ids)):
        raise ScenarioError(f"{source}: people: an object id is listed twice")
    seen_upns: set[str] = set()
    seen_ids: set[str] = set()
    for u in scenario.users:
        if not u.id or not u.upn or not u.password:
            raise ScenarioError(f"{source}: user {u.upn or u.id!r} needs id, upn and password")
        if u.upn.casefold() in seen_upns or u.id in seen_ids:
            raise ScenarioError(f"{source}: user {u.upn!r} is listed twice (upn or id)")
        seen_upns.add(u.upn.casefold())
        seen_ids.add(u.id)
    for uri in scenario.redirect_uris:
        if urlsplit(uri).scheme not in ("https", "http") or "#" in uri:
            raise ScenarioError(f"{source}: redirect_uris: {uri!r} is not an absolute http(s) URI")
    return scenario


_PACKAGE = Path(__file__).resolve().parent  # mg_emulator: its scenarios and media ship inside


def default_scenario_path(name: str = "demo") -> Path:
    """A shipped scenario: `mg_emulator/scenarios/NAME.toml`."""
    candidate = _PACKAGE / "scenarios" / f"{name}.toml"
    if candidate.is_file():
        return candidate
    raise ScenarioError(f"emulator scenario {name!r} is not shipped with this installation; "
                      "pass a scenario file explicitly")


def default_media_dir() -> Path:
    """The demo recordings shipped in the package (`mg_emulator/media`)."""
    return _PACKAGE / "media"


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file (see `mg_emulator/scenarios/demo.toml`)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read emulator scenario {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"emulator scenario {file} is not valid TOML: {exc}") from None
    return scenario_from_dict(data, source=str(file))
