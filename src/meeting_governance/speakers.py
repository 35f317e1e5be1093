"""Names for speaker labels, only from evidence recorded with them; unnamed stays "Speaker N".

A label ("Speaker 2", from diarization) becomes a person through one of three sources, each
stored as a `SpeakerLink` with its method and a summary of the evidence (times and counts,
never a name):

- **attendance** (`name_by_attendance`): a speaker can only be someone present. For each label
  the candidates are the attendees present (an attendance interval overlapping the turn) during
  *every* one of the label's turns. The label is named only when exactly one candidate is left
  and that candidate is identified (a member or guest with an object id or address); when two or
  more remain, when an anonymous or phone participant is among them, or when none is left, the
  label stays unnamed.
- **teams_timeline** (`name_by_timeline`): Teams' own speaker timeline (`callTranscript`
  `metadataContent`) where the tenant has meeting transcription on. Its cues are parsed to
  (start, end, speaker name) and the spoken text is dropped at parse time: it is never stored,
  logged or compared. A label is named when one Teams speaker accounts for at least
  `TIMELINE_SHARE` of the label's speech that the timeline covers, the timeline covers at least
  half of the label's speech, and that Teams name is the display name of exactly one identified
  participant of the meeting.
- **dpo** (`assign`): a DPO listened and names the label; audited, and never overwritten by the
  automatic sources.

The person is stored as blind values only; the name is read at display time from the
transcript's sealed participant list (`names_for`). A DPO's link outranks Teams' timeline, which
outranks attendance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.diarization.turns import SpeakerTurn
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.identity import is_object_id, validated_email, validated_object_id
from meeting_governance.models import SpeakerLink, Transcript
from meeting_governance.store import get_transcript, read_content, read_participants

METHODS = ("attendance", "teams_timeline", "dpo")
RANK = {"attendance": 1, "teams_timeline": 2, "dpo": 3}
TIMELINE_SHARE = 0.75  # one Teams speaker's share of the label's covered speech
TIMELINE_COVER = 0.5  # the timeline must cover this share of the label's speech


# -- evidence, as small records ---------------------------------------------------------------
@dataclass(frozen=True)
class Presence:
    """One attendee's attendance intervals, in seconds on the recording's timeline.

    `key` indexes the meeting's participant list; `identified` is False for anonymous, phone and
    room participants (they can be candidates, never names)."""

    key: int
    identified: bool
    intervals: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TimelineCue:
    """One cue of Teams' speaker timeline: who spoke when (the words are not kept)."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Naming:
    """A label named as participant `key` of the meeting, by `method`, because `evidence`."""

    label: str
    key: int
    method: str
    evidence: str


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _by_label(turns: Iterable[SpeakerTurn]) -> dict[str, list[SpeakerTurn]]:
    out: dict[str, list[SpeakerTurn]] = {}
    for turn in turns:
        out.setdefault(turn.speaker, []).append(turn)
    return out


def _overlaps(turn: SpeakerTurn, interval: tuple[float, float]) -> bool:
    return min(turn.end, interval[1]) > max(turn.start, interval[0])


def name_by_attendance(turns: Sequence[SpeakerTurn],
                       presences: Sequence[Presence]) -> list[Naming]:
    """Labels that exactly one identified attendee could have spoken (see the module doc)."""
    out = []
    for label, own in sorted(_by_label(turns).items()):
        candidates: set[int] | None = None
        for turn in own:
            here = {p.key for p in presences if any(_overlaps(turn, i) for i in p.intervals)}
            candidates = here if candidates is None else candidates & here
        if candidates is None or len(candidates) != 1:
            continue
        key = next(iter(candidates))
        if not next(p for p in presences if p.key == key).identified:
            continue
        spoken = sum(t.end - t.start for t in own)
        out.append(Naming(label, key, "attendance",
                          f"the only attendee present during all {len(own)} turns "
                          f"({spoken:.0f} s, {_clock(own[0].start)}–{_clock(own[-1].end)})"))
    return out


def parse_timeline(vtt: str, recording_start: datetime) -> list[TimelineCue]:
    """Teams' `metadataContent` (WebVTT whose cue payloads are JSON objects with
    `startDateTime`, `endDateTime`, `speakerName`, `spokenText`, …) as cues on the recording's
    timeline. `spokenText` is never read into the result: only who and when survive."""
    cues = []
    for line in vtt.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
            start = datetime.fromisoformat(str(item["startDateTime"]))
            end = datetime.fromisoformat(str(item["endDateTime"]))
            name = str(item.get("speakerName") or "").strip()
        except (ValueError, KeyError, TypeError):
            continue  # a cue we cannot read names nobody
        if name and end > start:
            cues.append(TimelineCue((start - recording_start).total_seconds(),
                                    (end - recording_start).total_seconds(), name))
    return cues


def name_by_timeline(turns: Sequence[SpeakerTurn], cues: Sequence[TimelineCue],
                     names: Mapping[str, int]) -> list[Naming]:
    """Labels Teams' timeline attributes to one speaker, mapped to a participant by display
    name (`names`: lower-cased display name -> participant key, only names held by exactly
    one identified participant)."""
    out = []
    for label, own in sorted(_by_label(turns).items()):
        spoken = sum(t.end - t.start for t in own)
        share: dict[str, float] = {}
        for turn in own:
            for cue in cues:
                overlap = min(turn.end, cue.end) - max(turn.start, cue.start)
                if overlap > 0:
                    share[cue.speaker] = share.get(cue.speaker, 0.0) + overlap
        covered = sum(share.values())
        if spoken <= 0 or covered < TIMELINE_COVER * spoken:
            continue
        best, amount = max(share.items(), key=lambda item: item[1])
        key = names.get(best.casefold())
        if amount < TIMELINE_SHARE * covered or key is None:
            continue
        out.append(Naming(label, key, "teams_timeline",
                          f"Teams' speaker timeline: {amount / covered:.0%} of {covered:.0f} s "
                          f"covered over {len(own)} turns"))
    return out


def meeting_namings(people: Sequence[Mapping[str, Any]], presence: Sequence[Any],
                    recording_start: datetime | None, turns: Sequence[SpeakerTurn],
                    timelines: Sequence[str] | None) -> list[Naming]:
    """Every naming the meeting's own evidence supports: attendance intervals
    (`graph.participants.Presence`, matched to `people` by object id or address; a record that
    matches nobody is a candidate that is never a name) and Teams' timelines. Teams' timeline
    wins where both name a label. Nothing without the recording's start time."""
    if recording_start is None or not turns:
        return []
    keys: dict[str, int] = {}
    for index, person in enumerate(people):
        for value in (person.get("object_id"), person.get("email")):
            if value:
                keys[str(value).lower()] = index
    spans: dict[int, list[tuple[float, float]]] = {}
    for n, record in enumerate(presence):
        key = next((keys[v.lower()] for v in (record.object_id, record.email)
                    if v and v.lower() in keys), -1 - n)
        spans.setdefault(key, []).extend(
            (seconds_since(recording_start, a), seconds_since(recording_start, b))
            for a, b in record.intervals)
    presences = [Presence(key, key >= 0 and _identified(people[key]), tuple(found))
                 for key, found in spans.items()]
    by_label = {n.label: n for n in name_by_attendance(turns, presences)}
    cues = [c for body in timelines or () for c in parse_timeline(body, recording_start)]
    if cues:
        by_label.update({n.label: n for n in name_by_timeline(turns, cues,
                                                              display_names(people))})
    return [by_label[label] for label in sorted(by_label)]


# -- stored links ---------------------------------------------------------------------------
def _participant_blinds(app: AppContext, person: Mapping[str, Any]) -> list[str]:
    return sorted(app.vault.blind_identities(email=person.get("email"),
                                             object_id=person.get("object_id")))


def _identified(person: Mapping[str, Any]) -> bool:
    return person.get("kind") in ("user", "guest") and bool(
        person.get("object_id") or person.get("email"))


def display_names(people: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Display name (case-folded) -> participant index, for names exactly one identified
    participant has (a name two people share names nobody)."""
    seen: dict[str, list[int]] = {}
    for index, person in enumerate(people):
        name = str(person.get("display_name") or "").strip().casefold()
        if name and _identified(person):
            seen.setdefault(name, []).append(index)
    return {name: keys[0] for name, keys in seen.items() if len(keys) == 1}


def links(session: Session, transcript_id: str) -> list[SpeakerLink]:
    return list(session.exec(select(SpeakerLink).where(
        SpeakerLink.transcript_id == transcript_id).order_by(col(SpeakerLink.label))).all())


def record(app: AppContext, session: Session, row: Transcript, namings: Iterable[Naming],
           *, people: Sequence[Mapping[str, Any]] | None = None,
           actor: str | None = None) -> int:
    """Store automatic namings; a link from a stronger source is never replaced. Returns how
    many labels were (re)named; audited without names."""
    people = people if people is not None else read_participants(app, session, row)
    existing = {link.label: link for link in links(session, row.id)}
    done = 0
    for naming in namings:
        if naming.method not in METHODS or not 0 <= naming.key < len(people):
            raise InputError(f"cannot name {naming.label}: no such participant or method")
        old = existing.get(naming.label)
        if old is not None and RANK[old.method] > RANK[naming.method]:
            continue
        _store(app, session, row, naming.label, people[naming.key], naming.method,
               naming.evidence, old=old, by=None)
        app.audit(session, "speaker.named", target_type="transcript", target_id=row.id,
                  actor=actor, label=naming.label, method=naming.method,
                  version=row.version)
        done += 1
    return done


def _store(app: AppContext, session: Session, row: Transcript, label: str,
           person: Mapping[str, Any], method: str, evidence: str, *,
           old: SpeakerLink | None, by: str | None) -> SpeakerLink:
    blinds = _participant_blinds(app, person)
    oid, mail = person.get("object_id"), person.get("email")
    primary = (app.vault.blind_object_id(oid) if oid else app.vault.blind_email(str(mail)))
    link = old or SpeakerLink(transcript_id=row.id, label=label, person_blind=primary,
                              method=method)
    link.version, link.person_blind, link.identifiers = row.version, primary, " ".join(blinds)
    link.method, link.evidence, link.assigned_by = method, evidence[:300], by
    link.assigned_at = app.clock.now()
    session.add(link)
    session.flush()
    return link


def labels_of(content: Mapping[str, Any]) -> list[str]:
    """Every speaker label of a stored document, in order of first appearance."""
    seen: list[str] = []
    for item in [*(content.get("segments") or []), *(content.get("turns") or [])]:
        label = item.get("speaker") if isinstance(item, dict) else None
        if isinstance(label, str) and label not in seen:
            seen.append(label)
    return seen


def turns_of(content: Mapping[str, Any]) -> list[SpeakerTurn]:
    """The stored speaker turns (or, for documents without them, one per labelled segment)."""
    items = content.get("turns") or [s for s in content.get("segments") or [] if s.get("speaker")]
    return [SpeakerTurn(float(t.get("start") or 0.0), float(t.get("end") or 0.0),
                        str(t["speaker"])) for t in items if isinstance(t, dict)
            and t.get("speaker")]


def _find_participant(app: AppContext, people: Sequence[Mapping[str, Any]],
                      address: str) -> Mapping[str, Any] | None:
    address = address.strip()
    wanted = set(app.vault.blind_identities(
        object_id=validated_object_id(address) if is_object_id(address) else None,
        email=None if is_object_id(address) else validated_email(address)))
    for person in people:
        if wanted & set(_participant_blinds(app, person)) and _identified(person):
            return person
    return None


def assign(app: AppContext, transcript_id: str, label: str, address: str, *,
           actor: str | None = None, note: str = "") -> SpeakerLink:
    """A DPO names `label` as the participant `address` (e-mail/UPN or object id) after
    listening. The label must be one of the transcript's and the person one of its
    participants; bad input changes nothing."""
    label = " ".join(label.split())
    if not label:
        raise InputError("say which label to name: --name 'Speaker 2'")
    note = " ".join(note.split())[:200]
    with app.session() as session:
        row = get_transcript(session, transcript_id.strip())
        if row.purged_at is not None or row.content_item is None:
            raise InputError(f"transcript {row.id} was purged; there is nothing to name")
        content = read_content(app, session, row)
        known = labels_of(content)
        if label not in known:
            raise NotFoundError(f"transcript {row.id} has no speaker {label!r}; its labels are "
                                f"{', '.join(known) or 'none (no diarization)'}")
        people = read_participants(app, session, row)
        person = _find_participant(app, people, address)
        if person is None:
            raise NotFoundError("that person is not a participant of this meeting (by any "
                                "identifier on its participant list); a label can only name "
                                "someone who attended")
        old = next((link for link in links(session, row.id) if link.label == label), None)
        actor = actor or app.actor
        link = _store(app, session, row, label, person, "dpo",
                      "assigned by a DPO who listened" + (f": {note}" if note else ""),
                      old=old, by=actor)
        app.audit(session, "speaker.named", target_type="transcript", target_id=row.id,
                  actor=actor, label=label, method="dpo", version=row.version,
                  replaced=old.method if old else None)
        session.expunge(link)
        return link


@dataclass(frozen=True)
class SpeakerView:
    """A label as shown to people: its name only where a link names it, and how."""

    label: str
    name: str | None
    method: str  # unnamed | attendance | teams_timeline | dpo
    evidence: str
    assigned_by: str | None = None
    assigned_at: datetime | None = None

    @property
    def shown(self) -> str:
        return self.name or self.label


def names_for(app: AppContext, session: Session, row: Transcript,
              content: Mapping[str, Any] | None = None) -> dict[str, SpeakerView]:
    """Every label of the transcript with the name its link gives (read from the sealed
    participant list at display time), or unnamed. Callers audit the read."""
    content = content if content is not None else read_content(app, session, row)
    people = read_participants(app, session, row)
    by_label = {link.label: link for link in links(session, row.id)}
    out = {}
    for label in labels_of(content):
        link = by_label.get(label)
        name = None
        if link is not None:
            wanted = set(link.identifiers.split()) | {link.person_blind}
            for person in people:
                if wanted & set(_participant_blinds(app, person)):
                    name = str(person.get("display_name") or person.get("email")
                               or person.get("object_id") or "") or None
                    break
        if link is None or name is None:
            out[label] = SpeakerView(label, None, "unnamed", "")
        else:
            out[label] = SpeakerView(label, name, link.method, link.evidence,
                                     link.assigned_by, link.assigned_at)
    return out


def speakers(app: AppContext, transcript_id: str, *, actor: str | None = None,
             reason: str = "list speakers") -> list[SpeakerView]:
    """The labels of a transcript with method and evidence (decrypts: audited)."""
    with app.session() as session:
        row = get_transcript(session, transcript_id.strip())
        if row.purged_at is not None or row.content_item is None:
            raise InputError(f"transcript {row.id} was purged; its speakers are gone with it")
        views = list(names_for(app, session, row).values())
        app.audit(session, "transcript.read", target_type="transcript", target_id=row.id,
                  actor=actor, reason=reason)
        return views


def seconds_since(start: datetime, when: datetime) -> float:
    return (when - start) / timedelta(seconds=1)


__all__ = ["METHODS", "Naming", "Presence", "SpeakerView", "TimelineCue", "assign",
           "display_names", "labels_of", "links", "meeting_namings", "name_by_attendance", "name_by_timeline",
           "names_for", "parse_timeline", "record", "speakers", "turns_of"]


def named_segments(segments: Sequence[Any], views: Mapping[str, SpeakerView]) -> list[Any]:
    """Segments with each named label replaced by the person's name and `speaker_source` set to
    how it was named; unnamed labels stay "Speaker N"."""
    from dataclasses import replace

    out = []
    for segment in segments:
        view = views.get(segment.speaker) if segment.speaker else None
        if view is not None and view.name:
            segment = replace(segment, speaker=view.name, speaker_source=view.method)
        out.append(segment)
    return out


def naming_notes(views: Mapping[str, SpeakerView]) -> list[str]:
    """One line per named label for a VTT NOTE / JSON field: who, how, and why."""
    return [f"{v.name} (diarization label {v.label}) was named by {v.method}: {v.evidence}"
            for v in views.values() if v.name]
